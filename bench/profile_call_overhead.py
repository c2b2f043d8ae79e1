"""Where `mas.Orchestrator`'s extra time per model call goes (the companion of bench_call_overhead.py).

    python bench/profile_call_overhead.py [--runs 200] [--top 25]

Not a bench with a target (the Makefile's `bench` target runs bench_*.py only): a profile.

1. Counts. cProfile over `--runs` pipelines (memory in RAM, progress=None) gives how many times
   each piece of `mas` runs per pipeline (deterministic), and the `mas` functions with the most
   own time under the profiler (inflated by it, so only to see where to look).
2. Costs. Each piece is then timed on its own, without the profiler, on the data a real run
   produced (the best of 7 repeats of many loops: the intrinsic cost, immune to a busy machine):
   the exact sequence of memory operations of one run replayed on SQLite in RAM and in a file,
   the verdict's JSON re-read as `ValidationResult`, the `Usage` arithmetic of `_step`, the
   hooks with none installed, the progress lines (formatted, and printed to a line-buffered
   /dev/null), settings reads, `default_model()`, the agents' own request/reply handling, ...
3. The table: per piece, count per run x µs each / calls per run = µs per model call, largest
   first, and their sum.
4. In situ (the best of `--runs` interleaved runs of each): bare SDK calls; the orchestrator
   (memory in RAM); the same with a plain dict as its memory (what SQLite costs in the pipeline);
   the same with every memory operation timed (its median cost between real calls); and the
   orchestrator on a client that hands back the recorded replies at once (`mas` alone, its caches
   warm, to check the table's sum). Between real calls each piece runs with cold caches, so it
   costs more than alone: the factor is printed.

It pokes at some internals of today's `mas` (`BaseAgent._request/_keep`, `orchestrator._done_line`)
to time them alone: a redesign of `mas` may need it updated; bench_call_overhead.py uses only the
public API.
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
import timeit
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_call_overhead import TOPIC, Offline, record, stdout_to_devnull  # noqa: E402

import mas  # noqa: E402
from mas import hooks, llm, orchestrator  # noqa: E402
from mas import settings as settings_module
from mas.agents import ResearcherAgent, ValidatorAgent, WriterAgent  # noqa: E402
from mas.client import make_client  # noqa: E402
from mas.contracts import RunResult, Usage, ValidationResult  # noqa: E402
from mas.prompts import research_task, revise_task, validate_task, write_task  # noqa: E402


class OpLog:
    """A memory that passes everything to `inner` and logs each operation of a scoped view."""

    def __init__(self, inner, log: list):
        self.inner, self.log = inner, log

    def scoped(self, namespace: str) -> OpLog:
        return OpLog(self.inner.scoped(namespace), self.log)

    def set(self, key, value):
        self.log.append(("set", key, value))
        return self.inner.set(key, value)

    def get(self, key):
        self.log.append(("get", key, None))
        return self.inner.get(key)

    def get_all(self):
        self.log.append(("get_all", None, None))
        return self.inner.get_all()


def best(stmt, number: int, repeat: int = 7) -> float:
    """Seconds for one `stmt()`: the best of `repeat` timings of `number` loops."""
    return min(timeit.repeat(stmt, number=number, repeat=repeat)) / number


class DictMemory:
    """The memory contract the orchestrator uses, in a dict: the pipeline with no SQLite at all."""

    def __init__(self, data: dict | None = None, prefix: str = ""):
        self.data, self.prefix = data if data is not None else {}, prefix

    def scoped(self, namespace: str) -> DictMemory:
        return DictMemory(self.data, f"{self.prefix}{namespace}/")

    def set(self, key: str, value: str) -> None:
        self.data[self.prefix + key] = value

    def get(self, key: str) -> str | None:
        return self.data.get(self.prefix + key)

    def get_all(self) -> dict[str, str]:
        return {k[len(self.prefix):]: v for k, v in sorted(self.data.items()) if k.startswith(self.prefix)}


class Timed:
    """A memory that times each operation of its scoped views (for the in-situ cost of each)."""

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


class Canned:
    """A client whose `messages.create` hands back the recorded reply at once: `mas` alone, no SDK."""

    def __init__(self, client, bodies: list[dict]):
        self.replies = {json.dumps(body, sort_keys=True): client.messages.create(**body) for body in bodies}
        self.messages = self

    def create(self, **request):
        return self.replies[json.dumps(request, sort_keys=True)]


def in_situ(client, bodies, ram, runs: int) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Seconds per call, the best of `runs` interleaved runs of each way; the time and count of each
    memory operation inside the runs through `Timed`."""
    calls = len(bodies)
    canned = Canned(client, bodies)
    keys = [json.dumps(body, sort_keys=True) for body in bodies]
    spent: dict[str, list[float]] = {}

    def bare():
        for body in bodies:
            client.messages.create(**body)

    ways = {"bare SDK": bare,
            "mas, memory in RAM": lambda: mas.Orchestrator(ram, client=client, progress=None).run(TOPIC),
            "mas, RAM, each memory op timed": lambda: mas.Orchestrator(Timed(ram, spent), client=client,
                                                                      progress=None).run(TOPIC),
            "mas, a dict as memory": lambda: mas.Orchestrator(DictMemory(), client=client, progress=None).run(TOPIC),
            "mas alone (canned replies, RAM)": lambda: mas.Orchestrator(ram, client=canned, progress=None).run(TOPIC),
            "canned replies' own lookup": lambda: [canned.replies[key] for key in keys]}
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(runs):
        for name, way in ways.items():
            start = time.perf_counter()
            way()
            times[name].append((time.perf_counter() - start) / calls)
    return {name: min(values) for name, values in times.items()}, spent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="pipelines profiled and measured (default 200)")
    parser.add_argument("--top", type=int, default=25, help="mas functions listed by own time (default 25)")
    args = parser.parse_args()

    bodies = record(TOPIC)
    calls = len(bodies)
    transport = Offline()
    client = make_client(transport=transport, max_retries=0)

    # ---- one run's data: its memory operations, its verdicts, its progress lines
    log: list = []
    lines: list[str] = []
    with mas.SQLiteMemory(":memory:") as ram:
        result = mas.Orchestrator(OpLog(ram, log), client=client, progress=lines.append).run(TOPIC)
    sets = [(k, v) for op, k, v in log if op == "set"]
    gets = [k for op, k, v in log if op == "get"]
    get_alls = sum(op == "get_all" for op, _, _ in log)
    verdicts = [v for k, v in sets if k.startswith("validation_")]

    # ---- 1. counts and the profiler's view
    with tempfile.TemporaryDirectory() as tmp, mas.SQLiteMemory(":memory:") as ram, \
            mas.SQLiteMemory(Path(tmp) / "p.db") as file:
        for _ in range(5):
            mas.Orchestrator(ram, client=client, progress=None).run(TOPIC)
        gc.collect()
        gc.freeze()
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(args.runs):
            mas.Orchestrator(ram, client=client, progress=None).run(TOPIC)
        profile.disable()
        stats = pstats.Stats(profile)
        ncalls: dict[str, int] = {}
        for (path, _line, name), (_cc, nc, _tt, _ct, _callers) in stats.stats.items():
            ncalls[f"{Path(path).name}:{name}"] = ncalls.get(f"{Path(path).name}:{name}", 0) + nc

        def per_run(name: str) -> float:
            return ncalls.get(name, 0) / args.runs

        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(r"/mas/(?!offline)", args.top)
        print(f"cProfile, {args.runs} pipelines ({calls} calls each), memory in RAM, progress=None: "
              f"the mas functions (mas/offline aside) with the most own time, under the profiler")
        print("\n".join(line for line in out.getvalue().splitlines()[6:] if line.strip()))

        # ---- 2. the pieces, timed alone
        def replay_memory(memory):
            def go():
                mem = memory.scoped(f"run-{uuid.uuid4().hex[:8]}")
                for op, key, value in log:
                    if op == "set":
                        mem.set(key, value)
                    elif op == "get":
                        mem.get(key)
                    else:
                        mem.get_all()
            return go

        def only(memory, kind):
            def go():
                mem = memory.scoped(f"run-{uuid.uuid4().hex[:8]}")
                for key, value in sets:
                    mem.set(key, value)
                if kind == "get":
                    for key in gets:
                        mem.get(key)
            return go

        pieces: list[tuple[str, float, float, str]] = []  # (piece, count per run, seconds each, note)

        def add(piece: str, count: float, seconds: float, note: str = "") -> None:
            pieces.append((piece, count, seconds, note))

        set_ram = best(only(ram, "set"), 200) / len(sets)
        set_file = best(only(file, "set"), 200) / len(sets)
        get_ram = (best(only(ram, "get"), 200) - set_ram * len(sets)) / len(gets)
        mem_ram = best(replay_memory(ram), 200)
        mem_file = best(replay_memory(file), 200)
        add(f"memory, RAM: {len(sets)} set (1 commit each)", len(sets), set_ram, "SQLiteMemory.set")
        add(f"memory, RAM: {len(gets)} get + {get_alls} get_all", 1,
            mem_ram - set_ram * len(sets), f"get {get_ram * 1e6:.1f} µs each")
        add(f"  (file instead of RAM: {len(sets)} set)", len(sets), set_file - set_ram,
            "extra per set in a WAL file, not in the RAM sum")

        verdict = verdicts[0]
        parsed = ValidationResult.model_validate_json(verdict)
        n_validations = len(verdicts)
        validate_each = best(lambda: ValidationResult.model_validate_json(verdict), 20000)
        add("ValidationResult re-read (_pipeline + _done_line)", 2 * n_validations, validate_each,
            "the verdict JSON parsed again after review() returned it")
        add("ValidationResult model_dump_json (_pipeline lambda)", n_validations,
            best(lambda: parsed.model_dump_json(), 20000), "object -> JSON only to parse it back")
        add("ValidationResult parse_reply (the contract)", per_run("contracts.py:parse_reply"),
            best(lambda: mas.parse_reply(verdict, ValidationResult), 20000), "needed")

        steps = per_run("orchestrator.py:_step")
        total, agent_usage = Usage(), Usage(calls=3, input_tokens=1000, output_tokens=900)

        def usage_step():
            before = agent_usage.model_copy()
            nonlocal total
            total += agent_usage - before
            total.model_dump_json()
        add("Usage in _step: model_copy, __sub__, __iadd__, model_dump_json", steps, best(usage_step, 20000))
        one = {"input_tokens": 900, "output_tokens": 700, "cache_creation_input_tokens": 0,
               "cache_read_input_tokens": 0}
        add("Usage.add in _keep", calls, best(lambda: agent_usage.add(one), 20000))
        add("Usage.model_validate_json at run start", 1, best(lambda: Usage.model_validate_json("{}"), 20000))

        agent = WriterAgent(client=client)
        request = agent._request("task")
        add("hooks: before_call + after, no hook installed", calls,
            best(lambda: hooks.before_call(agent, request)(None, None), 50000))

        line = lines[1]
        formatted = best(lambda: orchestrator._done_line("Writer", "draft_1", result.report), 20000)
        add("progress: _done_line + f-strings, built even with progress=None", 1,
            steps * formatted + best(lambda: f"[Orchestrator] Dispatching to {agent.name}...", 50000) * len(lines),
            f"{len(lines)} lines a run")
        with stdout_to_devnull():
            printed = best(lambda: print(line), 20000)
        add("  (progress=print: print() each line)", len(lines), printed,
            "to line-buffered /dev/null; not in the progress=None sum")

        add("settings() (Orchestrator(): default_model)", per_run("settings.py:settings"),
            best(settings_module.settings, 20000), "15 os.environ.get + lru_cache")
        add("check_model (typing.get_args over ModelParam)", per_run("llm.py:check_model"),
            best(lambda: llm.check_model("claude-opus-4-6"), 20000))
        model = llm.default_model()
        add("Orchestrator(): 3 agents, besides default_model", 1,
            best(lambda: (ResearcherAgent(client=client, model=model), WriterAgent(client=client, model=model),
                          ValidatorAgent(client=client, model=model)), 20000))
        add("run id (uuid4) + memory.scoped", 1, best(lambda: ram.scoped(f"run-{uuid.uuid4().hex[:8]}"), 20000))

        research, draft = result.report, result.report
        add("prompts: research/write/validate/revise tasks", 1,
            best(lambda: (research_task(TOPIC, "x"), write_task(TOPIC, "x", research),
                          validate_task(research, draft), revise_task(TOPIC, "x", research, draft, ["a", "b"]),
                          validate_task(research, draft)), 20000), "the work a bare caller also does")
        message = client.messages.create(**bodies[1])
        add("agent: _request + _keep (text_of, usage_of, history)", calls,
            best(lambda: (agent._request("task"), agent._keep("task", message), agent.reset()), 20000))
        add("RunResult + json of issues (_result, _json_list)", 1,
            best(lambda: RunResult(run_id="r", topic=TOPIC, report=draft, approved=True, cycles=1, issues=[],
                                   status="approved", reason="", usage=total), 20000))

        situ, spent = in_situ(client, bodies, ram, args.runs)

    # ---- 3. the table
    print(f"\nAttribution per model call ({calls} calls a run; µs per call = count per run x µs each / {calls}):")
    print(f"  {'piece':<64} {'count/run':>9} {'µs each':>8} {'µs/call':>8}  note")
    counted = 0.0
    for piece, count, seconds, note in sorted(pieces, key=lambda p: -p[1] * p[2]):
        per_call = count * seconds / calls
        if not piece.startswith("  "):
            counted += per_call
        print(f"  {piece:<64} {count:9.1f} {seconds * 1e6:8.2f} {per_call * 1e6:8.1f}  {note}")
    print(f"  {'sum (memory in RAM, progress=None)':<64} {'':9} {'':8} {counted * 1e6:8.1f}")
    bare, orch = situ["bare SDK"], situ["mas, memory in RAM"]
    alone = situ["mas alone (canned replies, RAM)"] - situ["canned replies' own lookup"]
    print(f"\nIn situ, best of {args.runs} interleaved runs each (µs per call):")
    for name, seconds in situ.items():
        print(f"  {name:<36} {seconds * 1e6:7.1f}")
    print(f"  extra of mas over bare SDK: {(orch - bare) * 1e6:.0f} µs/call (ratio {orch / bare:.2f}); mas alone, "
          f"its caches warm: {alone * 1e6:.0f} µs/call (the sum above: {counted * 1e6:.0f}); so between real calls "
          f"each piece costs about {(orch - bare) / alone:.1f}x its µs above")
    print(f"  SQLite in RAM vs a dict as memory, in situ: "
          f"{(orch - situ['mas, a dict as memory']) * 1e6:.0f} µs/call")
    ops = ", ".join(f"{name} {len(v) / args.runs:.0f}x {statistics.median(v) * 1e6:.1f} µs" for name, v in spent.items())
    total = sum(len(v) * statistics.median(v) for v in spent.values()) / args.runs / calls
    print(f"  each memory op in situ (median): {ops}: {total * 1e6:.0f} µs/call (warm, alone: the memory rows above)")
    print(f"memory alone per run, warm: RAM {mem_ram * 1e6:.0f} µs, file {mem_file * 1e6:.0f} µs "
          f"({len(sets)} set, {len(gets)} get, {get_alls} get_all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
