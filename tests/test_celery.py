"""Celery on the real redis-server: `mas worker` processes run (and resume) the runs `mas submit` sends; a pool
process SIGKILLed mid-run costs at most the call it had in flight; a shared request rate holds across processes.

The workers are live clients of a real `mas serve` on 127.0.0.1 (a fake key), so the server's own log counts
every model request any worker sent."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager

import pytest
from test_serve import serving

from mas.scaling import RedisMemory, SharedRate, parse_rate

pytest.importorskip("celery")
TOPICS = ["Consensus algorithms", "Prompt caching", "How vector databases enable semantic search",
          "Retrieval-augmented generation"]
CLEAN_CALLS = 5  # a run approved after one revision: research, draft, verdict, revision, verdict
FAKE_KEY = "sk-ant-" + "celery-" + "x" * 16
MESSAGES = re.compile(r"^mas serve: POST /v1/messages ", re.M)


def live_env(server_url: str, redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MAS_OFFLINE", "MAS_NO_LIVE")}
    env.update(ANTHROPIC_BASE_URL=server_url, ANTHROPIC_API_KEY=FAKE_KEY, REDIS_URL=redis_url, PYTHONUNBUFFERED="1")
    return env


@contextmanager
def workers(env: dict, queue: str, folder, count: int = 2, *options: str):
    """`count` `mas worker` processes on `queue`, stopped (SIGTERM: Celery's warm shutdown) afterwards."""
    started = []
    for n in range(count):
        log = open(folder / f"worker{n}.log", "w")
        started.append((subprocess.Popen([sys.executable, "-m", "mas.cli", "worker", "--queue", queue,
                                          "--concurrency", "2", *options], env=env, stdout=log,
                                         stderr=subprocess.STDOUT), log))
    try:
        yield [p for p, _ in started]
    finally:
        for process, log in started:
            process.terminate()
        for process, log in started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
            log.close()


def submit(env: dict, queue: str, name: str, topics_file, *options: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mas.cli", "submit", str(topics_file), "--queue", queue,
                             "--name", name, "--timeout", "240", *options], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_workers_run_every_run_once_and_a_killed_pool_process_costs_at_most_its_call(
        tmp_path, redis_url, loopback_http):
    topics = tmp_path / "topics.txt"
    topics.write_text("\n".join(TOPICS) + "\n", encoding="utf-8")
    queue, name = f"q{uuid.uuid4().hex[:8]}", f"k{uuid.uuid4().hex[:6]}"
    with serving(tmp_path / "serve", "--latency", "0.4") as server, RedisMemory(redis_url) as memory:
        env = live_env(server.url, redis_url)
        with workers(env, queue, tmp_path):
            waiting = submit(env, queue, name, topics)
            killed: list[str] = []
            deadline = time.monotonic() + 120
            while len(killed) < 2 and time.monotonic() < deadline:  # two runs, each killed mid-run, once
                for n in range(1, len(TOPICS) + 1):
                    run = memory.scoped(f"{name}-{n:03d}")
                    holder, status = run.get("worker"), run.get("status")
                    if holder and status in ("writing", "validating") and holder not in killed and \
                            run.get("draft_1") is None and len(killed) < 2:
                        os.kill(int(holder.rsplit(":", 1)[1]), signal.SIGKILL)  # a pool process, mid-call
                        killed.append(holder)
                time.sleep(0.05)
            out, err = waiting.communicate(timeout=240)
    assert len(killed) == 2, err
    assert waiting.returncode == 0, out + err
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith(name)}
    assert len(rows) == len(TOPICS) and all(row[-4] == "approved" for row in rows.values()), out
    assert all(row[-2] == str(CLEAN_CALLS) for row in rows.values()), out  # each run's calls, as a clean run's
    sent = len(MESSAGES.findall(server.logs()))
    # lost runs: 0 (all approved); runs finished twice: 0 (a second finish would send 5 more); the killed
    # calls in flight: at most one each
    assert len(TOPICS) * CLEAN_CALLS <= sent <= len(TOPICS) * CLEAN_CALLS + len(killed), sent
    assert "[##############################] 4/4 runs done" in err
    assert FAKE_KEY not in server.logs() + out + err


def test_a_shared_rate_holds_across_processes_by_the_servers_clock(redis_url):
    """Two processes and two threads each, one limit: no second of the calls holds more than the limit."""
    key = f"mas:test-rate:{uuid.uuid4().hex[:8]}"
    script = ("import sys, time; from mas.scaling import SharedRate; rate = SharedRate(4, 1.0, sys.argv[1], "
              "key=sys.argv[2])\nfor _ in range(5):\n    rate(None, {}); print(time.time(), flush=True)")
    other = subprocess.Popen([sys.executable, "-c", script, redis_url, key], stdout=subprocess.PIPE, text=True)
    rate, times, lock = SharedRate(4, 1.0, redis_url, key=key), [], threading.Lock()

    def calls() -> None:
        for _ in range(5):
            rate(None, {})
            with lock:
                times.append(time.time())

    threads = [threading.Thread(target=calls) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out, _ = other.communicate(timeout=60)
    times = sorted(times + [float(x) for x in out.split()])
    assert len(times) == 15
    slack = 0.05  # the server's clock decides; this process reads its own a moment after
    assert all(sum(a <= t < a + 1.0 - slack for t in times) <= 4 for a in times), times
    assert times[-1] - times[0] >= 2.0  # 15 calls at 4 a second: at least three full windows


def test_rates_and_mistakes_are_one_line(tmp_path, capsys):
    from mas.cli import main

    assert parse_rate("3/h") == (3, 3600.0)
    for bad in ("0/s", "5/d", "five/m", "5"):
        with pytest.raises(ValueError, match="N/s, N/m or N/h"):
            parse_rate(bad)
    with pytest.raises(ValueError, match="limit >= 1"):
        SharedRate(0, 1.0)
    assert main(["submit", str(tmp_path / "absent.txt")]) == 2
    assert "absent.txt: no such file or directory" in capsys.readouterr().err
    os.environ["REDIS_URL_SAVED"] = os.environ.get("REDIS_URL", "")
    (tmp_path / "t.txt").write_text("Prompt caching\n", encoding="utf-8")
    try:
        os.environ["REDIS_URL"] = "redis://127.0.0.1:1/0"  # nothing listens there
        assert main(["submit", str(tmp_path / "t.txt")]) == 2
        [line] = [x for x in capsys.readouterr().err.splitlines() if not x.startswith("offline model")]
        assert line.startswith("mas: cannot reach Redis at redis://127.0.0.1:1/0"), line
    finally:
        os.environ["REDIS_URL"] = os.environ.pop("REDIS_URL_SAVED")


def test_mas_status_lists_the_runs_of_a_memory(tmp_path, capsys):
    from mas.cli import main

    db = tmp_path / "m.db"
    assert main(["status", "--db", str(db)]) == 0 and "no runs in this memory" in capsys.readouterr().out
    assert main(["run", "Prompt caching", "--db", str(db), "--run-id", "one"]) == 0
    capsys.readouterr()
    assert main(["status", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^one\s+Prompt caching\s+approved\s+2\s*$", out, re.M), out
    assert main(["status", "--db", str(db), "absent"]) == 1
