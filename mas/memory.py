"""Shared memory: the key-value store the agents pass their results through, on SQLite or Redis.

Agents share no state directly. The researcher writes `research`, the writer reads it and
writes `draft`, and so on, through a memory that outlives the process, so a run can be
inspected with any SQLite client (or redis-cli) and resumed after a crash.

- `Memory` is the contract: `set`, `get`, `get_all`, `delete`, `clear`, `close`, `updated_at`,
  `scoped`, and use as a context manager. The orchestrator takes any object that has it.
- `SQLiteMemory` (alias `PersistentMemory`, the tutorial's name) keeps the tutorial's table
  `memory(key, value, updated_at)` and adds what a shared store needs: WAL, a busy timeout,
  a lock for threads and write transactions that several processes can share.
- `RedisMemory` is the same contract on a Redis server, for many processes and machines: it
  is notebook 08's idea, so it lives in `mas.scaling` (built on `_BaseMemory` here).

Namespaces are plain key prefixes: `memory.scoped("run-42")` stores `draft` as the row
`run-42/draft`, so two runs in one database never overwrite each other, while the unscoped
memory sees (and `clear()`s) the whole table, exactly as the tutorial's class did.

Simplified on purpose: values are strings (`set_json`/`get_json` carry dicts and pydantic
models as readable JSON text), there are no expiry times and no transactions across keys,
and `get_all` loads a scope into one dict.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Mapping, Protocol, Self, runtime_checkable

from mas.errors import MemoryClosedError, MemoryUnavailableError, RunBusy
from mas.settings import settings

__all__ = ["Memory", "SQLiteMemory", "PersistentMemory", "MemoryClosedError", "MemoryUnavailableError", "next_stamp",
           "Lease"]

LEASE_TTL_S = 600.0  # a lease lives this long unless renewed: longer than any one step (a call and its retries)
BUSY_TIMEOUT_S = 30.0  # how long a writer waits for another process's write to finish
ROWS_A_STATEMENT = 100  # set_many's rows in one INSERT (SQLite allows 32,766 parameters in a statement)
SEP = "/"  # between a namespace and a key: `run-42/draft` reads well in any client
_JOURNAL_MODES = ("wal", "delete", "truncate", "persist")
_STAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # SQLite's CURRENT_TIMESTAMP (UTC) plus microseconds


@runtime_checkable
class Memory(Protocol):
    """What every memory backend does; values are strings, `get` gives None for a missing key."""

    def set(self, key: str, value: str) -> None: ...
    def set_many(self, items: Mapping[str, str]) -> None: ...
    def get(self, key: str) -> str | None: ...
    def get_all(self) -> dict[str, str]: ...
    def delete(self, key: str) -> None: ...
    def clear(self) -> None: ...
    def updated_at(self, key: str) -> datetime | None: ...
    def scoped(self, namespace: str) -> Memory: ...
    def lease(self, name: str, holder: str, ttl: float) -> str | None: ...
    def release(self, name: str, holder: str) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> Memory: ...
    def __exit__(self, *exc_info: object) -> None: ...


def next_stamp(previous: datetime | None, now: datetime) -> datetime:
    """The `updated_at` of a write made at `now` over one stamped `previous`: always later.

    Clocks step back (NTP) and two writes can share a microsecond, so "now" alone would let
    an overwrite look older than what it replaced.

    >>> t = datetime(2025, 1, 1, 12, 0, 0, 5, tzinfo=timezone.utc)
    >>> next_stamp(t, now=datetime(2025, 1, 1, 11, 59, tzinfo=timezone.utc))  # the clock stepped back
    datetime.datetime(2025, 1, 1, 12, 0, 0, 6, tzinfo=datetime.timezone.utc)
    """
    if previous is None or now > previous:
        return now
    return previous + timedelta(microseconds=1)


_second: tuple[int, str] = (0, "")  # the last whole second stamped (UTC) and its text, "YYYY-MM-DD HH:MM:SS"


def now_stamp() -> str:
    """Now, in UTC, as `_STAMP_FORMAT` (what `updated_at` holds).

    Subtle: every write is stamped, and a datetime built and formatted each time cost more than the rest of
    `set_many`'s Python; so the text up to the second is made once a second, and the microseconds added.

    >>> len(now_stamp()), now_stamp()[10], now_stamp()[19]
    (26, ' ', '.')
    """
    global _second
    seconds, micros = divmod(time.time_ns() // 1000, 1_000_000)
    cached = _second  # one read: another thread may replace it meanwhile, never half of it
    if cached[0] != seconds:
        cached = _second = (seconds, datetime.fromtimestamp(seconds, timezone.utc).isoformat(" ")[:19])
    return f"{cached[1]}.{micros:06d}"


def holder_id() -> str:
    """Who holds a lease: this host, this process, and a token of this holder's own."""
    return f"{socket.gethostname()}:{_pid}:{os.urandom(4).hex()}"  # 8 hex digits, as uuid4's first


