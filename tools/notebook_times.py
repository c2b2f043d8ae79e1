"""How long each notebook takes a learner: reading its text and code, running it, and its exercises.

    python tools/notebook_times.py [notebooks/*.ipynb]        (or: make times)

Reading: the markdown's words at 150 a minute (technical prose read to be understood, not skimmed) and each code
line at 5 seconds (read, not typed); running: each notebook executed here, offline, in a fresh kernel, as
tools/refresh_notebooks.py runs it (nothing is written back); exercises: 12 minutes each ("Your turn", an
attempt and a check, what the workshop guide plans), counted from the "# Answer N" cells. The figures are
estimates for planning, printed as whole minutes; the workshop guide's agendas are planned from them.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import nbformat
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbval.kernel import CURRENT_ENV_KERNEL_NAME, NbvalKernelspecManager

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from isolation import isolate  # noqa: E402
from redis_server import start_redis  # noqa: E402

WORDS_A_MINUTE = 150
SECONDS_A_CODE_LINE = 5
MINUTES_AN_EXERCISE = 12


def measure(path: Path) -> dict:
    nb = nbformat.read(path, as_version=4)
    words = sum(len(re.findall(r"\w+", c.source)) for c in nb.cells if c.cell_type == "markdown")
    code = [c for c in nb.cells if c.cell_type == "code"]
    answers = [c for c in code if c.source.lstrip().startswith("# Answer")]
    lines = sum(len([x for x in c.source.splitlines() if x.strip()]) for c in code if c not in answers)
    manager = KernelManager(kernel_name=CURRENT_ENV_KERNEL_NAME, kernel_spec_manager=NbvalKernelspecManager())
    start = time.monotonic()
    NotebookClient(nb, km=manager, timeout=300, resources={"metadata": {"path": str(path.parent)}}).execute()
    run = time.monotonic() - start
    read = words / WORDS_A_MINUTE + lines * SECONDS_A_CODE_LINE / 60
    return {"notebook": path.name[:2], "words": words, "code lines": lines, "read min": round(read),
            "run s": round(run), "exercises": len(answers),
            "total min": round(read + run / 60 + len(answers) * MINUTES_AN_EXERCISE)}


def main(paths: list[str]) -> int:
    isolate()
    redis = start_redis()
    if redis is not None:
        import os

        os.environ["REDIS_URL"] = redis.url
    try:
        rows = [measure(Path(p)) for p in sorted(paths or map(str, Path("notebooks").glob("*.ipynb")))]
    finally:
        if redis is not None:
            redis.stop()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from mas.tracing import format_table

    print(format_table(rows))
    print(f"reading at {WORDS_A_MINUTE} words and {60 // SECONDS_A_CODE_LINE} code lines a minute; "
          f"{MINUTES_AN_EXERCISE} minutes an exercise")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
