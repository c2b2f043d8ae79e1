"""tools/run_notebooks_live.py, the live-parity check (`make live-check`, run by .ci/run), on one small notebook.

The whole check (every notebook) is too slow for the suite; this proves the tool itself: it starts `mas serve`
and runs a notebook's kernel live against it (a key set, MAS_OFFLINE and the kill switch off), says ok per
notebook, and names the first failing cell of a notebook that breaks, with its error's last line, exiting 1.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent

PROBE = """\
import os, mas
from mas.client import is_offline
client = mas.make_client()
assert not is_offline() and os.environ["ANTHROPIC_BASE_URL"].startswith("http://127.0.0.1:")
assert str(client.base_url).startswith(os.environ["ANTHROPIC_BASE_URL"])
print(mas.text_of(client.messages.create(model="claude-opus-4-6", max_tokens=50,
                                         messages=[{"role": "user", "content": "hello"}]))[:20])
"""


def test_the_live_check_runs_a_notebook_live_and_names_the_first_failing_cell(tmp_path):
    broken = tmp_path / "broken.ipynb"
    cells = [nbformat.v4.new_code_cell(PROBE), nbformat.v4.new_code_cell("raise ValueError('first\\nlast line')"),
             nbformat.v4.new_code_cell("raise KeyError('never reached')")]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), broken)
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "run_notebooks_live.py"),
                          str(ROOT / "notebooks" / "01_shared_memory.ipynb"), str(broken)],
                         capture_output=True, text=True, timeout=240, cwd=tmp_path)
    lines = run.stdout.splitlines()
    assert run.returncode == 1, run.stdout + run.stderr
    assert lines[0].startswith("live check: 2 notebook(s) against http://127.0.0.1:"), run.stdout
    assert lines[1].startswith("01_shared_memory.ipynb: ok ("), run.stdout
    assert lines[2].startswith("broken.ipynb: FAILED at cell 1: ValueError: last line ("), run.stdout
    assert lines[3].startswith("live check: 1 ok, 1 failed, in "), run.stdout
    assert not list(tmp_path.glob("*.db")) and nbformat.read(broken, 4).cells[0].outputs == []  # nothing written back


FAKELLM_PROBE = """\
import mas
from mas.contracts import ValidationResult
from mas.memory import SQLiteMemory
from mas.orchestrator import Orchestrator
from mas.prompts import SYSTEM_PROMPTS, research_task
client = mas.make_client()
result = Orchestrator(SQLiteMemory(":memory:"), client=client, progress=None).run("How vector databases work")
assert result.status == "approved" and "(source: fakellm rule" in result.report, result
assert client.messages.create(  # fakellm's own echo, for anything no rule matches
    model="claude-opus-4-6", max_tokens=20, messages=[{"role": "user", "content": "hi"}]).content[0].text.startswith(
    "[mock response")
verdict = client.messages.parse(model="claude-opus-4-6", max_tokens=100, output_format=ValidationResult,
                                messages=[{"role": "user", "content": "Check the draft against the research."}])
assert verdict.parsed_output.approved is True
print("fakellm ok")
"""


def test_the_live_check_can_run_against_fakellm_a_third_party_server_it_starts_itself(tmp_path):
    probe = tmp_path / "probe.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(FAKELLM_PROBE)]), probe)
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "run_notebooks_live.py"), "--server", "fakellm",
                          str(probe)], capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.splitlines()[1].startswith("probe.ipynb: ok ("), run.stdout


def test_every_fakellm_rule_still_matches_what_the_course_sends():
    # the rules match phrases of the course's prompts: a prompt reworded must not leave a rule matching nothing
    # (that notebook would meet fakellm's echo, and the live check would fail far from the cause)
    import yaml

    from mas.contracts import ValidationResult
    from mas.evals import load_cases
    from mas.parallel import DEFAULT_ANGLES
    from mas.prompts import (
        SYSTEM_PROMPTS,
        compare_task,
        reask_task,
        research_task,
        revise_task,
        validate_task,
        write_task,
    )

    notebooks = [path.read_text(encoding="utf-8") for path in sorted((ROOT / "notebooks").glob("*.ipynb"))]
    sent = [*(research_task(f"T: {angle}", "a") for angle in (*DEFAULT_ANGLES, "costs")), write_task("T", "a", "r"),
            revise_task("T", "a", "r", "d", ["i"]), validate_task("r", "d"), reask_task("e", ValidationResult),
            compare_task("r", "a", "b"),
            *SYSTEM_PROMPTS.values(), *notebooks,
            *(task(c.topic, c.audience, *extra) for c in load_cases(ROOT / "evals" / "writer.jsonl")
              for task, extra in ((research_task, ()), (write_task, ("r",))))]  # the eval set notebook 12 runs
    rules = yaml.safe_load((ROOT / "tests" / "fakellm.yaml").read_text(encoding="utf-8"))["rules"]
    phrases = [rule["when"]["messages_contain"] for rule in rules if "messages_contain" in rule["when"]]
    assert len(phrases) >= 10
    assert [p for p in phrases if not any(p.lower() in text.lower() for text in sent)] == []
    # the tool rules: a tool the course defines, and results that hold a passage id the course's notebooks show
    tools = {rule["when"]["tools_include"] for rule in rules if "tools_include" in rule["when"]}
    assert tools == {"search", "search_notes"} and all(f'"name": "{t}"' in notebooks[11] or f"def {t}(" in
                                                       notebooks[11] for t in tools)
    found = [rule["when"]["tool_result_contains"].strip('"') for rule in rules if "tool_result_contains" in rule["when"]]
    assert len(found) == 3 and all(pid in notebooks[11] for pid in found)
