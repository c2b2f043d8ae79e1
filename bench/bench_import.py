"""How much `import mas` adds to `import anthropic` (target: a ratio <= 1.1).

Each import runs in a fresh interpreter, alternating the two so that both see the same machine
state; the ratio of the medians is printed. `python bench/bench_import.py [runs]`.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time


def once(module: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
    return time.perf_counter() - start


def main(runs: int = 15) -> None:
    once("mas")  # warm the file cache and the bytecode
    times: dict[str, list[float]] = {"anthropic": [], "mas": []}
    for _ in range(runs):
        for module in times:
            times[module].append(once(module))
    med = {m: statistics.median(t) for m, t in times.items()}
    for m, t in times.items():
        print(f"import {m:<10} median {med[m] * 1000:7.1f} ms   min {min(t) * 1000:7.1f} ms   ({runs} runs)")
    ratio = med["mas"] / med["anthropic"]
    print(f"ratio mas / anthropic: {ratio:.3f}  (target <= 1.1): {'met' if ratio <= 1.1 else 'NOT met'}")
    if ratio > 1.1:
        sys.exit(1)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 15)
