"""The memory contract, held by every backend: SQLite on a temporary file, Redis on the test run's real server.

Then what each backend promises on top: SQLite's table, threads, processes and crashes; Redis's
prefixes, SCAN-only housekeeping and a clear error when the server is away.
"""

from __future__ import annotations

import json
import multiprocessing
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import BaseModel

from mas.errors import MemoryClosedError, MemoryUnavailableError
from mas.memory import Memory, PersistentMemory, SQLiteMemory, next_stamp, now_stamp
from mas.scaling import RedisMemory

WORKER = str(Path(__file__).with_name("memory_worker.py"))


@pytest.fixture(params=["sqlite", "redis"])
def open_memory(request, tmp_path):
    """Opens memories on one store of this test's own: a new SQLite file, or a Redis prefix no other test uses."""
    if request.param == "sqlite":
        path = tmp_path / "memory.db"

        def open_one():
            return SQLiteMemory(path)
    else:
        url, prefix = request.getfixturevalue("redis_url"), f"mas-test-{uuid.uuid4().hex}"

        def open_one():
            return RedisMemory(url, prefix=prefix)
    opened = []

    def tracked():
        opened.append(open_one())
        return opened[-1]

    yield tracked
    for memory in opened:
        memory.close()
    if request.param == "redis":
        with open_one() as memory:
            memory.clear()


@pytest.fixture
def memory(open_memory):
    return open_memory()


# --- the contract, on every backend ---


def test_a_value_round_trips_and_survives_a_new_object(open_memory):
    first = open_memory()
    first.set("research", "- vector databases store embeddings")
    assert first.get("research") == "- vector databases store embeddings"
    first.close()
    assert open_memory().get("research") == "- vector databases store embeddings"


def test_it_is_a_memory_and_a_scope_is_the_same_kind(memory):
    assert isinstance(memory, Memory)
    assert type(memory.scoped("run-1")) is type(memory)
    assert memory.scoped("run-1").namespace == "run-1"


def test_overwrite_keeps_only_the_last_value(memory):
    memory.set("draft", "v1")
    memory.set("draft", "v2")
    assert memory.get("draft") == "v2"
    assert memory.get_all() == {"draft": "v2"}


def test_a_missing_key_is_none_and_deleting_it_is_harmless(memory):
    assert memory.get("nothing") is None
    assert memory.updated_at("nothing") is None
    memory.delete("nothing")
    assert memory.get_all() == {}


def test_delete_removes_one_key(memory):
    memory.set("research", "r")
    memory.set("draft", "d")
    memory.delete("draft")
    assert memory.get("draft") is None
    assert memory.updated_at("draft") is None
    assert memory.get_all() == {"research": "r"}


def test_clear_removes_every_key(memory):
    for key in ("research", "draft", "feedback"):
        memory.set(key, key.upper())
    memory.clear()
    assert memory.get_all() == {}
    assert memory.get("draft") is None


def test_get_all_gives_every_key_in_key_order(memory):
    for key in ("validation", "draft", "research"):
        memory.set(key, f"<{key}>")
    everything = memory.get_all()
    assert everything == {"draft": "<draft>", "research": "<research>", "validation": "<validation>"}
    assert list(everything) == ["draft", "research", "validation"]


def test_updated_at_is_utc_and_strictly_later_on_every_overwrite(memory):
    stamps = []
    for i in range(30):  # back to back: many writes land in the same clock tick
        memory.set("draft", f"v{i}")
        stamps.append(memory.updated_at("draft"))
    assert all(stamp.utcoffset() == timedelta(0) for stamp in stamps)
    assert all(earlier < later for earlier, later in zip(stamps, stamps[1:]))
    memory.set("other", "x")
    assert memory.updated_at("draft") == stamps[-1]  # another key's write leaves this one's stamp alone


def test_unicode_keys_and_values(memory):
    value = "Résumé: 向量数据库 🚀 — «quotes», a tab\t, a newline\n, a NUL \x00 end"
    memory.set("brouillon-é🚀", value)
    assert memory.get("brouillon-é🚀") == value
    assert memory.get_all() == {"brouillon-é🚀": value}