def holder_is_dead(holder: str) -> bool:
    """True when `holder` is a process of this host that no longer runs: its lease is free at once.
    (A holder on another host, or on Windows, frees its lease only when the lease expires.)"""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if os.name != "posix" or host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except OSError:  # it exists, as another user's process
        return False
    return False


class Lease:
    """Ownership of one run: `with Lease(memory.scoped(run_id)):` takes it or raises `RunBusy`.

    The lease is a row of the memory itself (SQLite and Redis alike), so every process and
    machine that shares the memory sees it. It expires `ttl` seconds after it was last
    renewed, or at once when its holder was a process of this host that died; `renew()` (the
    orchestrator calls it before each write) renews it once a third of `ttl` has passed, and
    raises `RunBusy` if another holder took it meanwhile."""

    def __init__(self, memory: Memory, ttl: float = LEASE_TTL_S, name: str = "lease") -> None:
        if not ttl > 0:
            raise ValueError(f"a lease's ttl is a number of seconds > 0, got {ttl!r}")
        self.memory, self.ttl, self.name, self.holder = memory, ttl, name, holder_id()
        self._renewed = 0.0

    def renew(self) -> None:
        now = time.monotonic()
        if now - self._renewed < self.ttl / 3:
            return
        current = self.memory.lease(self.name, self.holder, self.ttl)
        if current is not None:
            where = f"{self.memory.namespace!r}" if getattr(self.memory, "namespace", "") else "this memory"
            raise RunBusy(f"run {where} is being run by another process ({current}); wait until it ends, or "
                          f"until its lease expires ({self.ttl:.0f} s after its last step; at once if that "
                          "process has died on this machine)", current)
        self._renewed = now

    def __enter__(self) -> Lease:
        self.renew()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.memory.release(self.name, self.holder)


_pid = os.getpid()  # this process's id, kept current in a forked child (below): no system call at each statement


def _after_fork_in_child() -> None:
    global _pid
    _pid = os.getpid()


if hasattr(os, "register_at_fork"):  # POSIX; os.fork and multiprocessing's fork both run it in the child
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _Shared:
    """What a memory and its scoped views share: one connection, its lock, whether it is closed."""

    def __init__(self, resource: Any) -> None:
        self.resource = resource
        self.lock = threading.Lock()
        self.pid = _pid
        self.closed = False


