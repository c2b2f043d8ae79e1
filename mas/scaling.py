"""Scaling out on Redis: a run's memory on a server, and Celery workers running many runs.

    memory = RedisMemory()                        # REDIS_URL, or redis://localhost:6379/0
    memory.scoped("run-42").set("draft", text)    # the hash `mas:run-42/draft`

    app = celery_app()                             # broker, results and memory: the same Redis
    tasks = submit(app, ["Prompt caching", ...], name="week-48")   # a task a topic: runs week-48-001, ...
    [t.get() for t in tasks]                       # each run's end: status, revisions, calls, worker

    mas worker --concurrency 4 [--rate 50/m]       # on every machine that reaches REDIS_URL
    mas submit topics.txt                          # the same as `submit`, with a progress bar; mas status --redis

Notebook 08's ideas: the memory contract of `mas.memory` on a server that many processes and machines reach,
and many runs on many processes through an existing, trusted task queue (Celery, with Redis as its broker)
instead of a home-made one. One task runs (or resumes) one run; what a worker's death costs is set in
`celery_app` (acknowledged late, given back when a pool process dies, redelivered after a visibility timeout),
the run lease of `mas.memory` keeps a second delivery off a run still running, and a redelivered run resumes
from its checkpoints, so a killed run costs at most the call in flight. `SharedRate` is one requests limit for
every worker (Celery's own `rate_limit` is per worker). The `redis` extra holds both packages: only making a
`RedisMemory`, a `SharedRate` or the Celery app imports them.

Simplified on purpose: string values, no expiry times and no transactions across keys (as in `mas.memory`);
one queue for every run; the rate limit counts requests, not tokens.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from contextlib import contextmanager, nullcontext
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator, Mapping

from mas import prompts
from mas.client import is_offline, make_client
from mas.errors import MemoryUnavailableError, RunBusy
from mas.extras import require
from mas.memory import _BaseMemory, _check_value, _Shared, holder_is_dead
from mas.redact import redact_url
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
