"""Execute every notebook live, against a Messages-API server on loopback: the live-parity check.

    python tools/run_notebooks_live.py [notebooks/NN_x.ipynb ...]      (or: make live-check [NB=...])

Starts `mas serve --port 0` (the offline model over HTTP; `--server fakellm`: fakellm, a third-party mock, with
the rules in tests/fakellm.yaml) and a throwaway redis-server itself, then runs each
notebook top to bottom in a fresh kernel in its own folder, as a learner with a key does: ANTHROPIC_API_KEY set
(a fake one), ANTHROPIC_BASE_URL the server's URL, MAS_OFFLINE and the kill switch (MAS_NO_LIVE) unset, MAS_DB
in a temporary folder. `--base-url URL` runs against another server instead (a gateway, a third-party mock).
Outputs are never written back: the committed ones come from the offline run (tools/refresh_notebooks.py).

One line per notebook (ok, or the first failing cell and its error's last line); exits 1 when any failed.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Iterator

import nbformat
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbval.kernel import CURRENT_ENV_KERNEL_NAME, NbvalKernelspecManager

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from isolation import CLEARED  # noqa: E402
from redis_server import INSTALL_HINT, start_redis  # noqa: E402

# built from parts, so that no key-shaped string is in the source; never a real key
FAKE_KEY = "sk-ant-" + "live-check-" + "x" * 16


# each server the check can start itself: its command, and the line that says where it listens
SERVERS = {
    "mas": ([sys.executable, "-m", "mas.cli", "serve", "--port", "0"],
            re.compile(r"^mas serve: .+ on (?P<url>http://\S+) \(Ctrl-C stops it\)", re.M)),
    # a third-party Messages-API mock (PyPI fakellm), with rules that answer the course's JSON contracts
    "fakellm": ([sys.executable, "-m", "fakellm.cli", "serve", "--port", "0",
                 "--config", str(ROOT / "tests" / "fakellm.yaml")],
                re.compile(r"Uvicorn running on (?P<url>http://\S+)", re.M)),
}


@contextmanager
def serving(name: str, folder: Path, timeout: float = 60.0) -> Iterator[str]:
    """The server `name` as a subprocess on a free port, yielding its URL once it says it listens; stopped
    afterwards."""
    command, ready = SERVERS[name]
    out, err = folder / f"{name}.out", folder / f"{name}.err"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        # output to files, not pipes: a server logging a line a request must never block on a full pipe
        process = subprocess.Popen(command, cwd=folder, stdout=stdout, stderr=stderr)
    try:
        deadline = time.monotonic() + timeout
        while (match := ready.search(out.read_text(encoding="utf-8") + err.read_text(encoding="utf-8"))) is None:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start: {out.read_text()}{err.read_text()}")
            time.sleep(0.05)
        yield match["url"]
    finally:
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def live_environment(base_url: str, folder: Path, redis_url: str | None) -> None:
    """This process's environment (which the kernels inherit) made a learner's with a key."""
    for name in (*CLEARED, "MAS_OFFLINE", "MAS_NO_LIVE", "ANTHROPIC_AUTH_TOKEN"):
        os.environ.pop(name, None)
    os.environ.update(MAS_NO_DOTENV="1", ANTHROPIC_API_KEY=FAKE_KEY, ANTHROPIC_BASE_URL=base_url,
                      MAS_DB=str(folder / "memory.db"))
    # no Redis server here: a port where nothing listens, so notebook 08 fails fast and clearly
    os.environ["REDIS_URL"] = redis_url or "redis://127.0.0.1:1/0"


def last_line(text: str) -> str:
    lines = [line for line in re.sub(r"\x1b\[[0-9;]*m", "", text).splitlines() if line.strip()]
    return lines[-1].strip() if lines else "(no message)"


def run(path: Path, cell_timeout: int, log: Path) -> str | None:
    """Execute one notebook (outputs kept in memory only); None when every cell ran, else what failed first."""
    nb = nbformat.read(path, as_version=4)
    manager = KernelManager(kernel_name=CURRENT_ENV_KERNEL_NAME, kernel_spec_manager=NbvalKernelspecManager())
    client = NotebookClient(nb, km=manager, timeout=cell_timeout, resources={"metadata": {"path": str(path.parent)}})
    try:
        with open(log, "a") as stderr:  # the kernel's own chatter (its TCP warning), out of the report
            client.execute(stderr=stderr)
        return None
    except Exception as err:  # a cell's error (CellExecutionError), a cell's timeout, a dead kernel
        for index, cell in enumerate(nb.cells):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    return f"cell {index}: {output.get('ename')}: {last_line(output.get('evalue', ''))}"
        running = getattr(client, "_running_cell_index", None)  # not public: only for the message
        where = f"cell {running}: " if running is not None else ""
        return f"{where}{type(err).__name__}: {last_line(str(err))}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="default: notebooks/*.ipynb")
    parser.add_argument("--server", choices=sorted(SERVERS), default="mas",
                        help="the server to start: mas (`mas serve`, the default) or fakellm (a third-party mock)")
    parser.add_argument("--base-url", help="a server of your own, already running, instead of one started here")
    parser.add_argument("--cell-timeout", type=int, default=120, help="seconds a cell may take (default 120)")
    args = parser.parse_args(argv)
    paths = [Path(p) for p in args.notebooks] or sorted((ROOT / "notebooks").glob("*.ipynb"))

    failed = 0
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mas-live-check-") as tmp:
        folder = Path(tmp)
        redis = start_redis()
        if redis is None and os.environ.get("MAS_REQUIRE_REDIS") == "1":  # as in the suite: CI never skips Redis
            print(f"live check: MAS_REQUIRE_REDIS=1 but redis-server is not installed: {INSTALL_HINT}")
            return 1
        try:
            with serving(args.server, folder) if args.base_url is None else nullcontext(args.base_url) as url:
                live_environment(url, folder, redis.url if redis else None)
                print(f"live check: {len(paths)} notebook(s) against {url}, with a key", flush=True)
                for path in paths:
                    t0 = time.monotonic()
                    error = run(path, args.cell_timeout, folder / "kernels.log")
                    failed += error is not None
                    print(f"{path.name}: {'ok' if error is None else 'FAILED at ' + error}"
                          f" ({time.monotonic() - t0:.0f} s)", flush=True)
        finally:
            if redis is not None:
                redis.stop()
    print(f"live check: {len(paths) - failed} ok, {failed} failed, in {time.monotonic() - started:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