class _BaseMemory:
    """The parts both backends share: keys and namespaces, scoped views, closing, JSON helpers."""

    _shared: _Shared

    def __init__(self, namespace: str = "") -> None:
        if namespace:
            _check_namespace(namespace)
        self.namespace = namespace
        self._prefix = namespace + SEP if namespace else ""
        self._owner = True  # the memory that opened the connection closes it; a view only closes itself
        self._closed = False

    def scoped(self, namespace: str) -> Self:
        """A view of the keys under `namespace` (nested under this one), on the same connection."""
        _check_namespace(namespace)
        view = object.__new__(type(self))  # a shallow copy, as copy.copy makes, at a third of its cost (one a run)
        view.__dict__.update(self.__dict__)
        _BaseMemory.__init__(view, self._prefix + namespace)
        view._owner = False
        return view

    def close(self) -> None:
        """Close this memory; closing the memory that opened the connection closes its views too."""
        with self._shared.lock:
            self._closed = True
            if self._owner and not self._shared.closed:
                self._shared.closed = True
                self._release(self._shared.resource)

    def set_many(self, items: Mapping[str, str]) -> None:
        """Set several keys, in order; every value is checked before any is written (a backend may
        make it one transaction: SQLite does)."""
        for value in items.values():
            _check_value(value)
        for key, value in items.items():
            self.set(key, value)

    def set_json(self, key: str, obj: Any) -> None:
        """Store a dict, list or pydantic model as compact JSON text (still readable in any client)."""
        if hasattr(obj, "model_dump_json"):  # a pydantic model, without importing pydantic here
            text = obj.model_dump_json()
        else:
            text = json.dumps(obj, ensure_ascii=False)
        self.set(key, text)

    def get_json(self, key: str, model: type | None = None) -> Any:
        """The value at `key` parsed from JSON, validated as `model` when given; None when missing."""
        text = self.get(key)
        if text is None:
            return None
        return model.model_validate_json(text) if model is not None else json.loads(text)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _key(self, key: str) -> str:
        if not isinstance(key, str):
            raise TypeError(f"memory keys are strings, got {type(key).__name__}: {key!r}")
        if not key:
            raise ValueError("a memory key cannot be empty")
        return self._prefix + key

    def _check_open(self) -> None:
        if self._closed or self._shared.closed:
            raise MemoryClosedError(f"this {type(self).__name__} is closed; open a new one to use it again")

    def _release(self, resource: Any) -> None:
        raise NotImplementedError


def _check_namespace(namespace: object) -> None:
    if not isinstance(namespace, str) or not namespace or namespace.startswith(SEP) or namespace.endswith(SEP):
        raise ValueError(f"a namespace (a run id, say) is a non-empty string that neither starts nor ends "
                         f"with {SEP!r}, got {namespace!r}")


def _check_value(value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"memory values are strings, got {type(value).__name__}: store str(value), or use "
                        "set_json(key, obj) for dicts and pydantic models")


