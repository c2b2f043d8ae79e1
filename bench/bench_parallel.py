"""Parallel efficiency of `mas.parallel`: N subtasks of simulated latency L at concurrency K.

    python bench/bench_parallel.py [--latency 0.2] [--repeats 3]

The ideal wall time is ceil(N/K) * L: K calls overlap, and N/K rounds of them run one after
another. Efficiency = ideal / measured (1.0 = no overhead; target >= 0.9 for N up to 64). Each
subtask is a real `ResearcherAgent.arun` through `AsyncAnthropic` on the offline model, whose
async transport sleeps L per reply, so what is measured is the SDK, the agents and the
semaphore around the sleeping. The best of `--repeats` runs is kept (the machine's noise only
ever adds time). Last, the same N calls one after another against all at once, as a ratio.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mas.agents import ResearcherAgent  # noqa: E402
from mas.client import make_client  # noqa: E402
from mas.offline import Latency  # noqa: E402
from mas.parallel import Subtask, run_parallel  # noqa: E402

CASES = [(n, k) for n in (4, 16, 64) for k in (4, 16, 64) if k <= n]


def wall_time(n: int, k: int, latency: float, repeats: int) -> float:
    """The best wall time of `repeats` runs of n subtasks at concurrency k (all must succeed)."""
    client = make_client(asynchronous=True, offline=True, latency=Latency(base=latency), max_retries=0)
    best = math.inf
    for _ in range(repeats):
        subtasks = [Subtask(ResearcherAgent(async_client=client), f"<topic>subject {i}</topic>") for i in range(n)]
        start = time.perf_counter()
        results = run_parallel(subtasks, max_concurrency=k)
        best = min(best, time.perf_counter() - start)
        if not all(isinstance(r, str) for r in results):
            raise SystemExit(f"a subtask failed: {results}")
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2, help="simulated seconds per call (L)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    latency = args.latency
    wall_time(4, 4, latency, 1)  # warm up: the SDK's first request builds its lazy parts

    print(f"L = {latency:g} s per call, best of {args.repeats}")
    print(f"{'N':>4} {'K':>4} {'rounds':>7} {'ideal s':>8} {'wall s':>8} {'efficiency':>11}")
    worst = math.inf
    for n, k in CASES:
        ideal = math.ceil(n / k) * latency
        wall = wall_time(n, k, latency, args.repeats)
        worst = min(worst, ideal / wall)
        print(f"{n:>4} {k:>4} {math.ceil(n / k):>7} {ideal:>8.2f} {wall:>8.3f} {ideal / wall:>11.3f}")
    print(f"worst efficiency: {worst:.3f}  (target >= 0.9)")

    n = 16
    sequential = wall_time(n, 1, latency, 1)
    parallel = wall_time(n, n, latency, args.repeats)
    print(f"sequential / parallel, N={n}: {sequential:.2f} s / {parallel:.3f} s = {sequential / parallel:.1f}x "
          f"(ideal {n}x)")
    return 0 if worst >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