def test_large_values(memory):
    ascii_mb = "x" * (1 << 20)
    multibyte_mb = "é" * (1 << 19)  # 1 MiB once encoded as UTF-8
    memory.set("big", ascii_mb)
    memory.set("big-utf8", multibyte_mb)
    assert memory.get("big") == ascii_mb
    assert memory.get("big-utf8") == multibyte_mb


def test_two_runs_never_overwrite_each_other(memory):
    run_a, run_b = memory.scoped("run-a"), memory.scoped("run-b")
    run_a.set("draft", "A's draft")
    run_b.set("draft", "B's draft")
    assert run_a.get("draft") == "A's draft"
    assert run_b.get("draft") == "B's draft"
    assert run_a.get_all() == {"draft": "A's draft"}
    assert memory.get("draft") is None
    # the unscoped memory is the whole table, as in the tutorial: it sees each run's keys under its name
    assert memory.get_all() == {"run-a/draft": "A's draft", "run-b/draft": "B's draft"}


def test_clear_on_a_scope_clears_only_that_scope(memory):
    memory.set("shared", "s")
    memory.scoped("run-a").set("draft", "a")
    run_b = memory.scoped("run-b")
    run_b.set("draft", "b")
    run_b.set("research", "b")
    run_b.clear()
    assert run_b.get_all() == {}
    assert memory.get_all() == {"run-a/draft": "a", "shared": "s"}


@pytest.mark.parametrize("namespace, neighbour", [("run_1", "runX1"), ("run%", "run-a"), ("run*", "run-a"),
                                                  ("run?", "runs"), ("run[1]", "run1")])
def test_pattern_characters_in_a_namespace_are_literal(memory, namespace, neighbour):
    memory.scoped(neighbour).set("draft", "neighbour's")
    scope = memory.scoped(namespace)
    scope.set("draft", "mine")
    assert scope.get_all() == {"draft": "mine"}
    scope.clear()
    assert memory.scoped(neighbour).get("draft") == "neighbour's"


def test_scopes_nest(memory):
    memory.scoped("run-1").scoped("writer").set("draft", "d")
    assert memory.scoped("run-1/writer").get("draft") == "d"
    assert memory.scoped("run-1").get_all() == {"writer/draft": "d"}
    assert memory.get("run-1/writer/draft") == "d"


def test_use_after_close_raises_a_clear_error(memory):
    memory.set("draft", "d")
    memory.close()
    memory.close()  # closing twice is harmless
    calls = [lambda: memory.set("draft", "x"), lambda: memory.get("draft"), memory.get_all,
             lambda: memory.delete("draft"), memory.clear, lambda: memory.updated_at("draft")]
    for call in calls:
        with pytest.raises(MemoryClosedError, match="closed"):
            call()


def test_a_context_manager_closes_the_memory(open_memory):
    with open_memory() as memory:
        memory.set("draft", "d")
    with pytest.raises(MemoryClosedError):
        memory.get("draft")


def test_closing_a_scope_closes_only_the_scope_and_closing_its_parent_closes_both(memory):
    with memory.scoped("run-1") as run:
        run.set("draft", "d")
    with pytest.raises(MemoryClosedError):
        run.get("draft")
    assert memory.get("run-1/draft") == "d"
    other = memory.scoped("run-2")
    memory.close()
    with pytest.raises(MemoryClosedError):
        other.get("draft")


def test_misuse_raises_at_once_and_stores_nothing(memory):
    for value in (42, None, b"bytes", {"a": 1}):
        with pytest.raises(TypeError, match="values are strings.*set_json"):
            memory.set("draft", value)
    with pytest.raises(TypeError, match="keys are strings"):
        memory.set(7, "x")
    with pytest.raises(ValueError, match="empty"):
        memory.set("", "x")
    for namespace in ("", "/run", "run/", None):
        with pytest.raises(ValueError, match="namespace"):
            memory.scoped(namespace)
        with pytest.raises(ValueError, match="namespace"):
            memory.scoped("run-1").scoped(namespace)
    assert memory.get_all() == {}


