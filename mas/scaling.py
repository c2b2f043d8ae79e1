"""Scaling out on Redis: a run's memory on a server, and worker processes sharing the run.

    memory = RedisMemory()                        # REDIS_URL, or redis://localhost:6379/0
    memory.scoped("run-42").set("draft", text)    # the hash `mas:run-42/draft`

    queue = JobQueue("run-7")                      # the coordinator
    queue.push([Job(id="caching", task=research_task("Prompt caching", audience)), ...])
    results = collect(queue, start_workers("run-7", 4), ["caching", ...])   # {job id: reply}

    python -m mas.scaling run-7 --worker w1        # what each worker process runs: `work(...)`

Notebook 08's idea: the memory contract of `mas.memory` on a server that many processes and
machines reach, worker processes sharing one run through a Redis queue, and a run resumed from
its memory. The `redis` package is optional: only making a `RedisMemory` or a `JobQueue` imports it.

A worker takes a job, runs its agent (offline or live: `make_client()` decides, as everywhere),
writes the reply into the run's memory as `result/<job id>`, then acknowledges the job. The
keys, under the same `mas:` prefix and run namespace as the run's memory (`mas:run-7/...`):

    queue:pending              LIST  the jobs not taken yet (JSON)
    queue:processing:<worker>  LIST  the job a worker has taken and not yet acknowledged
    queue:attempts             HASH  job id -> how many times it was taken
    queue:done_by / failed     HASH  job id -> the worker that did it / why it failed
    result/<job id>            the reply (a RedisMemory key: what the coordinator reads)

Why LMOVE into a per-worker processing list, not LPOP (Redis's "reliable queue" pattern):
LPOP removes a job the moment it is taken, so a worker killed mid-job loses it and nothing in
Redis says it ever existed. LMOVE takes the job *and* records who holds it in one atomic step:
at every instant a job is in exactly one place (pending, one worker's processing list, or done),
so the jobs of a dead worker are found and put back (`requeue`), without guessing from timeouts.
The reply is written before the acknowledgement, and a worker skips a job whose result is
already in memory, so a crash between the two never makes a job's model call twice.

Simplified on purpose: as in `mas.memory`, string values, no expiry times and no transactions
across keys; workers drain the queue and exit (a long-lived pool would block on BLMOVE
instead); a dead worker is noticed by the coordinator that started it (from its exit code), not
by heartbeats, so workers on other machines need their own supervisor; and one coordinator per run.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping

import anthropic
from pydantic import BaseModel, ConfigDict, field_validator

from mas import prompts
from mas.agents import BaseAgent
from mas.client import is_offline, make_client
from mas.errors import AgentReplyError, JobsIncomplete, MemoryUnavailableError, RunBusy
from mas.extras import require
from mas.memory import _BaseMemory, _check_value, _Shared, holder_is_dead
from mas.redact import redact_text, redact_url
from mas.settings import settings

# ---------------------------------------------------------------- the same run on Redis: RedisMemory

CONNECT_TIMEOUT_S = 5.0  # an unreachable Redis host fails in seconds, not after the OS TCP timeout
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

# Runs inside Redis, so the read of the old stamp and the write are one atomic step, and every
# client, on any machine, takes its time from the server's clock (the rule of next_stamp, in µs).
_SET_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local previous = tonumber(redis.call('HGET', KEYS[1], 'updated_at') or '0')
if now <= previous then now = previous + 1 end
redis.call('HSET', KEYS[1], 'value', ARGV[1], 'updated_at', string.format('%d', now))
return now
"""

