"""`RedisMemory`: the memory contract of `mas.memory` on a Redis server, for many processes and machines.

    memory = RedisMemory()                        # REDIS_URL, or redis://localhost:6379/0
    memory.scoped("run-42").set("draft", text)    # the hash `mas:run-42/draft`

A separate module because it is the one backend with an optional dependency (the `redis`
package, imported only when a `RedisMemory` is made, so `import mas` never imports it) and a
server to reach. `mas.memory` re-exports it: `from mas.memory import RedisMemory` still works.
`mas.workers` uses its helpers (`glob_escape`, `redact_url`) and connection settings too.

Simplified on purpose, as in `mas.memory`: string values, no expiry times, no transactions
across keys; one client per memory, shared by its scoped views.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator
from urllib.parse import urlsplit, urlunsplit

from mas.extras import require
from mas.memory import _BaseMemory, _check_value, _Shared
from mas.errors import MemoryUnavailableError
from mas.settings import settings

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
        redis = require("redis", "RedisMemory")  # optional: only a RedisMemory needs it, so `import mas` stays light
        if not prefix or not isinstance(prefix, str):
            raise ValueError(f"prefix must be a non-empty string, got {prefix!r}")
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

    def set(self, key: str, value: str) -> None:
        full = self._redis_key(key)
        _check_value(value)
        with self._client() as client:
            self._set_script(keys=[full], args=[value], client=client)

    def get(self, key: str) -> str | None:
        full = self._redis_key(key)
        with self._client() as client:
            return client.hget(full, "value")

    def updated_at(self, key: str) -> datetime | None:
        """When `key` was last written (by the server's clock), as an aware UTC datetime; None when missing."""
        full = self._redis_key(key)
        with self._client() as client:
            micros = client.hget(full, "updated_at")
        return _EPOCH + timedelta(microseconds=int(micros)) if micros is not None else None

    def get_all(self) -> dict[str, str]:
        """Every key of this scope (without its namespace) and its value, in key order."""
        with self._client() as client:
            keys = self._scan(client)
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
            keys = self._scan(client)
            for i in range(0, len(keys), 500):
                client.unlink(*keys[i:i + 500])

    def __repr__(self) -> str:
        return f"RedisMemory({redact_url(self.url)!r}, namespace={self.namespace!r}, prefix={self.prefix!r})"

    def _redis_key_prefix(self) -> str:
        return f"{self.prefix}:{self._prefix}"

    def _redis_key(self, key: str) -> str:
        return f"{self.prefix}:{self._key(key)}"

    def _scan(self, client: Any) -> list[str]:
        pattern = glob_escape(self._redis_key_prefix()) + "*"
        # SCAN may return a key twice; the set drops repeats, the sort gives a stable order.
        return sorted(set(client.scan_iter(match=pattern, count=1000, _type="HASH")))

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


def glob_escape(text: str) -> str:
    """`text` as a literal in a Redis MATCH pattern (SCAN's glob): its `*?[]\\` escaped.

    >>> print(glob_escape("run*1/"))
    run\\*1/
    """
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def redact_url(url: str) -> str:
    """The URL without its credentials (user, password, query), fit for an error message or an output.

    >>> redact_url("redis://:s3cret@cache.example:6379/0"), redact_url("redis://localhost:6379/0")
    ('redis://***@cache.example:6379/0', 'redis://localhost:6379/0')
    >>> redact_url("https://user:tok@gateway.example/anthropic?key=abc#x")
    'https://***@gateway.example/anthropic?***'
    """
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=netloc, query="***" if parts.query else "", fragment=""))