class Verdict(BaseModel):
    approved: bool
    issues: list[str]


def test_json_helpers_store_readable_text(memory):
    memory.set_json("plan", {"topic": "vector databases", "steps": ["research", "write"], "note": "é"})
    assert memory.get_json("plan") == {"topic": "vector databases", "steps": ["research", "write"], "note": "é"}
    assert memory.get("plan") == '{"topic": "vector databases", "steps": ["research", "write"], "note": "é"}'
    memory.set_json("verdict", Verdict(approved=False, issues=["no sources"]))
    assert memory.get_json("verdict", Verdict) == Verdict(approved=False, issues=["no sources"])
    assert json.loads(memory.get("verdict")) == {"approved": False, "issues": ["no sources"]}
    assert memory.get_json("missing") is None


def test_next_stamp_hand_worked():
    noon = datetime(2025, 1, 1, 12, 0, 0, 5, tzinfo=timezone.utc)
    assert next_stamp(None, noon) == noon
    assert next_stamp(noon, noon + timedelta(seconds=1)) == noon + timedelta(seconds=1)
    assert next_stamp(noon, noon) == datetime(2025, 1, 1, 12, 0, 0, 6, tzinfo=timezone.utc)
    assert next_stamp(noon, noon - timedelta(minutes=5)) == datetime(2025, 1, 1, 12, 0, 0, 6, tzinfo=timezone.utc)


