"""Worker kill trials: Celery workers SIGKILLed mid-run, again and again; what is lost, done twice, or paid twice.

    python bench/bench_worker_kills.py [--runs 12] [--kills 6] [--workers 2] [--latency 0.3]

`--workers` `mas worker` processes (prefork, 2 processes each) are live clients of a real `mas serve` on
127.0.0.1 (a fake key), so the server's own log counts every model request any worker sent. `--runs` topics are
submitted; while they run, the process holding a run still in progress is SIGKILLed, `--kills` times (a
different run each time, at whatever step it is). Reports: runs lost (not approved at the end), runs finished
twice (the server's requests above a clean run's 5 a run, beyond one a kill), and extra requests per killed
run. Targets: 0 lost, 0 twice, at most 1 extra request per kill.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from mas.offline.knowledge import notes  # noqa: E402
from mas.scaling import RedisMemory, celery_app, submit  # noqa: E402

CLEAN_CALLS = 5
FAKE_KEY = "sk-ant-" + "bench-" + "x" * 16
MESSAGES = re.compile(r"^mas serve: POST /v1/messages ", re.M)
IN_PROGRESS = ("researching", "writing", "validating", "revising")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=12)
    parser.add_argument("--kills", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--latency", type=float, default=0.3)
    args = parser.parse_args()
    from redis_server import start_redis

    folder = Path(tempfile.mkdtemp(prefix="mas-kills-"))
    redis = start_redis()
    serve_log = open(folder / "serve.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "mas.cli", "serve", "--port", "0", "--latency",
                               str(args.latency)], stdout=serve_log, stderr=subprocess.STDOUT, text=True)
    try:
        url = _server_url(folder / "serve.log", server)
        env = {k: v for k, v in os.environ.items() if k not in ("MAS_OFFLINE", "MAS_NO_LIVE")}
        env.update(ANTHROPIC_BASE_URL=url, ANTHROPIC_API_KEY=FAKE_KEY, REDIS_URL=redis.url)
        queue, name = f"kills-{uuid.uuid4().hex[:6]}", f"k{uuid.uuid4().hex[:6]}"
        workers = [subprocess.Popen([sys.executable, "-m", "mas.cli", "worker", "--queue", queue, "--concurrency",
                                     "2"], env=env, stdout=open(folder / f"w{n}.log", "w"), stderr=subprocess.STDOUT)
                   for n in range(args.workers)]
        app = celery_app(redis.url)
        ready, deadline = 0, time.monotonic() + 120
        while ready < args.workers and time.monotonic() < deadline:
            ready = len(app.control.ping(timeout=1.0))
        topics = [n.topic for n in notes()][:args.runs]
        tasks = submit(app, topics, name, queue=queue)
        killed: dict[str, str] = {}  # run id -> the holder killed
        with RedisMemory(redis.url) as memory:
            while len(killed) < args.kills and not all(t.ready() for t in tasks):
                for task in tasks:
                    run = memory.scoped(task.id)
                    holder, status = run.get("worker"), run.get("status")
                    if task.id not in killed and holder and status in IN_PROGRESS and len(killed) < args.kills:
                        try:
                            os.kill(int(holder.rsplit(":", 1)[1]), signal.SIGKILL)
                            killed[task.id] = holder
                        except ProcessLookupError:
                            pass  # it ended meanwhile
                time.sleep(0.05)
            ends = [t.get(timeout=600) for t in tasks]
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(timeout=60)
        sent = len(MESSAGES.findall((folder / "serve.log").read_text()))
        approved = sum(e["status"] == "approved" for e in ends)
        lost = len(ends) - approved
        extra = sent - approved * CLEAN_CALLS
        twice = max(0, extra - len(killed)) // CLEAN_CALLS
        per_kill = extra / len(killed) if killed else 0.0
        print(f"{len(tasks)} runs, {args.workers} workers x 2 processes, {args.latency:g} s a reply; "
              f"{len(killed)} pool processes SIGKILLed mid-run")
        print(f"  runs lost: {lost}; runs finished twice: {twice}; requests: {sent} against {approved * CLEAN_CALLS} "
              f"for clean runs: {extra} extra, {per_kill:.2f} a killed run (each killed run's calls as saved: "
              f"{sorted({e['calls'] for e in ends if e['run_id'] in killed})})")
        ok = lost == 0 and twice == 0 and per_kill <= 1
        print("  targets (0 lost, 0 twice, <= 1 extra request a kill):", "met" if ok else "NOT met")
        return 0 if ok else 1
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
        redis.stop()


def _server_url(log: Path, server: subprocess.Popen) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if match := re.search(r"on (http://127\.0\.0\.1:\d+) ", log.read_text()):
            return match[1]
        if server.poll() is not None:
            raise SystemExit(f"mas serve exited: {log.read_text()}")
        time.sleep(0.05)
    raise SystemExit("mas serve did not start")


if __name__ == "__main__":
    sys.exit(main())