class SQLiteMemory(_BaseMemory):
    """The tutorial's `PersistentMemory`, safe to share across threads and processes.

    Subtle: one connection guarded by one lock, rather than one connection per thread.
    SQLite lets a single writer in at a time anyway, the lock keeps two threads' statements
    out of each other's transactions, and `close()` then really closes everything (a
    per-thread connection would outlive `close()` in every thread that ever used it).

    Every write is `BEGIN IMMEDIATE ... COMMIT`: it takes the database's write lock before it
    reads, so another process's write makes it wait (up to the busy timeout) instead of
    failing with "database is locked" when a read transaction tries to become a write.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, namespace: str = "", *,
                 journal_mode: str = "wal") -> None:
        super().__init__(namespace)
        if journal_mode.lower() not in _JOURNAL_MODES:
            raise ValueError(f"journal_mode must be one of {_JOURNAL_MODES}, got {journal_mode!r}")
        self.path = Path(path if path is not None else settings().db)
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: the module starts no transactions of its own; ours are explicit.
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        conn.create_function("mas_next_stamp", 2, _next_stamp_text, deterministic=True)
        conn.create_function("mas_holder_is_dead", 1, holder_is_dead)
        try:
            self.journal_mode = _set_journal_mode(conn, journal_mode.lower())
            if self.journal_mode == "wal":
                # SQLite's advice for WAL: each commit is in the WAL file (written, not synced) when its
                # statement returns, so it survives a crashed or killed process, which is what resuming a
                # run needs (tests/test_memory.py kills a writer mid-run and finds every commit); only a
                # power loss or OS crash may drop the last commits. FULL would sync the disk on every set,
                # 5 ms each here, more than the orchestration itself.
                conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("CREATE TABLE IF NOT EXISTS memory (key TEXT PRIMARY KEY, value TEXT, updated_at TIMESTAMP)")
            conn.execute("CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires REAL)")
        except BaseException:
            conn.close()
            raise
        self._shared = _Shared(conn)

    def set(self, key: str, value: str) -> None:
        self.set_many({key: value})

    def set_many(self, items: Mapping[str, str]) -> None:
        """Several keys in one transaction: all of them are written, or none."""
        now = now_stamp()
        params: list[str] = []
        for key, value in items.items():
            _check_value(value)  # every value is checked before anything is written
            params += (self._key(key), value, now)
        # One statement for up to ROWS_A_STATEMENT rows: SQLite makes it a transaction that takes
        # the write lock when it starts (a writing statement does not read first and then upgrade),
        # so it waits out another process's write instead of failing. More rows: BEGIN IMMEDIATE.
        rows = len(params) // 3
        if rows <= ROWS_A_STATEMENT:
            if rows:
                with self._shared.lock:
                    self._usable().execute(_upsert(rows), params)
            return
        with self._transaction() as conn:
            for start in range(0, len(params), 3 * ROWS_A_STATEMENT):
                chunk = params[start:start + 3 * ROWS_A_STATEMENT]
                conn.execute(_upsert(len(chunk) // 3), chunk)

    def lease(self, name: str, holder: str, ttl: float) -> str | None:
        """Take or renew the lease `name` for `holder`, for `ttl` seconds: None when it is now
        `holder`'s, else the holder that has it (in the table `leases`, beside `memory`)."""
        full = self._key(name)
        if not _RETURNING:  # SQLite before 3.35: the take and the read of who has it, in one transaction
            with self._transaction() as conn:
                now = time.time()
                conn.execute(_TAKE_LEASE, (full, holder, now + ttl, now))
                row = conn.execute("SELECT holder FROM leases WHERE name = ? AND holder != ?", (full, holder)).fetchone()
            return row[0] if row else None
        with self._shared.lock:
            conn = self._usable()
            while True:
                now = time.time()
                # One statement: a row comes back when the lease was taken or renewed for `holder`, none when
                # another holder has it (fetchall: the statement ends, so its write is committed here).
                if conn.execute(_TAKE_LEASE_RETURNING, (full, holder, now + ttl, now)).fetchall():
                    return None
                row = conn.execute("SELECT holder FROM leases WHERE name = ?", (full,)).fetchone()
                if row is not None:
                    return row[0]
                # subtle: its holder gave it up between the two statements (another process): try again

    def release(self, name: str, holder: str) -> None:
        """Give the lease up, if `holder` still has it."""
        full = self._key(name)
        with self._shared.lock:
            self._usable().execute("DELETE FROM leases WHERE name = ? AND holder = ?", (full, holder))

    def get(self, key: str) -> str | None:
        return self._column("value", key)

    def updated_at(self, key: str) -> datetime | None:
        """When `key` was last written, as an aware UTC datetime; None when missing."""
        text = self._column("updated_at", key)
        return _parse_stamp(text) if text is not None else None

    def get_all(self) -> dict[str, str]:
        """Every key of this scope (without its namespace) and its value, in key order."""
        where, params = self._scope_clause()
        with self._shared.lock:
            rows = self._usable().execute(f"SELECT key, value FROM memory{where} ORDER BY key", params).fetchall()
        return {key[len(self._prefix):]: value for key, value in rows}

    def delete(self, key: str) -> None:
        full = self._key(key)
        with self._transaction() as conn:
            conn.execute("DELETE FROM memory WHERE key = ?", (full,))

    def clear(self) -> None:
        """Delete every key of this scope; unscoped, the whole table (as the tutorial's class does)."""
        where, params = self._scope_clause()
        with self._transaction() as conn:
            conn.execute(f"DELETE FROM memory{where}", params)

    def __repr__(self) -> str:
        return f"SQLiteMemory({str(self.path)!r}, namespace={self.namespace!r})"

    def _column(self, column: str, key: str) -> str | None:
        full = self._key(key)
        with self._shared.lock:
            row = self._usable().execute(f"SELECT {column} FROM memory WHERE key = ?", (full,)).fetchone()
        return row[0] if row else None

    def _scope_clause(self) -> tuple[str, tuple[str, ...]]:
        # Subtle: a range, not LIKE 'run_1/%' (where `_` matches any character). Every key that
        # starts with "run/" sorts at or after "run/" and before "run0", since "0" follows "/".
        if not self._prefix:
            return "", ()
        return " WHERE key >= ? AND key < ?", (self._prefix, self._prefix[:-1] + chr(ord(SEP) + 1))

    def _usable(self) -> sqlite3.Connection:
        """The connection, once it is known to be open and of this process (call with the lock held:
        `with self._shared.lock:`, not a @contextmanager, which would cost a generator at each statement)."""
        self._check_open()
        if self._shared.pid != _pid:  # a connection must never cross a fork
            raise MemoryClosedError(f"this {type(self).__name__} was opened in another process "
                                    "(before a fork); open a new one in this process")
        return self._shared.resource

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._shared.lock:
            conn = self._usable()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _release(self, conn: sqlite3.Connection) -> None:
        conn.close()


