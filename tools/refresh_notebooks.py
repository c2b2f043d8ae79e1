"""Re-execute notebooks offline and save their outputs in place: the outputs nbval compares against.

    python tools/refresh_notebooks.py notebooks/*.ipynb      (or: make notebooks [NB=...])

Each notebook runs top to bottom in a fresh kernel in its own folder, with the offline model
forced (MAS_OFFLINE=1, no key, the live-client kill switch on) and a throwaway redis-server
for the notebooks that use Redis, exactly as the test suite runs them. Widget state and
execution timings are dropped, so the committed file holds only what a reader should see.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from redis_server import start_redis  # noqa: E402


def refresh(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    nbformat.write(nb, path)
    print(f"refreshed {path}")


def main(paths: list[str]) -> int:
    os.environ.update(MAS_OFFLINE="1", MAS_NO_LIVE="1")
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "MAS_RECORD", "MAS_REPLAY", "MAS_REPLAY_FALLBACK", "MAS_FAULTS",
                 "MAS_INTERACTIVE"):
        os.environ.pop(name, None)
    server = start_redis()
    if server is not None:
        os.environ["REDIS_URL"] = server.url
    try:
        for p in paths:
            refresh(Path(p))
    finally:
        if server is not None:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
