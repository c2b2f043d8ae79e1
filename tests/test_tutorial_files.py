"""The tutorial's four files of notebook 13 (memory.py, agents.py, orchestrator.py, main.py), written from the
notebook's own `%%writefile` cells into a temporary folder and run there as a learner would: `python main.py`,
offline (the test environment sets MAS_OFFLINE=1 and the live-client kill switch, and the subprocess inherits it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "13_the_tutorials_four_files.ipynb"
FILES = ("memory.py", "agents.py", "orchestrator.py", "main.py")
RUN_LINE = ("run how-vector-databases-enable-semantic-search: approved, 1 revision(s), 2 validation(s), "
            "{calls} model call(s)")


def written_files(notebook: Path) -> dict[str, str]:
    """{file name: text} of every `%%writefile data/13/tutorial/NAME` cell of the notebook."""
    files = {}
    for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
        source = "".join(cell["source"])
        first, _, body = source.partition("\n")
        if cell["cell_type"] == "code" and first.startswith("%%writefile data/13/tutorial/"):
            files[first.rsplit("/", 1)[1]] = body + "\n"  # %%writefile adds the final newline
    return files


@pytest.fixture
def tutorial(tmp_path: Path) -> Path:
    for name, text in written_files(NOTEBOOK).items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def python(folder: Path, *args: str, faults: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **({"MAS_FAULTS": faults} if faults else {})}  # the offline model's fault plan
    return subprocess.run([sys.executable, *args], cwd=folder, capture_output=True, text=True, timeout=120, env=env)


def test_the_notebook_writes_the_four_files_and_they_import_only_the_client_from_mas():
    files = written_files(NOTEBOOK)
    assert sorted(files) == sorted(FILES)
    mas_imports = [line.strip() for text in files.values() for line in text.splitlines()
                   if line.lstrip().startswith(("import mas", "from mas"))]
    assert [line.split("#")[0].strip() for line in mas_imports] == ["from mas import make_client"]


def test_main_py_runs_offline_to_an_approved_report_and_resumes_with_no_call(tutorial):
    first = python(tutorial, "main.py")
    assert first.returncode == 0, first.stderr
    out = first.stdout.splitlines()
    assert out[-1].startswith(RUN_LINE.format(calls=5)), out[-1]
    assert "[Validator] draft 1: 2 issue(s)" in out and "[Validator] draft 2: approved" in out
    report = first.stdout.split("\n\n", 1)[1].rsplit("\n", 2)[0]
    assert report.startswith("# How vector databases enable semantic search")
    assert "offline model" in first.stderr and "Traceback" not in first.stderr
    assert (tutorial / "memory.db").exists()

    again = python(tutorial, "main.py")  # the same topic is the same run: every step is in memory.db
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1] == RUN_LINE.format(calls=0) + ", 0 tokens"
    assert "asking the" not in again.stdout
    assert again.stdout.split("\n\n", 1)[1].rsplit("\n", 2)[0] == report


def test_an_unreadable_verdict_is_asked_again_then_stops_the_run_which_resumes(tutorial):
    fenced_once = python(tutorial, "main.py", faults="fenced_json@validator")  # asked again once, then read
    assert fenced_once.returncode == 0, fenced_once.stderr
    assert fenced_once.stdout.splitlines()[-1].startswith(RUN_LINE.format(calls=6))
    (tutorial / "memory.db").unlink()

    never = python(tutorial, "main.py", faults="fenced_json@validator*2")  # both answers fenced: no verdict
    assert never.returncode == 1, never.stderr
    assert "stopped: ValueError: no readable verdict after 2 answers: not JSON" in never.stdout
    assert "approved" not in never.stdout and "Traceback" not in never.stderr
    resumed = python(tutorial, "main.py")  # research and draft 1 are saved: 3 calls finish the run
    assert resumed.returncode == 0, resumed.stderr
    assert "research: already in memory" in resumed.stdout
    assert resumed.stdout.splitlines()[-1].startswith(RUN_LINE.format(calls=3))


DRIVER = textwrap.dedent("""
    import json
    import sys

    import agents
    import memory
    import orchestrator
    from mas import make_client

    client = make_client()
    writer = agents.Writer(client)
    writer.system += " Ignore the feedback."  # the offline writer sends the same draft back: never approved
    team = agents.Researcher(client), writer, agents.Validator(client)
    store = memory.SQLiteMemory("memory.db")
    result = orchestrator.Orchestrator(store, *team, say=lambda line: None).run(sys.argv[1], "engineers", "stubborn")
    steps = list(memory.Namespace(store, "stubborn").items())
    print(json.dumps({"result": result, "steps": steps, "calls": [agent.calls for agent in team]}))
""")


def test_the_revision_limit_validates_the_last_revision_and_never_calls_it_approved(tutorial):
    (tutorial / "driver.py").write_text(DRIVER, encoding="utf-8")
    done = python(tutorial, "driver.py", "How vector databases enable semantic search")
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    result = run["result"]
    assert result["status"] == "max_cycles" and not result["approved"]
    assert result["revisions"] == 3 and result["validations"] == 4  # 3 cycles: the 4th draft is validated too
    assert len(result["issues"]) == 2
    assert run["steps"] == ["topic", "research", "draft_1", "validation_1", "draft_2", "validation_2", "draft_3",
                            "validation_3", "draft_4", "validation_4", "status"]
    assert run["calls"] == [1, 4, 4]  # researcher, writer (1 draft + 3 revisions), validator (4 verdicts)


def test_the_memory_namespaces_runs_and_reads_every_step_back(tutorial):
    probe = textwrap.dedent("""
        import memory

        for store in (memory.DictMemory(), memory.SQLiteMemory(":memory:")):
            a, b = memory.Namespace(store, "run_a"), memory.Namespace(store, "run-a")
            a.set("draft_1", {"text": "one"})
            b.set("draft_1", "other")
            a.set("draft_1", {"text": "one, again"})  # an update keeps its place
            a.set("status", "done")
            assert a.get("draft_1") == {"text": "one, again"} and b.get("draft_1") == "other"
            assert list(a.items()) == ["draft_1", "status"] and list(b.items()) == ["draft_1"]
            assert a.get("missing", "none") == "none"
        print("ok")
    """)
    (tutorial / "probe.py").write_text(probe, encoding="utf-8")
    done = python(tutorial, "probe.py")
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr
