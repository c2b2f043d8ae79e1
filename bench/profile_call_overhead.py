"""Where `mas.Orchestrator`'s extra time per model call goes (the companion of bench_call_overhead.py).

    python bench/profile_call_overhead.py [--runs 40] [--top 20]

Not a bench with a target (the Makefile's `bench` target runs bench_*.py only): a profile, by
public API only, on the same offline transport with no latency as the bench.

1. In situ, interleaved (CPU time of the process, median per call): bare SDK calls sending the
   recorded requests; the orchestrator with a plain dict as its memory (all of `mas` but the
   store); with SQLite in RAM; with an SQLite file (WAL). The differences are what the store
   costs, and what the rest of `mas` costs.
2. Between the calls: a run cut at the start and end of each model call (the wall clock, median
   of each piece): the time before the first call, between two calls and after the last is `mas`'s
   own; the calls' own time, beside bare calls of the same bodies, is what `mas` costs the SDK by
   what it leaves in the caches.
3. Each memory operation of a run, timed inside real runs (its median, and its count a run):
   between real model calls a store's code runs with cold caches, so it costs more than alone.
4. `mas` alone: the orchestrator on a client that hands back the recorded replies at once (no
   SDK, no transport), per call, and cProfile's `mas` functions with the most own time there.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_call_overhead import TOPIC, Offline, record  # noqa: E402

import mas  # noqa: E402
from mas.client import make_client  # noqa: E402


class DictMemory:
    """The memory contract the orchestrator uses, in a dict: the pipeline with no store at all."""

    def __init__(self, data: dict | None = None, prefix: str = ""):
        self.data, self.prefix = data if data is not None else {}, prefix

    def scoped(self, namespace: str) -> DictMemory:
        return DictMemory(self.data, f"{self.prefix}{namespace}/")

    def set_many(self, items: dict[str, str]) -> None:
        self.data.update({self.prefix + key: value for key, value in items.items()})

    def get(self, key: str) -> str | None:
        return self.data.get(self.prefix + key)

    def get_all(self) -> dict[str, str]:
        return {k[len(self.prefix):]: v for k, v in sorted(self.data.items()) if k.startswith(self.prefix)}

    def lease(self, name: str, holder: str, ttl: float) -> str | None:
        current = self.data.setdefault(self.prefix + "\0" + name, holder)  # "\0": no key of get_all's
        return None if current == holder else current

    def release(self, name: str, holder: str) -> None:
        if self.data.get(self.prefix + "\0" + name) == holder:
            del self.data[self.prefix + "\0" + name]


class Timed:
    """A memory that times each operation of its scoped views, by name."""

    def __init__(self, inner, spent: dict[str, list[float]]):
        self.inner, self.spent = inner, spent

    def scoped(self, namespace: str) -> Timed:
        return Timed(self.inner.scoped(namespace), self.spent)

    def __getattr__(self, name: str):
        method = getattr(self.inner, name)

        def timed(*args):
            start = time.perf_counter()
            try:
                return method(*args)
            finally:
                self.spent.setdefault(name, []).append(time.perf_counter() - start)
        return timed


class Clocked:
    """A client whose `messages.create` notes when each call starts and ends; the call itself is `client`'s."""

    def __init__(self, client):
        self.inner, self.messages, self.marks = client, self, []

    def create(self, **request):
        self.marks.append(time.perf_counter())
        try:
            return self.inner.messages.create(**request)
        finally:
            self.marks.append(time.perf_counter())


