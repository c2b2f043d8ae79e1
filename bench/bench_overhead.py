"""What `mas` costs on top of the model calls it makes, and whether a revise cycle costs the same each time.

    python bench/bench_overhead.py [--runs 7] [--latency 0.02] [--cycles 6]

1. Orchestration overhead. The same pipeline (research -> write -> validate -> revise ->
   validate: 5 calls, the same prompts from `mas.prompts`) run two ways on the same offline
   transport with a simulated latency per call: through `mas.Orchestrator` (agents, checkpoints
   in SQLite, progress off), and as five bare `client.messages.create` calls written by hand.
   The orchestrator runs three ways: with its memory in RAM (`SQLiteMemory(":memory:")`: the
   orchestration itself), the same inside a `mas.tracing.Tracer` (what tracing adds), and with
   its memory in an SQLite file, the default (what durable checkpoints add: one committed
   write per key, about 20 per run, each waiting for the disk). Runs are
   interleaved (each way once, then again) so drift in the machine hits each alike; the
   medians' ratio to bare is printed. Target: <= 1.05. The overhead is a few milliseconds per
   step, so the ratio depends on the latency: try --latency 0.2 (a live call takes seconds).
2. Tokens per revise cycle. A scripted writer that never fixes its draft and a validator that
   never approves, for N cycles: the input tokens of each validation and revision (counted as
   the API counts them) should not grow with the cycle number, because each step's task
   carries what it needs and the agents start it with an empty history.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from mas.client import make_client
from mas.memory import SQLiteMemory
from mas.offline import Latency, OfflineTransport, ScriptedTransport
from mas.offline.tokens import count_request
from mas.orchestrator import Orchestrator
from mas.prompts import SYSTEM_PROMPTS, research_task, revise_task, validate_task, write_task
from mas.tracing import Tracer

TOPIC = "How vector databases enable semantic search"
AUDIENCE = "senior software engineers"
MODEL = "claude-opus-4-6"


def bare_pipeline(client) -> bool:
    """The pipeline as plain SDK calls: what `mas` adds to is exactly this."""

    def ask(role: str, task: str) -> str:
        reply = client.messages.create(model=MODEL, max_tokens=2048, system=SYSTEM_PROMPTS[role],
                                       messages=[{"role": "user", "content": task}])
        return "".join(b.text for b in reply.content if b.type == "text")

    research = ask("researcher", research_task(TOPIC, AUDIENCE))
    draft = ask("writer", write_task(TOPIC, AUDIENCE, research))
    verdict = json.loads(ask("validator", validate_task(research, draft)))
    if not verdict["approved"]:
        draft = ask("writer", revise_task(TOPIC, AUDIENCE, research, draft, verdict["issues"]))
        verdict = json.loads(ask("validator", validate_task(research, draft)))
    return verdict["approved"]


def overhead(runs: int, latency: float) -> int:
    transport = OfflineTransport(latency=Latency(base=latency))
    client = make_client(transport=transport, max_retries=0)
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp, SQLiteMemory(Path(tmp) / "bench.db") as memory, \
            SQLiteMemory(":memory:") as in_memory:
        orch = Orchestrator(memory, client=client, model=MODEL, progress=None)
        orch_in_memory = Orchestrator(in_memory, client=client, model=MODEL, progress=None)

        def traced(i: int) -> bool:
            with Tracer():
                return orch_in_memory.run(TOPIC, AUDIENCE, run_id=f"traced-{i}").approved

        ways = {"bare SDK calls": lambda i: bare_pipeline(client),
                "mas, memory in RAM": lambda i: orch_in_memory.run(TOPIC, AUDIENCE, run_id=f"ram-{i}").approved,
                "mas, memory in RAM + Tracer": traced,
                "mas, SQLite file": lambda i: orch.run(TOPIC, AUDIENCE, run_id=f"file-{i}").approved}
        for i in range(-1, runs):  # run -1 warms up (imports, first connection) and is not counted
            for name, way in ways.items():
                calls_before = transport.model.calls
                start = time.perf_counter()
                approved = way(i)
                elapsed = time.perf_counter() - start
                if not approved or transport.model.calls - calls_before != 5:
                    print(f"{name}: expected 5 calls and an approved report", file=sys.stderr)
                    return 1
                if i >= 0:
                    times.setdefault(name, []).append(elapsed)
    base = statistics.median(times["bare SDK calls"])
    print(f"Orchestration overhead: 5 calls of {latency * 1000:g} ms simulated latency, "
          f"median of {runs} interleaved runs each")
    for name, values in times.items():
        ratio = statistics.median(values) / base
        print(f"  {name:<28} ratio to bare {ratio:5.3f}  (median {statistics.median(values) * 1000:6.1f} ms)")
    missed = 0
    for name in ("mas, memory in RAM + Tracer", "mas, SQLite file"):
        ratio = statistics.median(times[name]) / base
        print(f"  target <= 1.05 for {name}: {'met' if ratio <= 1.05 else 'NOT met'} ({ratio:.3f})")
        missed += ratio > 1.05
    return 1 if missed else 0


def tokens_per_cycle(cycles: int) -> int:
    verdict = json.dumps({"issues": ["The draft still leaves out the last research point."], "approved": False})
    draft = "# Vector search\n\nVector databases store embeddings and find neighbours. " * 4  # never fixed
    transport = ScriptedTransport(["- Point one.\n- Point two.\n- Point three."] + [draft, verdict] * (cycles + 1))
    with tempfile.TemporaryDirectory() as tmp, SQLiteMemory(Path(tmp) / "cycles.db") as memory:
        result = Orchestrator(memory, client=make_client(transport=transport, max_retries=0), model=MODEL,
                              max_revision_cycles=cycles, progress=None).run(TOPIC, AUDIENCE, run_id="r")
    validations = [count_request(r) for r in transport.requests if r["system"] == SYSTEM_PROMPTS["validator"]]
    revisions = [count_request(r) for r in transport.requests if r["system"] == SYSTEM_PROMPTS["writer"]][1:]
    print(f"\nTokens per revise cycle: a writer that never fixes, {cycles} revisions allowed "
          f"(run ended: {result.status})")
    print(f"  {'cycle':>5}  {'validator input':>15}  {'revision input':>14}")
    for n, tokens in enumerate(validations, 1):
        revision = f"{revisions[n - 1]:,}" if n <= len(revisions) else "-"
        print(f"  {n:>5}  {tokens:>15,}  {revision:>14}")
    flat = len(set(validations)) == 1 and len(set(revisions)) == 1
    print(f"  flat: {'yes' if flat else 'NO'} (validator {min(validations):,}-{max(validations):,}, "
          f"revision {min(revisions):,}-{max(revisions):,} input tokens)")
    return 0 if flat else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="interleaved runs of each way (default 7)")
    parser.add_argument("--latency", type=float, default=0.02, help="simulated seconds per call (default 0.02)")
    parser.add_argument("--cycles", type=int, default=6, help="revise cycles for the token check (default 6)")
    args = parser.parse_args()
    if args.runs < 1 or args.latency < 0 or args.cycles < 1:
        parser.error("--runs and --cycles must be >= 1 and --latency >= 0")
    return overhead(args.runs, args.latency) or tokens_per_cycle(args.cycles)


if __name__ == "__main__":
    sys.exit(main())
