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
