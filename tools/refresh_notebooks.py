"""Re-execute notebooks offline and save their outputs in place: the outputs nbval compares against.

    python tools/refresh_notebooks.py notebooks/*.ipynb      (or: make notebooks [NB=...])

Each notebook runs top to bottom in a fresh kernel in its own folder, with the offline model
forced (MAS_OFFLINE=1, no key, the live-client kill switch on) and a throwaway redis-server
for the notebooks that use Redis, exactly as the test suite runs them. Widget state and
execution timings are dropped, and a stream's consecutive pieces are joined, so the committed file holds only
what a reader should see.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbval.kernel import CURRENT_ENV_KERNEL_NAME, NbvalKernelspecManager

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from isolation import isolate  # noqa: E402
from redis_server import start_redis  # noqa: E402


def refresh(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    # the kernel runs this Python (as nbval --nbval-current-env does), not whatever "python3" kernel
    # a user has installed
    manager = KernelManager(kernel_name=CURRENT_ENV_KERNEL_NAME, kernel_spec_manager=NbvalKernelspecManager())
    client = NotebookClient(nb, km=manager, timeout=300, resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if "outputs" in cell:
            cell.outputs = merge_streams(cell.outputs)
    nbformat.write(nb, path)
    print(f"refreshed {path}")


def merge_streams(outputs: list) -> list:
    """Consecutive stream outputs of one name (stdout, stderr) as one, as JupyterLab shows them: how a cell's
    prints are cut into messages depends on the kernel's flush timing (a busy machine cuts them more), and a
    committed file must not. Unlike nbclient's `coalesce_streams`, the order of stdout and stderr is kept."""
    merged: list = []
    for output in outputs:
        last = merged[-1] if merged else None
        if (output.output_type == "stream" and last is not None and last.output_type == "stream"
                and last.name == output.name):
            last.text += output.text
        else:
            merged.append(output)
    return merged


def main(paths: list[str]) -> int:
    isolate()  # exactly the environment the test suite gives the notebooks (tests/isolation.py)
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