# A lease is a hash of its own beside the memory's (`holder`, no `value`: memory reads skip it), with
# an expiry; ARGV: holder, ttl in ms, and a holder known to be dead, whose lease may be taken.
_LEASE_SCRIPT = """
local current = redis.call('HGET', KEYS[1], 'holder')
if (not current) or current == ARGV[1] or current == ARGV[3] then
  redis.call('HSET', KEYS[1], 'holder', ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return false
end
return current
"""
_RELEASE_SCRIPT = """
if redis.call('HGET', KEYS[1], 'holder') == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""

START_REDIS = "redis-server --port 6379 --save '' --appendonly no"  # a throwaway server: in memory, no files
START_REDIS_HINT = (
    f"Start a throwaway server (in memory only, no files):\n\n    {START_REDIS}\n\n"
    "(install it with `sudo apt-get install redis-server`, or `brew install redis` on macOS), then "
    "`export REDIS_URL=redis://localhost:6379/0` before you start Python or Jupyter."
)


class RedisMemory(_BaseMemory):
    """The memory contract on a Redis server: one hash per key, `{prefix}:{namespace}/{key}`.

    Each hash holds `value` and `updated_at` (microseconds since the epoch, server time).
    `get_all` and `clear` find their keys with SCAN on this memory's own prefix, so they never
    block the server (as KEYS would) nor touch another application's data (as FLUSHDB would).
    Needs the `redis` package (`pip install 'mas[redis]'`) and Redis 6 or newer.
    """

    def __init__(self, url: str | None = None, namespace: str = "", *, prefix: str = "mas") -> None:
        super().__init__(namespace)
        redis = require("redis", "RedisMemory")
        if not prefix or not isinstance(prefix, str) or ":" in prefix:
            # ":" ends the prefix: with "app" and "app:tenant2" both allowed, one would read the other's keys
            raise ValueError(f"prefix must be a non-empty string without ':', got {prefix!r}")
        self.url = url or settings().redis_url
        self.prefix = prefix
        self._down = (redis.ConnectionError, redis.TimeoutError)
        client = redis.Redis.from_url(self.url, decode_responses=True, socket_connect_timeout=CONNECT_TIMEOUT_S)
        self._shared = _Shared(client)
        try:
            with self._client() as c:
                c.ping()
        except MemoryUnavailableError:
            client.close()
            raise
        self._set_script = client.register_script(_SET_SCRIPT)
        self._lease_script = client.register_script(_LEASE_SCRIPT)
        self._release_script = client.register_script(_RELEASE_SCRIPT)

    def set(self, key: str, value: str) -> None:
        full = self._redis_key(key)
        _check_value(value)
        with self._client() as client:
            self._set_script(keys=[full], args=[value], client=client)

    def set_many(self, items: Mapping[str, str]) -> None:
        """Several keys in one MULTI/EXEC transaction: all of them are written, or none."""
        fulls = [self._redis_key(key) for key in items]
        for value in items.values():
            _check_value(value)
        with self._client() as client:
            pipe = client.pipeline(transaction=True)
            for full, value in zip(fulls, items.values()):
                self._set_script(keys=[full], args=[value], client=pipe)
            pipe.execute()

    def get(self, key: str) -> str | None:
        return self._field("value", key)

    def lease(self, name: str, holder: str, ttl: float) -> str | None:
        """Take or renew the lease `name` for `holder` for `ttl` seconds: None when it is now
        `holder`'s, else the holder that has it (its hash expires on the server's clock)."""
        full, ttl_ms = self._redis_key(name), max(1, round(ttl * 1000))
        with self._client() as client:
            current = self._lease_script(keys=[full], args=[holder, ttl_ms, ""], client=client)
            if current is not None and holder_is_dead(current):
                current = self._lease_script(keys=[full], args=[holder, ttl_ms, current], client=client)
        return current

    def release(self, name: str, holder: str) -> None:
        with self._client() as client:
            self._release_script(keys=[self._redis_key(name)], args=[holder], client=client)

    def updated_at(self, key: str) -> datetime | None:
        """When `key` was last written (by the server's clock), as an aware UTC datetime; None when missing."""
        micros = self._field("updated_at", key)
        return _EPOCH + timedelta(microseconds=int(micros)) if micros is not None else None

    def get_all(self) -> dict[str, str]:
        """Every key of this scope (without its namespace) and its value, in key order."""
        with self._client() as client:
            keys = self._keys(client)
            pipe = client.pipeline(transaction=False)
            for full in keys:
                pipe.hget(full, "value")
            values = pipe.execute()
        start = len(self._redis_key_prefix())
        return {full[start:]: value for full, value in zip(keys, values) if value is not None}

    def delete(self, key: str) -> None:
        full = self._redis_key(key)
        with self._client() as client:
            client.unlink(full)

    def clear(self) -> None:
        """Delete every key of this scope; unscoped, every key under this memory's prefix."""
        with self._client() as client:
            keys = self._keys(client)
            for i in range(0, len(keys), 500):
                client.unlink(*keys[i:i + 500])

    def __repr__(self) -> str:
        return f"RedisMemory({redact_url(self.url)!r}, namespace={self.namespace!r}, prefix={self.prefix!r})"

    def _redis_key_prefix(self) -> str:
        return f"{self.prefix}:{self._prefix}"

    def _redis_key(self, key: str) -> str:
        return f"{self.prefix}:{self._key(key)}"

    def _keys(self, client: Any) -> list[str]:
        return _scan(client, self._redis_key_prefix(), _type="HASH")

    def _field(self, field: str, key: str) -> str | None:
        full = self._redis_key(key)
        with self._client() as client:
            return client.hget(full, field)

    @contextmanager
    def _client(self) -> Iterator[Any]:
        self._check_open()
        try:
            yield self._shared.resource
        except self._down as exc:
            # `from None`: the client's own traceback (sockets, retries) says nothing more useful.
            raise MemoryUnavailableError(
                f"cannot reach Redis at {redact_url(self.url)} ({exc}). Point REDIS_URL at a running "
                f"server, or:\n{START_REDIS_HINT}"
            ) from None

    def _release(self, client: Any) -> None:
        client.close()


def _scan(client: Any, prefix: str, pattern: str = "*", **options: Any) -> list[str]:
    """The keys that start with `prefix` (taken literally) and then match the glob `pattern`, sorted.

    SCAN may return a key twice: the set drops repeats."""
    return sorted(set(client.scan_iter(match=glob_escape(prefix) + pattern, count=1000, **options)))


def glob_escape(text: str) -> str:
    """`text` as a literal in a Redis MATCH pattern (SCAN's glob): its `*?[]\\` escaped.

    >>> print(glob_escape("run*1/"))
    run\\*1/
    """
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


# ---------------------------------------------------------------- several workers share a run: the job queue

RESULT = "result/"  # memory key of a job's reply: result/<job id>
POLL_S = 0.05  # how often the coordinator looks at memory and at its workers

# Take the next job and count the attempt in one atomic step (a script runs alone in Redis).
_TAKE_SCRIPT = """
local raw = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
if raw then redis.call('HINCRBY', KEYS[3], cjson.decode(raw)['id'], 1) end
return raw
"""


class Job(BaseModel):
    """One independent piece of a run: a task for an agent of `role`; its reply goes to result/<id>."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    task: str
    role: str = "researcher"

    @field_validator("id")
    @classmethod
    def _plain_id(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", value):
            raise ValueError(f"a job id is letters, digits, '_', '.' or '-' (it names a memory key), got {value!r}")
        return value

    @field_validator("role")
    @classmethod
    def _known_role(cls, value: str) -> str:
        if value not in prompts.SYSTEM_PROMPTS:
            raise ValueError(f"no system prompt for role {value!r}; known roles: {', '.join(prompts.SYSTEM_PROMPTS)}")
        return value


class JobQueue:
    """The Redis side of a run's jobs: push, take, finish, requeue; results live in `self.memory`.

    The queue and the run's memory share one client, so they fail alike (`MemoryUnavailableError`
    when the server is away, `MemoryClosedError` after `close()`)."""

    def __init__(self, namespace: str, url: str | None = None, *, prefix: str = "mas"):
        require("redis", "JobQueue")  # before RedisMemory's, so that a missing extra names JobQueue
        self.memory = RedisMemory(url, namespace=namespace, prefix=prefix)  # checks the namespace, pings
        self.namespace, self.url, self.prefix = namespace, self.memory.url, prefix
        self._base = f"{prefix}:{namespace}/queue:"
        self._redis = self.memory._shared.resource
        self._take = self._redis.register_script(_TAKE_SCRIPT)
        self._server = self._call(self._redis.info, "server")["run_id"]  # changes when the server restarts

    def lost_cause(self) -> str:
        """Why jobs vanished when no worker failed them: the server restarted (a server without
        persistence forgets everything), or the queue's keys were deleted; "" when neither shows."""
        if self._call(self._redis.info, "server")["run_id"] != self._server:
            return ("Redis restarted while the jobs ran (its run_id changed), and a server without persistence "
                    "forgot the queue and the replies: run the jobs again (use a server with appendonly yes to "
                    "keep them)")
        if not self.pending() and not self._keys("processing:*"):
            return "the jobs are no longer in the queue (were its keys deleted, or the database flushed?)"
        return ""

    def push(self, jobs: list[Job]) -> int:
        """Append jobs to the pending list; ids must be unique within the run. Returns how many."""
        ids = [job.id for job in jobs]
        if len(set(ids)) != len(ids):
            raise ValueError(f"job ids must be unique in a run, got {ids}")
        if jobs:
            self._call(self._redis.rpush, self._base + "pending", *(job.model_dump_json() for job in jobs))
        return len(jobs)

    def take(self, worker: str) -> tuple[Job, str] | None:
        """The next job, moved to `worker`'s processing list (and its raw text, to acknowledge it)."""
        raw = self._call(self._take, keys=[self._base + "pending", self._processing(worker),
                                           self._base + "attempts"])
        return (Job.model_validate_json(raw), raw) if raw else None

    def finish(self, worker: str, job: Job, raw: str, result: str | None) -> None:
        """Save the reply (first), then acknowledge: the job leaves the processing list."""
        if result is not None:
            self.memory.set(RESULT + job.id, result)
        self._acknowledge(worker, job, raw, "done_by", worker)

    def fail(self, worker: str, job: Job, raw: str, reason: str) -> None:
        """Record why a job failed and acknowledge it: reported by `collect`, never silently dropped."""
        self._acknowledge(worker, job, raw, "failed", reason)

    def requeue(self, worker: str | None = None) -> int:
        """Put a dead worker's jobs (every worker's when None) back at the head of the queue.

        Only for workers known to be dead: a live worker would still finish its job."""
        lists = [self._processing(worker)] if worker else self._keys("processing:*")
        moved = 0
        for key in lists:  # one LMOVE per job: a job is never in two lists, nor in none
            while self._call(self._redis.lmove, key, self._base + "pending", "RIGHT", "LEFT"):
                moved += 1
        return moved

    def pending(self) -> list[str]:
        return self._ids(self._base + "pending")

    def in_progress(self) -> dict[str, list[str]]:
        """worker -> the ids of the jobs it has taken and not acknowledged (a dead worker's stay here)."""
        start = len(self._processing(""))
        lists = {key[start:]: self._ids(key) for key in self._keys("processing:*")}
        return {worker: ids for worker, ids in lists.items() if ids}

    def attempts(self) -> dict[str, int]:
        """job id -> how many times it was taken (1 for every job, unless a worker died holding it)."""
        return {k: int(v) for k, v in self._hash("attempts").items()}

    def done_by(self) -> dict[str, str]:
        return self._hash("done_by")

    def failures(self) -> dict[str, str]:
        return self._hash("failed")

    def results(self, ids: list[str]) -> dict[str, str]:
        """The replies in memory for `ids`, in that order (missing ones left out)."""
        found = self.memory.scoped(RESULT.rstrip("/")).get_all()
        return {job_id: found[job_id] for job_id in ids if job_id in found}

    def reset(self) -> None:
        """Empty the queue (pending, processing, failures) for a new round; attempts and done_by stay.

        Only with no worker of this run running."""
        keys = [self._base + "pending", self._base + "failed", *self._keys("processing:*")]
        self._call(self._redis.unlink, *keys)

    def clear(self) -> None:
        """Delete all this run's queue keys (not its memory: `self.memory.clear()`). SCAN, never KEYS."""
        keys = self._keys("*")
        if keys:
            self._call(self._redis.unlink, *keys)

    def close(self) -> None:
        self.memory.close()  # and with it the client the queue shares

    def __enter__(self) -> JobQueue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _ids(self, key: str) -> list[str]:
        return [Job.model_validate_json(raw).id for raw in self._call(self._redis.lrange, key, 0, -1)]

    def _hash(self, name: str) -> dict[str, str]:
        return dict(sorted(self._call(self._redis.hgetall, self._base + name).items()))

    def _acknowledge(self, worker: str, job: Job, raw: str, record: str, value: str) -> None:
        pipe = self._redis.pipeline()  # MULTI/EXEC: both or neither
        pipe.hset(self._base + record, job.id, value)
        pipe.lrem(self._processing(worker), 1, raw)
        self._call(pipe.execute)

    def _processing(self, worker: str) -> str:
        return f"{self._base}processing:{worker}"

    def _keys(self, pattern: str) -> list[str]:
        return self._call(_scan, self._redis, self._base, pattern)

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        with self.memory._client():  # the memory's checks and errors: closed, or the server away
            return fn(*args, **kwargs)


