"""A separate process that uses a memory, for the multi-process and crash tests of test_memory.py.

    python memory_worker.py write sqlite PATH --tag p0 --count 200   (--count 0: write until killed)
    python memory_worker.py write redis URL --prefix P --tag p0 --count 200
    python memory_worker.py dump sqlite PATH                          (prints get_all() as JSON)

`write` opens the memory, prints `ready`, waits for one line on stdin (so that every worker
starts writing at the same moment), then writes `{tag}/{i}` = `{tag}:{i}` and prints
`committed {i}` after each `set` has returned, so the parent knows exactly which writes
were committed when it kills this process.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys

from mas.memory import SQLiteMemory
from mas.scaling import RedisMemory


def open_memory(args: argparse.Namespace):
    if args.backend == "sqlite":
        return SQLiteMemory(args.target)
    return RedisMemory(args.target, prefix=args.prefix)


def write(args: argparse.Namespace) -> None:
    with open_memory(args) as memory:
        print("ready", flush=True)
        sys.stdin.readline()
        for i in itertools.count() if args.count == 0 else range(args.count):
            memory.set(f"{args.tag}/{i}", f"{args.tag}:{i}")
            print(f"committed {i}", flush=True)


def dump(args: argparse.Namespace) -> None:
    with open_memory(args) as memory:
        print(json.dumps(memory.get_all()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["write", "dump"])
    parser.add_argument("backend", choices=["sqlite", "redis"])
    parser.add_argument("target", help="the SQLite file, or the Redis URL")
    parser.add_argument("--prefix", default="mas")
    parser.add_argument("--tag", default="w")
    parser.add_argument("--count", type=int, default=100)
    args = parser.parse_args()
    write(args) if args.command == "write" else dump(args)


if __name__ == "__main__":
    main()