@pytest.mark.parametrize("offset_s", [0, 0.5, 1, 59.999999, 86400, -3600])  # the same second, the next, a day on, back
def test_now_stamp_hand_worked_across_seconds_and_a_clock_stepped_back(monkeypatch, offset_s):
    noon_ns = 1_735_732_800_123_456_789  # 2025-01-01 12:00:00.123456789 UTC
    ns = noon_ns + round(offset_s * 1e9)
    readings = [noon_ns, ns]  # the clock reads these, then stays at the last
    monkeypatch.setattr("mas.memory.time.time_ns", lambda: readings.pop(0) if len(readings) > 1 else readings[0])
    assert now_stamp() == "2025-01-01 12:00:00.123456"  # formatted once for that second ...
    expected = datetime(2025, 1, 1, 12, 0, 0, 123456, tzinfo=timezone.utc) + timedelta(microseconds=ns // 1000 -
                                                                                      noon_ns // 1000)
    assert now_stamp() == expected.strftime("%Y-%m-%d %H:%M:%S.%f")  # ... and again for another


# --- processes ---


def start_writers(args: list[str], tags: list[str], count: int, cwd: Path) -> list[subprocess.Popen]:
    """Start one writer process a tag; return once each has opened the memory and said `ready`."""
    workers = [subprocess.Popen([sys.executable, WORKER, "write", *args, "--tag", tag, "--count", str(count)],
                                cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for tag in tags]
    for worker in workers:
        line = worker.stdout.readline()
        assert line == "ready\n", worker.communicate()[1]
    return workers


def release(workers: list[subprocess.Popen]) -> None:
    """Let every worker start writing, all at about the same moment."""
    for worker in workers:
        worker.stdin.write("go\n")
        worker.stdin.flush()


def finish(workers: list[subprocess.Popen]) -> None:
    """Wait for every worker to exit, and check that it did so cleanly."""
    for worker in workers:
        _, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err
        assert "Error" not in err


def worker_args(memory) -> list[str]:
    if isinstance(memory, SQLiteMemory):
        return ["sqlite", str(memory.path)]
    return ["redis", memory.url, "--prefix", memory.prefix]


def test_a_fresh_process_reads_what_was_written(memory, tmp_path):
    memory.set("research", "r é")
    memory.scoped("run-1").set("draft", "d")
    args = worker_args(memory)
    memory.close()
    dump = subprocess.run([sys.executable, WORKER, "dump", *args], cwd=tmp_path, capture_output=True, text=True,
                          check=True)
    assert json.loads(dump.stdout) == {"research": "r é", "run-1/draft": "d"}




# --- SQLite ---


def write_from_threads(memory: SQLiteMemory, threads: int, count: int) -> list[BaseException]:
    """`threads` threads, started together, each writing (and reading back) `count` keys; the errors they met."""
    start, errors = threading.Barrier(threads), []

    def work(tag: str) -> None:
        try:
            start.wait()
            for i in range(count):
                memory.set(f"{tag}/{i}", f"{tag}:{i}")
                assert memory.get(f"{tag}/{i}") == f"{tag}:{i}"
        except BaseException as exc:  # noqa: BLE001 - reported by the test, whatever it is
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(f"t{n}",)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return errors


def test_sqlite_eight_threads_share_one_memory(tmp_path):
    with SQLiteMemory(tmp_path / "memory.db") as memory:
        assert write_from_threads(memory, threads=8, count=100) == []
        assert len(memory.get_all()) == 800


def test_sqlite_eight_threads_and_four_processes_on_one_file(tmp_path):
    path = tmp_path / "memory.db"
    tags = [f"p{i}" for i in range(4)]
    workers = start_writers(["sqlite", str(path)], tags, 100, tmp_path)
    with SQLiteMemory(path) as memory:
        release(workers)  # the processes write while the threads do
        assert write_from_threads(memory, threads=8, count=50) == []
        finish(workers)
        everything = memory.get_all()
    assert len(everything) == 4 * 100 + 8 * 50
    assert all(everything[f"{tag}/{i}"] == f"{tag}:{i}" for tag in tags for i in range(100))
    assert all(everything[f"t{n}/{i}"] == f"t{n}:{i}" for n in range(8) for i in range(50))


@pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals")
def test_sqlite_a_process_killed_mid_writing_leaves_a_sound_file_with_every_commit(tmp_path):
    path = tmp_path / "memory.db"
    [worker] = start_writers(["sqlite", str(path)], ["k"], 0, tmp_path)  # 0: writes until killed
    release([worker])
    for _ in range(40):
        assert worker.stdout.readline().startswith("committed")
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)
    rest = worker.stdout.read()  # read() also returns the lines readline() has buffered; communicate() would not
    assert worker.returncode == -signal.SIGKILL
    committed = 40 + rest.count("committed")
    client = sqlite3.connect(path)  # any SQLite client, as after a real crash
    assert client.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    rows = dict(client.execute("SELECT key, value FROM memory"))
    client.close()
    assert all(rows[f"k/{i}"] == f"k:{i}" for i in range(committed))
    assert len(rows) in (committed, committed + 1)  # at most the one write whose line was never printed


def test_sqlite_keeps_the_tutorials_table_in_wal_mode(tmp_path):
    path = tmp_path / "memory.db"
    with PersistentMemory(path) as memory:
        memory.set("draft", "d")
        assert memory.journal_mode == "wal"
    client = sqlite3.connect(path)
    columns = [(name, kind, pk) for _, name, kind, _, _, pk in client.execute("PRAGMA table_info(memory)")]
    assert columns == [("key", "TEXT", 1), ("value", "TEXT", 0), ("updated_at", "TIMESTAMP", 0)]
    assert client.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    value, stamp = client.execute("SELECT value, updated_at FROM memory WHERE key = 'draft'").fetchone()
    client.close()
    assert value == "d"
    # stored like SQLite's own CURRENT_TIMESTAMP (UTC), with microseconds, so SQL date functions read it
    assert datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f")


def test_sqlite_opens_a_database_written_by_the_tutorials_class(tmp_path):
    path = tmp_path / "memory.db"
    client = sqlite3.connect(path)
    client.execute("CREATE TABLE memory (key TEXT PRIMARY KEY, value TEXT, updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)")
    client.execute("INSERT OR REPLACE INTO memory (key, value) VALUES ('draft', 'old')")
    client.execute("INSERT INTO memory (key, value, updated_at) VALUES ('by-hand', 'x', NULL)")
    client.commit()
    written = datetime.strptime(client.execute("SELECT updated_at FROM memory").fetchone()[0], "%Y-%m-%d %H:%M:%S")
    client.close()
    with SQLiteMemory(path) as memory:
        assert memory.get_all() == {"by-hand": "x", "draft": "old"}
        assert memory.updated_at("draft") == written.replace(tzinfo=timezone.utc)
        assert memory.updated_at("by-hand") is None
        memory.set("draft", "new")
        memory.set("by-hand", "y")
        assert memory.updated_at("draft") > written.replace(tzinfo=timezone.utc)
        assert memory.updated_at("by-hand") is not None


def test_sqlite_path_defaults_to_mas_db_then_data_memory_db_and_its_folder_is_made(tmp_path, monkeypatch):
    monkeypatch.setenv("MAS_DB", str(tmp_path / "from-env" / "m.db"))
    with SQLiteMemory() as memory:
        memory.set("k", "v")
    assert (tmp_path / "from-env" / "m.db").is_file()
    monkeypatch.delenv("MAS_DB")
    monkeypatch.chdir(tmp_path)
    with SQLiteMemory() as memory:
        memory.set("k", "v")
    assert (tmp_path / "data" / "memory.db").is_file()
    with SQLiteMemory(tmp_path / "a" / "b" / "c.db") as memory:
        memory.set("k", "v")
    assert (tmp_path / "a" / "b" / "c.db").is_file()


def _use_inherited(memory: SQLiteMemory, results) -> None:
    try:
        memory.get("k")
        results.put("no error")
    except MemoryClosedError as exc:
        results.put(str(exc))


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")  # forking is the point
def test_sqlite_refuses_a_connection_inherited_through_fork(tmp_path):
    fork = multiprocessing.get_context("fork")
    with SQLiteMemory(tmp_path / "memory.db") as memory:
        memory.set("k", "v")
        results = fork.Queue()
        child = fork.Process(target=_use_inherited, args=(memory, results))
        child.start()
        message = results.get(timeout=30)
        child.join()
        assert "another process" in message
        assert memory.get("k") == "v"  # the parent's connection is untouched


# --- Redis ---


def test_redis_four_processes_writing_at_once_lose_nothing(redis_url, tmp_path):
    tags = [f"p{i}" for i in range(4)]
    with RedisMemory(redis_url, prefix=f"mas-test-{uuid.uuid4().hex}") as memory:
        workers = start_writers(worker_args(memory), tags, 100, tmp_path)
        release(workers)
        finish(workers)
        assert memory.get_all() == {f"{tag}/{i}": f"{tag}:{i}" for tag in tags for i in range(100)}
        memory.clear()


def test_redis_touches_only_its_own_keys_and_never_keys_or_flushdb(redis_url):
    import redis

    raw = redis.Redis.from_url(redis_url, decode_responses=True)
    prefix = f"mas-test-{uuid.uuid4().hex}"
    raw.set(f"{prefix}-other:draft", "another app's")
    raw.hset(f"other-{prefix}:draft", mapping={"value": "x"})
    raw.config_resetstat()
    with RedisMemory(redis_url, prefix=prefix) as memory:
        memory.set("draft", "d")
        assert memory.get_all() == {"draft": "d"}
        assert raw.hgetall(f"{prefix}:draft")["value"] == "d"
        memory.clear()
    stats = raw.info("commandstats")
    assert raw.get(f"{prefix}-other:draft") == "another app's"
    assert raw.hget(f"other-{prefix}:draft", "value") == "x"
    assert "cmdstat_scan" in stats
    assert not {"cmdstat_keys", "cmdstat_flushdb", "cmdstat_flushall"} & set(stats)
    raw.delete(f"{prefix}-other:draft", f"other-{prefix}:draft")
    raw.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_redis_unreachable_gives_one_clear_error_without_the_password():
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    with pytest.raises(MemoryUnavailableError) as caught:
        RedisMemory(url)
    message = str(caught.value)
    assert url.replace(":hunter2@", "***@") in message
    assert "hunter2" not in message
    assert "redis-server --port 6379" in message and "apt-get install redis-server" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_redis_server_going_away_gives_the_same_error(redis_to_stop):
    memory = RedisMemory(redis_to_stop.url)
    memory.set("draft", "d")
    redis_to_stop.stop()
    with pytest.raises(MemoryUnavailableError, match="cannot reach Redis"):
        memory.get("draft")
    memory.close()


def test_redis_url_comes_from_redis_url_env(redis_url, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    with RedisMemory(prefix=f"mas-test-{uuid.uuid4().hex}") as memory:
        assert memory.url == redis_url
        memory.set("k", "v")
        assert memory.get("k") == "v"
        memory.clear()


def run_python(code: str, cwd: Path) -> str:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, check=True).stdout


def test_importing_mas_memory_does_not_import_redis(tmp_path):
    assert run_python("import sys, mas, mas.memory; print('redis' in sys.modules)", tmp_path) == "False\n"


def test_without_the_redis_package_the_error_says_how_to_install_it(tmp_path):
    code = ("import sys; sys.modules['redis'] = None  # what Python does for a package that is not installed\n"
            "from mas.scaling import RedisMemory\n"
            "try: RedisMemory()\n"
            "except ImportError as exc: print(exc)")
    assert "pip install 'mas[redis]'" in run_python(code, tmp_path)


@pytest.mark.parametrize("stored", ["2999-01-01 00:00:00.000005", "2999-01-01 00:00:00", "2999-01-01T00:00:00+00:00"])
def test_sqlite_an_overwrite_is_always_stamped_later_even_over_a_future_stamp(tmp_path, stored):
    """A stamp another client (or a clock ahead) wrote, in any of SQLite's forms: the next write is 1 µs later."""
    path = tmp_path / "m.db"
    with SQLiteMemory(path) as memory:
        memory.set("k", "old")
        with sqlite3.connect(path) as raw:
            raw.execute("UPDATE memory SET updated_at = ? WHERE key = 'k'", (stored,))
        memory.set("k", "new")
        assert memory.get("k") == "new"
        assert memory.updated_at("k") == datetime.fromisoformat(stored).replace(tzinfo=timezone.utc) + \
            timedelta(microseconds=1)
        memory.set("fresh", "v")  # a new key: stamped now
        assert abs(memory.updated_at("fresh") - datetime.now(timezone.utc)) < timedelta(minutes=5)


def test_set_many_beyond_one_statement_is_still_one_transaction(tmp_path):
    from mas.memory import ROWS_A_STATEMENT

    path = tmp_path / "memory.db"
    rows = {f"k{i:04d}": str(i) for i in range(2 * ROWS_A_STATEMENT + 7)}
    with SQLiteMemory(path) as memory:
        memory.set_many(rows)
        assert memory.get_all() == rows
        memory.clear()
        with sqlite3.connect(path) as raw:  # a real failure in the last statement of the batch
            raw.execute("CREATE TRIGGER refuse BEFORE INSERT ON memory WHEN NEW.key = 'k%04d' "
                        "BEGIN SELECT RAISE(ABORT, 'refused'); END" % (len(rows) - 1))
        with pytest.raises(sqlite3.IntegrityError, match="refused"):
            memory.set_many(rows)
        assert memory.get_all() == {}  # none of the rows before it


def test_set_many_writes_every_key_or_none(open_memory):
    memory = open_memory().scoped("run-1")
    memory.set_many({"status": "writing", "draft_1": "# Draft", "usage": "{}"})
    assert memory.get_all() == {"draft_1": "# Draft", "status": "writing", "usage": "{}"}
    with pytest.raises(TypeError, match="memory values are strings"):
        memory.set_many({"report": "text", "usage": {"calls": 1}})
    assert memory.get("report") is None and memory.get("usage") == "{}"  # nothing of the bad batch
    memory.set_many({})
    assert len(memory.get_all()) == 3
