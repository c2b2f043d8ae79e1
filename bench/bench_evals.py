"""Evals at a concurrency: 50 cases x 2 writer variants, every call 0.2 s of simulated latency.

    python bench/bench_evals.py [--latency 0.2] [--concurrency 8]

Runs the eval once sequentially (concurrency 1) and once at `--concurrency`, on the offline model, and prints
both wall times and the speed-up against the ideal one. The ideal is not simply the concurrency: runs differ in
length (a variant that misses the validator's bar revises more), so the ideal wall time is the longest of K
lanes filled in order with the measured runs' own times (what a perfect pool of K workers would take), and
efficiency = ideal / measured (target >= 0.9). Each run is a whole pipeline (research, write, validate, revise)
in a thread, each call a real SDK request to the offline transport, which sleeps the latency.
"""

from __future__ import annotations

import argparse
import heapq
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mas.client import make_client  # noqa: E402
from mas.evals import Case, Variant, load_cases, run_eval  # noqa: E402
from mas.offline import Latency  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
AUDIENCES = ("senior software engineers", "product managers", "new engineers", "beginners", "data scientists")


def fifty_cases() -> list[Case]:
    """The writer's 10 cases, each for 5 audiences."""
    return [c.model_copy(update={"id": f"{c.id}/{a}", "audience": a})
            for c in load_cases(ROOT / "evals" / "writer.jsonl") for a in AUDIENCES]


def ideal_wall(seconds: list[float], lanes: int) -> float:
    """The wall time of a perfect pool of `lanes` workers taking the runs in order: each to the first free one."""
    free = [0.0] * lanes
    for s in seconds:
        heapq.heappush(free, heapq.heappop(free) + s)
    return max(free)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    cases = fifty_cases()
    concise = (ROOT / "evals" / "writer_concise.txt").read_text(encoding="utf-8").strip()
    variants = [Variant("baseline"), Variant("concise", prompts={"writer": concise})]
    client = make_client(offline=True, latency=Latency(base=args.latency), max_retries=0)

    start = time.perf_counter()
    parallel = run_eval(cases, variants, client=client, concurrency=args.concurrency)
    parallel_wall = time.perf_counter() - start
    start = time.perf_counter()
    sequential = run_eval(cases, variants, client=client, concurrency=1)
    sequential_wall = time.perf_counter() - start

    same = [(r.case, r.passed) for r in parallel.records] == [(r.case, r.passed) for r in sequential.records]
    ideal = ideal_wall([r.seconds for r in sequential.records], args.concurrency)
    efficiency = ideal / parallel_wall
    calls = sum(r.calls for r in parallel.records)
    print(parallel.table())
    print(f"{len(parallel.records)} runs, {calls} calls at {args.latency} s each")
    print(f"sequential: {sequential_wall:.1f} s | concurrency {args.concurrency}: {parallel_wall:.1f} s | "
          f"speed-up {sequential_wall / parallel_wall:.2f}x | ideal at this concurrency {ideal:.1f} s "
          f"(speed-up {sequential_wall / ideal:.2f}x) | efficiency {efficiency:.3f} (target >= 0.9)")
    print("same verdicts either way:", same)
    return 0 if efficiency >= 0.9 and same else 1


if __name__ == "__main__":
    sys.exit(main())
