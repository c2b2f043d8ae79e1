"""What `mas.Orchestrator` costs per model call, against bare SDK calls sending the very same requests.

    python bench/bench_call_overhead.py [--runs 60] [--topic "..."]

1. Record. The pipeline runs once, `Orchestrator(memory, client=...).run(topic)`, on the offline
   transport with no latency, wrapped in a small recording transport of this bench's own: every
   request body the SDK sends is kept (5 for the default topic: research, write, validate,
   revise, validate). A second recording must give the same bodies (the offline model is
   deterministic), else the comparison would not be fair and the bench stops.
2. Measure, in one process, on one client over one offline transport (`OfflineTransport`'s model,
   no recording, no latency, and without the transport's `time.sleep(0)`: see `Offline`),
   interleaved (every way once per round, the order rotated each round; after setup
   `gc.freeze()`, then a garbage collection of what is new before each timed run):
   - bare SDK: `client.messages.create(**body)` for each recorded body, nothing else;
   - mas: `Orchestrator(memory, client=client, progress=...).run(topic)`, as a user writes it
     (construction, a new run id, checkpoints, hooks, contracts, usage), four ways: memory in
     RAM (`SQLiteMemory(":memory:")`) or in an SQLite file in a temp dir (WAL, the default),
     and `progress=None` or `progress=print` (stdout sent to a line-buffered /dev/null while
     timed: one write per line, as a terminal gets, without the terminal's own cost).
   Each run must make exactly the recorded number of calls, with the same bodies.
3. Report per-call µs (median run time / calls) for each way and its ratio to bare SDK calls,
   by the process's CPU time (the target: nothing here waits, so on an idle machine it is the
   wall clock, and it stays put when other processes share the CPUs) and by the wall clock. Medians leave out SQLite's occasional WAL
   checkpoint (a few ms every ~1,000 commits), which the file's mean would include.
   Target: ratio <= 1.10 for every way; exit 1 if one misses it.

With no latency the transport's own work (the offline model writing its reply, the SDK building
and parsing) is all that both sides share, so this is the strictest measure of what `mas` adds.
See bench/profile_call_overhead.py for where the extra time goes.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import httpx2

import mas
from mas.client import make_client
from mas.offline import OfflineTransport, wire

TOPIC = "How vector databases enable semantic search"
TARGET = 1.10


class Recording(httpx2.BaseTransport):
    """Passes every request to `inner` and keeps its JSON body (POST /v1/messages only)."""

    def __init__(self, inner: httpx2.BaseTransport):
        self.inner, self.bodies = inner, []

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.method == "POST" and request.url.path == "/v1/messages":
            self.bodies.append(json.loads(request.read()))
        return self.inner.handle_request(request)


class Offline(OfflineTransport):
    """`OfflineTransport` without its `time.sleep(0)` when there is no latency: a sleep, even of 0,
    yields the CPU, and on a busy machine that costs 0.1-2 ms a call, on both sides alike, at random.
    Only plain JSON replies (what `messages.create` without `stream` gets)."""

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        answer = self.model.answer(request)
        if answer.timeout or answer.message is None or answer.delay or json.loads(request.read()).get("stream"):
            raise RuntimeError("this bench's transport serves plain replies with no latency and no faults")
        return wire.json_response(200, answer.message)


def record(topic: str) -> list[dict]:
    recording = Recording(Offline())
    with mas.SQLiteMemory(":memory:") as memory:
        result = mas.Orchestrator(memory, client=make_client(transport=recording, max_retries=0),
                                  progress=None).run(topic)
    if result.status not in ("approved", "max_cycles"):
        raise SystemExit(f"the recorded run ended {result.status}: {result.reason}")
    return recording.bodies


@contextlib.contextmanager
def stdout_to_devnull():
    """Send print() to /dev/null, line-buffered (one write per line, as on a terminal)."""
    with open(os.devnull, "w", buffering=1) as sink, contextlib.redirect_stdout(sink):
        yield


def ways(client, bodies: list[dict], memories: dict[str, mas.SQLiteMemory], topic: str) -> dict[str, Callable]:
    def bare() -> None:
        for body in bodies:
            client.messages.create(**body)

    def orchestrated(memory, progress) -> Callable[[], None]:
        def run() -> None:
            result = mas.Orchestrator(memory, client=client, progress=progress).run(topic)
            if result.status not in ("approved", "max_cycles"):
                raise SystemExit(f"a timed run ended {result.status}: {result.reason}")
        return run

    found = {"bare SDK": bare}
    for name, memory in memories.items():
        found[f"mas, {name}, progress=None"] = orchestrated(memory, None)
        found[f"mas, {name}, progress=print"] = orchestrated(memory, print)
    return found


def measure(runs: int, topic: str) -> int:
    bodies = record(topic)
    if record(topic) != bodies:
        print("two recordings of the pipeline differ: the offline model is not deterministic here", file=sys.stderr)
        return 1
    calls = len(bodies)
    checker = Recording(Offline())  # one untimed round checks every way sends the recorded bodies
    timed = Offline()
    with tempfile.TemporaryDirectory() as tmp, mas.SQLiteMemory(":memory:") as ram, \
            mas.SQLiteMemory(Path(tmp) / "bench.db") as file:
        memories = {"memory in RAM": ram, "SQLite file": file}
        for name, way in ways(make_client(transport=checker, max_retries=0), bodies, memories, topic).items():
            checker.bodies.clear()
            with stdout_to_devnull():
                way()
            if checker.bodies != bodies:
                print(f"{name}: sent {len(checker.bodies)} requests, not the {calls} recorded ones", file=sys.stderr)
                return 1
        client = make_client(transport=timed, max_retries=0)
        table = ways(client, bodies, memories, topic)
        names = list(table)
        gc.collect()
        gc.freeze()  # what exists now (modules, the offline model's knowledge) is not scanned again
        wall: dict[str, list[float]] = {name: [] for name in names}
        cpu: dict[str, list[float]] = {name: [] for name in names}
        for i in range(-2, runs):  # two warm-up rounds, not counted
            order = names[i % len(names):] + names[:i % len(names)]
            for name in order:
                way = table[name]
                gc.collect()
                calls_before = timed.model.calls
                with stdout_to_devnull():
                    start, start_cpu = time.perf_counter(), time.process_time()
                    way()
                    elapsed, elapsed_cpu = time.perf_counter() - start, time.process_time() - start_cpu
                if timed.model.calls - calls_before != calls:
                    print(f"{name}: {timed.model.calls - calls_before} calls, expected {calls}", file=sys.stderr)
                    return 1
                if i >= 0:
                    wall[name].append(elapsed / calls)
                    cpu[name].append(elapsed_cpu / calls)
    return report(topic, calls, runs, wall, cpu)


def report(topic: str, calls: int, runs: int, wall: dict[str, list[float]], cpu: dict[str, list[float]]) -> int:
    med = {name: statistics.median(values) for name, values in cpu.items()}
    med_wall = {name: statistics.median(values) for name, values in wall.items()}
    bare, bare_wall = med["bare SDK"], med_wall["bare SDK"]
    print(f"Per-call overhead: {calls} calls a run ({topic!r}), offline transport, no latency, "
          f"median of {runs} interleaved runs each (CPU time of the process; the wall clock beside it)")
    print(f"  {'way':<36} {'µs/call':>8} {'ratio':>6} {'extra':>6}   {'wall µs/call':>12} {'ratio':>6} {'extra':>6}")
    for name in cpu:
        print(f"  {name:<36} {med[name] * 1e6:8.0f} {med[name] / bare:6.2f} {(med[name] - bare) * 1e6:6.0f}   "
              f"{med_wall[name] * 1e6:12.0f} {med_wall[name] / bare_wall:6.2f} {(med_wall[name] - bare_wall) * 1e6:6.0f}")
    missed = []
    for name in list(cpu)[1:]:
        ratio = med[name] / bare
        if ratio > TARGET:
            missed.append(name)
        print(f"per call ({name}): mas {med[name] * 1e6:.0f} µs, bare SDK {bare * 1e6:.0f} µs, ratio {ratio:.2f} "
              f"(wall clock {med_wall[name] / bare_wall:.2f}) (target <= {TARGET:.2f}): "
              f"{'NOT met' if ratio > TARGET else 'met'}")
    return 1 if missed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60, help="interleaved runs of each way (default 60)")
    parser.add_argument("--topic", default=TOPIC, help="the pipeline's topic")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    return measure(args.runs, args.topic)


if __name__ == "__main__":
    sys.exit(main())