def work(namespace: str, url: str | None = None, *, worker: str = "w1", prefix: str = "mas",
         client: Any = None) -> int:
    """A worker: take jobs until the queue is empty, run each one's agent, save the reply.
    Returns how many jobs it took. An API error or an unusable reply fails that job (recorded)."""
    client = client or make_client()
    taken = 0
    with JobQueue(namespace, url, prefix=prefix) as queue:
        while (got := queue.take(worker)) is not None:
            job, raw = got
            taken += 1
            if queue.memory.get(RESULT + job.id) is not None:  # done before a crash that came before its ack
                queue.finish(worker, job, raw, None)
                continue
            try:  # a new agent for each job: jobs are independent, no history from the last one
                reply = BaseAgent(job.role, client=client).run(job.task)
            except (anthropic.APIError, AgentReplyError) as err:
                queue.fail(worker, job, raw, f"{type(err).__name__}: {redact_text(str(err).splitlines()[0])}")
                continue
            queue.finish(worker, job, raw, reply)
    return taken


@dataclass
class Worker:
    """A worker process this coordinator started."""

    name: str
    process: subprocess.Popen

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash would: no cleanup runs, its job stays in its processing list."""
        self.process.kill()
        self.process.wait()


def start_workers(namespace: str, count: int, url: str | None = None, *, prefix: str = "mas",
                  latency: float = 0.0, log_dir: str | os.PathLike[str] | None = None) -> list[Worker]:
    """Start `count` worker processes (`python -m mas.scaling`) on the run `namespace`.

    `latency`: the offline model's simulated seconds per reply (no effect on live Claude).
    The URL goes through the environment, not the command line, so `ps` never shows a password.
    Output goes to `log_dir/<worker>.log`, or nowhere."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    env = {**os.environ, "REDIS_URL": url or settings().redis_url}
    if log_dir is not None:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
    workers = []
    for i in range(1, count + 1):
        name = f"w{i}-{secrets.token_hex(3)}"  # unique: never shares a dead worker's processing list
        cmd = [sys.executable, "-m", "mas.scaling", namespace, "--worker", name, "--prefix", prefix,
               "--latency", str(latency)]
        log = open(Path(log_dir) / f"{name}.log", "w") if log_dir is not None else nullcontext(subprocess.DEVNULL)
        with log as out:  # closing our copy of the file once the child is started: it has its own
            workers.append(Worker(name, subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)))
    return workers


