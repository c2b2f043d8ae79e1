"""Writes and reads per second of the shared memory: SQLite in WAL mode, SQLite's default journal, Redis.

    python bench/bench_memory.py [--writes 2000] [--reads 10000] [--size 200]

Each write is one `set` through `mas.memory` (one committed transaction: durable when it
returns), each read one `get` of a key that exists, from one thread: what an agent pays for
each call. SQLite's default journal ("delete") is measured on its own file in the same run,
to show what WAL buys. The figures are printed with their ratio to SQLite WAL, the default.

Redis: REDIS_URL when set (on a prefix of its own, cleared afterwards), else a throwaway
redis-server started here with tests/redis_server.py; without either, its row says why.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from redis_server import INSTALL_HINT, start_redis  # noqa: E402

from mas.errors import MemoryUnavailableError
from mas.memory import SQLiteMemory  # noqa: E402
from mas.scaling import RedisMemory  # noqa: E402


def measure(memory, writes: int, reads: int, value: str) -> tuple[float, float]:
    """(writes per second, reads per second) of `memory`, which is cleared afterwards."""
    keys = [f"run-1/key-{i}" for i in range(writes)]
    start = time.perf_counter()
    for key in keys:
        memory.set(key, value)
    write_rate = writes / (time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(reads):
        memory.get(keys[i % writes])
    read_rate = reads / (time.perf_counter() - start)
    memory.clear()
    return write_rate, read_rate


def open_redis() -> tuple[RedisMemory | None, str, object]:
    """A RedisMemory on a prefix of its own, or None with the reason; and a server to stop, if started here."""
    server = None
    url = os.environ.get("REDIS_URL")
    if not url:
        server = start_redis()
        if server is None:
            return None, f"skipped: redis-server is not installed ({INSTALL_HINT})", None
        url = server.url
    try:
        return RedisMemory(url, prefix=f"mas-bench-{uuid.uuid4().hex}"), "", server
    except MemoryUnavailableError as exc:
        return None, f"skipped: {exc}", server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--reads", type=int, default=10000)
    parser.add_argument("--size", type=int, default=200, help="bytes per value")
    args = parser.parse_args()
    value = "x" * args.size
    results: dict[str, tuple[float, float] | str] = {}
    with tempfile.TemporaryDirectory(prefix="mas-bench-") as folder:
        for label, mode in (("SQLite WAL", "wal"), ("SQLite DELETE", "delete")):
            with SQLiteMemory(Path(folder) / f"{mode}.db", journal_mode=mode) as memory:
                assert memory.journal_mode == mode, f"the file is in {memory.journal_mode!r} mode, not {mode!r}"
                results[label] = measure(memory, args.writes, args.reads, value)
    redis_memory, reason, server = open_redis()
    try:
        if redis_memory is None:
            results["Redis"] = reason
        else:
            with redis_memory:
                results["Redis"] = measure(redis_memory, args.writes, args.reads, value)
    finally:
        if server is not None:
            server.stop()

    print(f"memory: {args.writes} writes then {args.reads} reads of {args.size}-byte values, one thread")
    print(f"{'backend':<15}{'writes/s':>11}{'reads/s':>11}{'writes vs WAL':>15}{'reads vs WAL':>14}")
    base_writes, base_reads = results["SQLite WAL"]
    for label, result in results.items():
        if isinstance(result, str):
            print(f"{label:<15}{result}")
            continue
        w, r = result
        print(f"{label:<15}{w:>11,.0f}{r:>11,.0f}{w / base_writes:>14.2f}x{r / base_reads:>13.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
