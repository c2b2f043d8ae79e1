"""Many topics, four ways: one after another (the tutorial's main.py), threads in one process, Celery workers,
and the Message Batches API; wall time and cost of each, side by side.

    python bench/bench_many_topics.py [--topics 100] [--latency 1.0] [--workers 4] [--concurrency 4]
                                      [--threads 16] [--redis URL]

Every way runs the same topics (the offline model's 35 notes, cycled over three audiences so that no two runs
send the same requests) through the same pipeline, on the offline model with `--latency` seconds a reply, and
every run is checked to end as it ends one after another (same status, same report). Memory: SQLite (one file)
for the sequential and threaded ways and the batches, the Redis at --redis (or a redis-server this bench starts)
for Celery, whose workers are `mas worker` processes (prefork, `--concurrency` each). An offline batch ends
after its slowest request, so the batch way's time is its rounds (a round a call), not a real batch's (up to 24
hours). Targets: threads and Celery >= 10x faster than one after another; batches <= 0.5x the cost.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from mas.batches import BatchRunner  # noqa: E402
from mas.client import default_model, make_client  # noqa: E402
from mas.memory import SQLiteMemory  # noqa: E402
from mas.offline import Latency, OfflineTransport  # noqa: E402
from mas.offline.knowledge import notes  # noqa: E402
from mas.orchestrator import Orchestrator  # noqa: E402
from mas.pricing import cost, dollars  # noqa: E402
from mas.scaling import RedisMemory, celery_app, submit  # noqa: E402

AUDIENCES = ("senior software engineers", "product managers", "beginners")


def jobs(count: int) -> list[tuple[str, str]]:
    titles = [n.topic for n in notes()]
    return [(titles[i % len(titles)], AUDIENCES[i // len(titles) % len(AUDIENCES)]) for i in range(count)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topics", type=int, default=100)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--redis", help="a Redis URL (default: start a redis-server here)")
    args = parser.parse_args()
    todo, latency, model = jobs(args.topics), Latency(base=args.latency), default_model()
    folder = Path(tempfile.mkdtemp(prefix="mas-bench-"))
    client = make_client(transport=OfflineTransport(latency=latency))
    seconds, results = {}, {}

    def run_one(memory, n: int):
        topic, audience = todo[n]
        return Orchestrator(memory, client=client, progress=None).run(topic, audience, run_id=f"run-{n:03d}")

    with SQLiteMemory(folder / "sequential.db") as memory:
        start = time.monotonic()
        results["one after another"] = [run_one(memory, n) for n in range(len(todo))]
        seconds["one after another"] = time.monotonic() - start
    with SQLiteMemory(folder / "threads.db") as memory:
        start = time.monotonic()
        with ThreadPoolExecutor(args.threads) as pool:
            results[f"threads ({args.threads})"] = list(pool.map(lambda n: run_one(memory, n), range(len(todo))))
        seconds[f"threads ({args.threads})"] = time.monotonic() - start
    by_audience: dict[str, list[str]] = {}
    for topic, audience in todo:
        by_audience.setdefault(audience, []).append(topic)
    with SQLiteMemory(folder / "batches.db") as memory:
        start, batched = time.monotonic(), []
        for audience, topics in by_audience.items():  # a job an audience: BatchRunner takes one audience a job
            batched += BatchRunner(memory, client, name=f"b{len(batched)}", progress=None).run(topics, audience).results
        seconds["batches"] = time.monotonic() - start
    results["batches"] = _in_order(batched, todo, by_audience)
    celery_way = f"Celery ({args.workers} workers x {args.concurrency})"
    seconds[celery_way], results[celery_way] = celery(args, todo, folder)

    baseline = results["one after another"]
    print(f"{len(todo)} topics, {args.latency:g} s a reply, offline model ({model}); every way's runs checked "
          "against one after another's (status and report)")
    print(f"  {'way':<28} {'wall s':>8} {'speed-up':>9} {'approved':>9} {'calls':>6} {'cost':>9} {'cost ratio':>11}")
    standard = sum(cost(model, r.usage) for r in baseline)
    status = 0
    for way, runs in results.items():
        same = [(r.status, r.report) for r in runs] == [(r.status, r.report) for r in baseline]
        spent = sum(cost(model, r.usage, batch=way == "batches") for r in runs)
        speed = seconds["one after another"] / seconds[way]
        print(f"  {way:<28} {seconds[way]:8.1f} {speed:8.1f}x {sum(r.approved for r in runs):>9} "
              f"{sum(r.usage.calls for r in runs):>6} {dollars(spent):>9} {spent / standard:10.2f}x"
              + ("" if same else "   DIFFERENT RESULTS"))
        status |= not same
        if way.startswith(("threads", "Celery")) and speed < 10:
            print(f"  {way}: {speed:.1f}x, below the 10x target")
            status = 1
        if way == "batches" and spent / standard > 0.5:
            print(f"  batches: {spent / standard:.2f}x the cost, above the 0.5x target")
            status = 1
    shutil.rmtree(folder, ignore_errors=True)
    return status


def _in_order(batched, todo, by_audience):
    """The batch runs in `todo`'s order (each job holds one audience's topics, in order)."""
    position, runs = {}, iter(batched)
    for audience, topics in by_audience.items():
        for topic in topics:
            position[(topic, audience)] = next(runs)
    return [position[job] for job in todo]


def celery(args, todo, folder):
    """`--workers` `mas worker` processes on a Redis, every job submitted, the time until the last ends."""
    from redis_server import start_redis

    server = None if args.redis else start_redis()
    url = args.redis or server.url
    env = {**os.environ, "REDIS_URL": url, "MAS_OFFLINE": "1"}
    queue = f"bench-{os.getpid()}"
    workers = [subprocess.Popen([sys.executable, "-m", "mas.cli", "worker", "--queue", queue, "--concurrency",
                                 str(args.concurrency), "--latency", str(args.latency)], env=env,
                                stdout=open(folder / f"worker{n}.log", "w"), stderr=subprocess.STDOUT)
               for n in range(args.workers)]
    try:
        app = celery_app(url)
        deadline = time.monotonic() + 120
        while len(app.control.ping(timeout=0.5)) < args.workers and time.monotonic() < deadline:
            time.sleep(0.2)
        start = time.monotonic()
        tasks = []
        for audience in AUDIENCES:
            mine = [n for n, (_, a) in enumerate(todo) if a == audience]
            if mine:
                tasks += list(zip(mine, submit(app, [todo[n][0] for n in mine], f"{queue}-{AUDIENCES.index(audience)}",
                                               audience=audience, queue=queue)))
        for _, task in tasks:
            task.get(timeout=3600)
        wall = time.monotonic() - start
        with RedisMemory(url) as memory:
            runs = {n: Orchestrator(memory, client=make_client(transport=OfflineTransport()), progress=None).run(
                run_id=task.id) for n, task in tasks}  # finished runs: read back, no call made
        return wall, [runs[n] for n in range(len(todo))]
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(timeout=60)
        if server is not None:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