def collect(queue: JobQueue, workers: list[Worker], ids: list[str], *, timeout: float = 60.0, restarts: int = 1,
            latency: float = 0.0, log_dir: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """Wait until every job in `ids` has its reply in memory; returns {id: reply} in `ids` order.

    A worker that dies (non-zero exit) has its jobs requeued. When no worker is left and jobs
    are pending, a new one is started, at most `restarts` times. Raises `JobsIncomplete`
    when jobs failed or no worker is left to do them, and `TimeoutError` (after stopping the
    workers; their jobs stay recoverable) when `timeout` seconds pass."""
    workers, dead = list(workers), set()
    deadline = time.monotonic() + timeout
    while True:
        alive = [w for w in workers if w.alive]  # before reading results: a worker that exited has written
        results = queue.results(ids)
        if len(results) == len(ids):
            # subtle: a worker saves a reply, then acknowledges its job; wait for the workers to finish
            # (the queue is empty, so they exit), so that no job still looks taken when this returns
            for w in alive:
                try:
                    w.process.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    w.kill()
            return results
        for w in workers:
            if not w.alive and w.process.returncode != 0 and w.name not in dead:
                dead.add(w.name)
                queue.requeue(w.name)
        if not alive:
            if queue.pending() and restarts > 0:
                restarts -= 1
                workers += start_workers(queue.namespace, 1, queue.url, prefix=queue.prefix, latency=latency,
                                         log_dir=log_dir)
                continue
            failures = queue.failures()
            raise JobsIncomplete([i for i in ids if i not in results], failures,
                                 "" if failures else queue.lost_cause())
        if time.monotonic() > deadline:
            for w in alive:
                w.kill()
            raise TimeoutError(f"{len(ids) - len(results)} of {len(ids)} job(s) not done after {timeout}s; "
                               "their workers were stopped and `queue.requeue()` puts the jobs back")
        time.sleep(POLL_S)


def run_jobs(namespace: str, jobs: list[Job], url: str | None = None, *, workers: int = 4, prefix: str = "mas",
             latency: float = 0.0, timeout: float = 60.0, restarts: int = 1,
             log_dir: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """Push the jobs whose reply is not in memory yet (so a re-run resumes), start `workers`
    processes, and collect every reply. Call it with no worker of this run still running."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    with JobQueue(namespace, url, prefix=prefix) as queue:
        done = queue.results([job.id for job in jobs])
        todo = [job for job in jobs if job.id not in done]
        queue.reset()  # what a crashed earlier round left queued or taken: exactly the missing jobs go back
        queue.push(todo)
        if todo:
            started = start_workers(namespace, min(workers, len(todo)), queue.url, prefix=prefix, latency=latency,
                                    log_dir=log_dir)
            collect(queue, started, [job.id for job in todo], timeout=timeout, restarts=restarts, latency=latency,
                    log_dir=log_dir)
        return queue.results([job.id for job in jobs])


# ---------------------------------------------------------------- many runs, many machines: Celery

RUN_TASK = "mas.run_topic"  # the one task: run (or resume) one pipeline run
QUEUE = "mas"
VISIBILITY_TIMEOUT_S = 3600.0  # an unacknowledged task goes to another worker after this long: > the longest run
BUSY_RETRY_S = 5.0  # a task whose run another worker holds tries again this much later


def celery_app(url: str | None = None, *, visibility_timeout: float = VISIBILITY_TIMEOUT_S,
               rate: str | None = None, latency: float = 0.0) -> Any:
    """The Celery app of `mas worker` and `mas submit`: broker, results and the runs' memory on one Redis
    (REDIS_URL), and one task, `run_topic`. `rate` ("50/m") is a requests-per-period limit every worker shares;
    `latency` the offline model's simulated seconds a reply (none for live Claude). Needs the `redis` extra.

    The settings that make a task survive a worker's death, each the answer to one way of losing it:
    - `task_acks_late`: the message is acknowledged after the task returns, not when a worker takes it, so a
      worker that dies mid-run leaves it in Redis (notebook 08's LMOVE lesson, done by Celery);
    - `task_reject_on_worker_lost`: a pool process killed mid-task (SIGKILL, the OOM killer) gives its message
      back at once, and another process takes it;
    - `broker_transport_options.visibility_timeout`: a whole worker lost (its machine gone) cannot give the
      message back; Redis hands it to another worker once it has gone unacknowledged this long. So it must be
      longer than the longest run, or a slow run is delivered twice; the run lease keeps the second delivery
      off the run (it retries later, and then finds the run finished).
    - `worker_prefetch_multiplier=1`: a process reserves one task at a time, so the others wait for whoever
      is free, not behind a busy process.
    A redelivered task resumes the run from its checkpoints: a killed run costs at most the call in flight."""
    celery = require("celery", "celery_app")
    url = url or settings().redis_url
    app = celery.Celery("mas", broker=url, backend=url, set_as_current=False)
    app.conf.update(task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
                    broker_transport_options={"visibility_timeout": visibility_timeout},
                    task_default_queue=QUEUE, task_serializer="json", result_serializer="json",
                    accept_content=["json"], broker_connection_retry_on_startup=True, result_expires=7 * 86400,
                    worker_redirect_stdouts_level="INFO")  # a run's progress lines are information, not warnings
    app.conf.mas = {"url": url, "rate": rate and parse_rate(rate), "latency": latency}
    app.task(name=RUN_TASK, bind=True, max_retries=None)(run_topic)
    return app


def run_topic(task: Any, run_id: str, topic: str, audience: str, max_cycles: int = 3) -> dict[str, Any]:
    """The task: run `topic` as `run_id`, or resume it, on the Redis memory; what it returns is the run's end."""
    from mas.hooks import call_hook
    from mas.offline import Latency
    from mas.orchestrator import Orchestrator

    conf = task.app.conf.mas
    here = f"{socket.gethostname()}:{os.getpid()}"
    with RedisMemory(conf["url"]) as memory:
        run = memory.scoped(run_id)

        def progress(line: str) -> None:
            if line.startswith(("[Orchestrator] Run ", "[Orchestrator] Resuming")):  # the lease is ours now
                run.set("worker", here)
            print(f"[{run_id}] {line}", flush=True)

        latency = Latency(base=conf["latency"]) if conf["latency"] and is_offline() else None
        limit = SharedRate(*conf["rate"], url=conf["url"]) if conf["rate"] else None
        with make_client(latency=latency) as client, call_hook(limit) if limit else nullcontext():
            try:
                result = Orchestrator(memory, client=client, max_revision_cycles=max_cycles,
                                      progress=progress).run(topic, audience, run_id=run_id)
            except RunBusy as err:  # a second delivery while the first still runs: later, it finds the run done
                raise task.retry(exc=err, countdown=BUSY_RETRY_S) from None
    return {"run_id": run_id, "status": result.status, "cycles": result.cycles, "calls": result.usage.calls,
            "reason": result.reason, "worker": here}


def submit(app: Any, topics: list[str], name: str, audience: str = prompts.DEFAULT_AUDIENCE,
           max_cycles: int = 3, queue: str = QUEUE) -> list[Any]:
    """One task a topic, run ids `name-001`, ...; the task id is the run id, so submitting again is harmless
    (a finished run returns at once). Returns the tasks' `AsyncResult`s."""
    RedisMemory(app.conf.mas["url"]).close()  # an unreachable Redis is one error now, not a send retried forever
    run_ids = [f"{name}-{n:03d}" for n in range(1, len(topics) + 1)]
    return [app.send_task(RUN_TASK, args=[run_id, topic, audience, max_cycles], task_id=run_id, queue=queue)
            for run_id, topic in zip(run_ids, topics)]


def parse_rate(text: str) -> tuple[int, float]:
    """A rate as Celery writes one, "N/s", "N/m" or "N/h": (N requests, per seconds).

    >>> parse_rate("50/m"), parse_rate("4/s")
    ((50, 60.0), (4, 1.0))
    """
    count, _, unit = str(text).partition("/")
    seconds = {"s": 1.0, "m": 60.0, "h": 3600.0}.get(unit.strip())
    if not count.strip().isdigit() or int(count) < 1 or seconds is None:
        raise ValueError(f"a rate is N/s, N/m or N/h with N >= 1 (e.g. 50/m), got {text!r}")
    return int(count), seconds


# A sliding window in one sorted set, by the server's clock: drop what is older than the window, then take a
# place if there is one (0), else say how many ms until the oldest leaves it.
_RATE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
"""


class SharedRate:
    """A hook (`mas.hooks`): at most `limit` model requests every `per` seconds, across every process and
    machine that counts in the same Redis key; a call past it waits for a place, and is then sent."""

    def __init__(self, limit: int, per: float = 60.0, url: str | None = None, *, key: str = "mas:rate"):
        if limit < 1 or not per > 0:
            raise ValueError(f"a rate needs limit >= 1 and per > 0 seconds, got {limit}/{per}")
        redis = require("redis", "SharedRate")
        self.limit, self.window_ms, self.key = limit, int(per * 1000), key
        self._redis = redis.Redis.from_url(url or settings().redis_url, socket_connect_timeout=CONNECT_TIMEOUT_S)
        self._take = self._redis.register_script(_RATE_SCRIPT)

    def __call__(self, agent: Any, request: dict) -> None:
        while (wait_ms := int(self._take(keys=[self.key], args=[self.limit, self.window_ms, secrets.token_hex(8)]))):
            time.sleep(wait_ms / 1000)


def runs(memory: Any) -> list[dict[str, str]]:
    """Every run in `memory` (a scope with a `topic`), in id order: its id, topic, status, drafts and worker."""
    found: dict[str, dict[str, str]] = {}
    for key, value in memory.get_all().items():
        run_id, _, field = key.rpartition("/")
        if run_id and field in ("topic", "status", "worker", "reason") and "/" not in run_id.strip("/"):
            found.setdefault(run_id, {"run": run_id})[field] = value
        if run_id and field.startswith("draft_") and field[6:].isdigit():
            entry = found.setdefault(run_id, {"run": run_id})
            entry["drafts"] = str(max(int(entry.get("drafts", "0")), int(field[6:])))
    return [found[r] for r in sorted(found) if "topic" in found[r]]


def merge_bullets(replies: list[str]) -> str:
    """The bullet points of several replies as one list, in order, each point once.

    >>> merge_bullets(["## A\\n\\n- one\\n- two", "* two\\n1. three\\nA closing remark."])
    '- one\\n- two\\n- three'
    """
    return prompts.bullet_list(prompts.merge_bullets(replies))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mas.scaling", description="Work on a run's job queue.")
    parser.add_argument("namespace", help="the run's namespace (its run id)")
    parser.add_argument("--worker", default=f"w-{os.getpid()}", help="this worker's name (unique in the run)")
    parser.add_argument("--prefix", default="mas", help="the Redis key prefix (RedisMemory's)")
    parser.add_argument("--latency", type=float, default=0.0, help="offline model: simulated seconds per reply")
    args = parser.parse_args(argv)
    from mas.offline import Latency

    # the simulated latency stands in for Claude's own, so a live worker has none (a live client refuses it)
    client = make_client(latency=Latency(base=args.latency) if args.latency and is_offline() else None)
    taken = work(args.namespace, os.environ.get("REDIS_URL"), worker=args.worker, prefix=args.prefix,
                 client=client)
    print(f"{args.worker}: {taken} job(s)", flush=True)
    return 0


if __name__ == "__main__":
    from mas.cli import exit_on_setup_problem  # a bad switch or an unreachable Redis: one line, not a traceback

    sys.exit(exit_on_setup_problem(main, "python -m mas.scaling"))