class Canned:
    """A client whose `messages.create` hands back the recorded reply at once: `mas` alone."""

    def __init__(self, client, bodies: list[dict]):
        self.replies = {json.dumps(body, sort_keys=True): client.messages.create(**body) for body in bodies}
        self.messages = self

    def create(self, **request):
        return self.replies[json.dumps(request, sort_keys=True)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="interleaved runs of each way (default 40)")
    parser.add_argument("--top", type=int, default=20, help="mas functions listed by own time (default 20)")
    args = parser.parse_args()
    bodies = record(TOPIC)
    calls = len(bodies)
    client = make_client(transport=Offline(), max_retries=0)
    canned = Canned(client, bodies)

    def orchestrate(memory, on=client):
        return lambda: mas.Orchestrator(memory, client=on, progress=None).run(TOPIC)

    def bare():
        for body in bodies:
            client.messages.create(**body)

    with tempfile.TemporaryDirectory() as tmp, mas.SQLiteMemory(":memory:") as ram, \
            mas.SQLiteMemory(Path(tmp) / "p.db") as file:
        ways = {"bare SDK": bare, "mas, a dict as memory": lambda: orchestrate(DictMemory())(),  # a new one a run
                "mas, SQLite in RAM": orchestrate(ram), "mas, SQLite file": orchestrate(file)}
        for way in ways.values():
            way()
        gc.collect()
        gc.freeze()
        cpu: dict[str, list[float]] = {name: [] for name in ways}
        names = list(ways)
        for i in range(args.runs):
            for name in names[i % len(names):] + names[:i % len(names)]:
                gc.collect()
                start = time.process_time()
                ways[name]()
                cpu[name].append((time.process_time() - start) / calls)
        med = {name: statistics.median(values) for name, values in cpu.items()}
        print(f"1. In situ, {calls} calls a run, median of {args.runs} interleaved runs (CPU µs per call):")
        for name, seconds in med.items():
            print(f"  {name:<26} {seconds * 1e6:7.0f}  ratio {seconds / med['bare SDK']:.3f}  "
                  f"extra {(seconds - med['bare SDK']) * 1e6:5.0f}")

        between(client, bodies, {"mas, SQLite in RAM": ram, "mas, SQLite file": file}, args.runs)

        print("3. Memory operations inside real runs (median each, count a run, µs per call):")
        for name, memory in (("RAM", ram), ("file", file)):
            spent: dict[str, list[float]] = {}
            for _ in range(args.runs):
                bare()
                orchestrate(Timed(memory, spent))()
            for op, values in spent.items():
                print(f"  {name:<5} {op:<9} {len(values) / args.runs:4.0f}x {statistics.median(values) * 1e6:6.1f} µs"
                      f"  = {len(values) / args.runs * statistics.median(values) / calls * 1e6:5.1f} µs/call")

        alone = orchestrate(ram, canned)
        run_s = min(timed_once(alone) for _ in range(200))
        lookup_s = min(timed_once(lambda: [canned.replies[json.dumps(body, sort_keys=True)] for body in bodies])
                       for _ in range(200))
        print(f"4. mas alone (canned replies, SQLite in RAM, best of 200): {(run_s - lookup_s) / calls * 1e6:.1f} µs "
              "per call, warm; its functions with the most own time under cProfile:")
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(200):
            alone()
        profile.disable()
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(r"/mas/", args.top)
        print("\n".join(line for line in out.getvalue().splitlines()[6:] if line.strip()))
    return 0


def between(client, bodies: list[dict], memories: dict, runs: int) -> None:
    """Section 2: each run cut at the start and end of its model calls (wall clock, medians)."""
    clocked = Clocked(client)
    ways = {"bare SDK": lambda: [clocked.messages.create(**body) for body in bodies]}
    for name, memory in memories.items():
        ways[name] = (lambda m: lambda: mas.Orchestrator(m, client=clocked, progress=None).run(TOPIC))(memory)
    pieces: dict[str, list[list[float]]] = {name: [] for name in ways}
    names = list(ways)
    for i in range(runs):
        for name in names[i % len(names):] + names[:i % len(names)]:
            gc.collect()
            clocked.marks.clear()
            start = time.perf_counter()
            ways[name]()
            marks = [start, *clocked.marks, time.perf_counter()]
            pieces[name].append([b - a for a, b in zip(marks, marks[1:])])  # before 1, call 1, 1-2, call 2, ...
    med = {name: [statistics.median(piece) * 1e6 for piece in zip(*runs_of)] for name, runs_of in pieces.items()}
    calls = len(bodies)
    heads = ["before 1", *(f"{n}-{n + 1}" for n in range(1, calls)), f"after {calls}"]
    print(f"2. Between the calls (wall µs, median of {runs} interleaved runs): mas's own time before, "
          "between and after the calls; the calls' own time beside bare calls of the same bodies:")
    print(f"  {'':<20}" + "".join(f"{h:>9}" for h in heads) + f"{'all':>7}   {'calls':>7} {'vs bare':>8}")
    bare_calls = sum(med["bare SDK"][1::2])
    for name, values in med.items():
        gaps, own = values[0::2], sum(values[1::2])
        print(f"  {name:<20}" + "".join(f"{g:9.0f}" for g in gaps) + f"{sum(gaps):7.0f}   {own:7.0f} "
              f"{(own / bare_calls - 1) * 100:+7.1f}%")


def timed_once(way) -> float:
    start = time.perf_counter()
    way()
    return time.perf_counter() - start


if __name__ == "__main__":
    sys.exit(main())
