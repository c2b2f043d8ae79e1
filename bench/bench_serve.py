"""`mas serve` under a room's load: C concurrent streaming clients, each making R streamed requests in turn.

    python bench/bench_serve.py [--clients 50] [--rounds 10] [--latency 0] [--repeats 1]

The server is the command itself (`mas serve --port 0 --quiet`, a subprocess, as a room runs it); each client
is an `AsyncAnthropic` pointed at it, as a learner's would be. Every stream is checked: its events in the API's
order (message_start, then for each block a start, deltas and a stop, then message_delta and message_stop),
and its text exactly the offline model's reply to that request. Reported: requests/s (all requests over the
wall time) and the p50 and p95 of one request's time, from sending it to its message_stop. The same load on
the in-process transport (no HTTP) is the baseline: the difference is what HTTP, Starlette and uvicorn cost.

Target: every stream whole and in order (exit 1 otherwise). The figures are reported, not targets: they are
this machine's (a laptop serving a room of 50 needs a few requests/s).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

try:
    import resource
except ImportError:  # Windows
    resource = None

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import anthropic  # noqa: E402

from mas.client import make_client, text_of  # noqa: E402
from mas.offline import Latency  # noqa: E402
from mas.prompts import SYSTEM_PROMPTS, research_task  # noqa: E402

MODEL = "claude-opus-4-6"
TOPICS = ["How vector databases enable semantic search", "Prompt caching", "Retrieval-augmented generation",
          "Kubernetes scheduling", "The Raft consensus algorithm"]
ORDER = re.compile(r"message_start (content_block_start (content_block_delta )+content_block_stop )+"
                   r"message_delta message_stop")


def request(client_no: int, round_no: int) -> dict:
    topic = TOPICS[(client_no + round_no) % len(TOPICS)]
    return dict(model=MODEL, max_tokens=1024, system=SYSTEM_PROMPTS["researcher"],
                messages=[{"role": "user", "content": research_task(topic, f"reader {client_no}")}])


async def one_stream(client: anthropic.AsyncAnthropic, ask: dict, expected: str) -> tuple[float, str | None]:
    """(seconds from sending to message_stop, the problem or None)."""
    start = time.perf_counter()
    names, text = [], []
    async with await client.messages.create(**ask, stream=True) as stream:
        async for event in stream:
            names.append(event.type)
            if event.type == "content_block_delta":
                text.append(event.delta.text)
    took = time.perf_counter() - start
    if not ORDER.fullmatch(" ".join(names)):
        return took, f"events out of order: {' '.join(names)[:200]}"
    if "".join(text) != expected:
        return took, "the streamed text is not the offline model's reply"
    return took, None


async def load(client: anthropic.AsyncAnthropic, clients: int, rounds: int,
               expected: dict[tuple[int, int], str]) -> tuple[float, list[float], list[str]]:
    """(wall seconds, each request's seconds, the problems) for `clients` clients making `rounds` requests each."""
    async def learner(n: int) -> list[tuple[float, str | None]]:
        return [await one_stream(client, request(n, r), expected[n, r]) for r in range(rounds)]

    start = time.perf_counter()
    results = await asyncio.gather(*(learner(n) for n in range(clients)))
    wall = time.perf_counter() - start
    flat = [item for per_client in results for item in per_client]
    return wall, [took for took, _ in flat], [problem for _, problem in flat if problem]


def run(client: anthropic.AsyncAnthropic, clients: int, rounds: int, repeats: int,
        expected: dict[tuple[int, int], str]) -> tuple[float, list[float], list[str]]:
    """The best of `repeats` loads (the machine's noise only ever adds time), all problems kept."""
    async def go() -> tuple[float, list[float], list[str]]:
        await load(client, 4, 1, expected)  # warm up: the SDK's lazy parts, the server's first requests
        best, problems = None, []
        for _ in range(repeats):
            wall, times, found = await load(client, clients, rounds, expected)
            problems += found
            if best is None or wall < best[0]:
                best = (wall, times)
        await client.close()
        return (*best, problems)

    return asyncio.run(go())


def report(label: str, clients: int, wall: float, times: list[float]) -> None:
    p95 = statistics.quantiles(times, n=20)[-1]
    print(f"{label:<12} {clients:>7} {len(times):>8} {wall:>7.2f} {len(times) / wall:>10.1f} "
          f"{statistics.median(times) * 1000:>8.1f} {p95 * 1000:>8.1f}")


def start_server(folder: Path, latency: str) -> tuple[subprocess.Popen, str]:
    out = folder / "serve.out"
    options = ["--latency", latency] if latency else []
    with open(out, "w") as stdout:
        server = subprocess.Popen([sys.executable, "-m", "mas.cli", "serve", "--port", "0", "--quiet", *options],
                                  stdout=stdout, stderr=subprocess.STDOUT, cwd=folder)
    deadline = time.monotonic() + 60
    while not (found := re.search(r"export ANTHROPIC_BASE_URL=(\S+)", out.read_text())):
        if server.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"mas serve did not start: {out.read_text()}")
        time.sleep(0.05)
    return server, found[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=10, help="streamed requests each client makes, one after another")
    parser.add_argument("--latency", default="", help="the server's --latency BASE[,PER_TOKEN] (default: none)")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    offline = make_client(offline=True)
    expected = {(n, r): text_of(offline.messages.create(**request(n, r)))
                for n in range(max(args.clients, 4)) for r in range(args.rounds)}
    latency = Latency(*map(float, args.latency.split(","))) if args.latency else None

    print(f"{args.clients} clients x {args.rounds} streamed requests each"
          f"{f', server latency {args.latency}' if args.latency else ''}, best of {args.repeats}")
    print(f"{'':<12} {'clients':>7} {'requests':>8} {'wall s':>7} {'requests/s':>10} {'p50 ms':>8} {'p95 ms':>8}")
    inproc = make_client(asynchronous=True, offline=True, latency=latency, max_retries=0)
    wall, times, problems = run(inproc, args.clients, args.rounds, args.repeats, expected)
    report("in process", args.clients, wall, times)

    with tempfile.TemporaryDirectory() as folder:
        server, url = start_server(Path(folder), args.latency)
        try:
            client = anthropic.AsyncAnthropic(base_url=url, api_key="any", max_retries=0, timeout=120)
            wall, times, served_problems = run(client, args.clients, args.rounds, args.repeats, expected)
        finally:
            server.send_signal(signal.SIGINT if os.name == "posix" else signal.SIGTERM)
            server.wait(timeout=30)
    report("mas serve", args.clients, wall, times)
    if resource is not None:  # the server, reaped, is this process's only child: its CPU time, start-up included
        cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
        served = args.repeats * args.clients * args.rounds + 4
        print(f"server CPU: {cpu.ru_utime + cpu.ru_stime:.2f} s for {served} requests and its start "
              f"({os.cpu_count()} CPUs here; the clients share them)")
    problems += served_problems
    total = args.repeats * args.clients * args.rounds
    if problems:
        print(f"{len(problems)} of the streams failed their check; the first: {problems[0]}  (target: none): NOT met")
        return 1
    print(f"every stream whole and in order: {total} of {total} on the server  (target: all): met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