PersistentMemory = SQLiteMemory

# Subtle: stamps are text in one fixed format, so they sort as they are in time; the rare write
# whose clock is not past the stored stamp (a clock stepped back, a shared microsecond) gets
# `next_stamp` of it, computed in Python by `mas_next_stamp`.
# One statement, so taking a lease is atomic: a free, expired or dead holder's lease changes hands.
_TAKE_LEASE = ("INSERT INTO leases (name, holder, expires) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
               "holder = excluded.holder, expires = excluded.expires WHERE leases.holder = excluded.holder "
               "OR leases.expires < ? OR mas_holder_is_dead(leases.holder)")
_TAKE_LEASE_RETURNING = _TAKE_LEASE + " RETURNING holder"
_RETURNING = sqlite3.sqlite_version_info >= (3, 35, 0)  # INSERT ... RETURNING (2021); older: a second statement


@lru_cache(maxsize=ROWS_A_STATEMENT)
def _upsert(rows: int) -> str:
    return ("INSERT INTO memory (key, value, updated_at) VALUES " + ", ".join(["(?, ?, ?)"] * rows) +
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = CASE WHEN memory.updated_at IS "
            "NULL OR excluded.updated_at > memory.updated_at THEN excluded.updated_at "
            "ELSE mas_next_stamp(memory.updated_at, excluded.updated_at) END")


def _next_stamp_text(previous: str, now: str) -> str:
    return next_stamp(_parse_stamp(previous), _parse_stamp(now)).strftime(_STAMP_FORMAT)


def _set_journal_mode(conn: sqlite3.Connection, mode: str) -> str:
    """Put the file in `mode` (WAL lets readers go on while one process writes); the mode it is in.

    Subtle: unlike other statements, switching the journal mode does not wait for the busy
    timeout. When several processes open a new file at once, all but one get "database is
    locked" at once, so they retry here until the switch is made (usually by another process).
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    pause = 0.001
    while True:
        try:
            current = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if current == mode:  # the mode is stored in the file: after its first opening, nothing to do
                return current
            return conn.execute(f"PRAGMA journal_mode={mode}").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.05)


def _parse_stamp(text: str) -> datetime:
    """A stored stamp as an aware UTC datetime (SQLite's own CURRENT_TIMESTAMP form included)."""
    stamp = datetime.fromisoformat(text)
    return stamp.replace(tzinfo=timezone.utc) if stamp.tzinfo is None else stamp.astimezone(timezone.utc)

