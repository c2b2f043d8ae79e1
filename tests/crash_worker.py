"""Runs the pipeline offline and SIGKILLs itself right after the N-th step is saved.

    python tests/crash_worker.py DB RUN_ID N

Used by tests/test_orchestrator.py to prove that a killed run resumes without repeating calls.
"""

import os
import signal
import sys

from mas.client import make_client
from mas.memory import SQLiteMemory
from mas.orchestrator import Orchestrator

STEP_DONE = ("complete (", "[Validator] ")  # progress lines printed once a step's result is saved


def main(db: str, run_id: str, kill_after: int) -> None:
    done = 0

    def progress(line: str) -> None:
        nonlocal done
        print(line, flush=True)
        if line.startswith("[") and any(marker in line for marker in STEP_DONE):
            done += 1
            if done == kill_after:
                os.kill(os.getpid(), signal.SIGKILL)

    Orchestrator(SQLiteMemory(db), client=make_client(offline=True), progress=progress).run(
        "How vector databases enable semantic search", run_id=run_id)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
