"""A run has one owner at a time, and no verdict approves a draft it did not read: leases on SQLite and
Redis, races between real processes, tampered drafts, and namespaces that never overlap."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mas.client import make_client
from mas.contracts import CheckedVerdict
from mas.errors import RunBusy
from mas.memory import Lease, SQLiteMemory
from mas.offline import OfflineTransport
from mas.orchestrator import Orchestrator
from mas.scaling import RedisMemory

TOPIC = "How vector databases enable semantic search"
HERE = Path(__file__).parent
DEAD = f"{socket.gethostname()}:999999999:dead"  # a process of this host that does not exist
ELSEWHERE = "another-host.invalid:1:alive"  # a holder this host cannot check: only expiry frees it


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    """A memory of the test's own on each backend."""
    if request.param == "sqlite":
        memory = SQLiteMemory(tmp_path / "memory.db")
    else:
        memory = RedisMemory(request.getfixturevalue("redis_url"), prefix=f"t{uuid.uuid4().hex}")
    with memory:
        yield memory


def orchestrate(memory, **kw):
    transport = OfflineTransport()
    return transport, Orchestrator(memory, client=make_client(transport=transport, max_retries=0), progress=None,
                                   **kw)


def assert_every_approval_read_its_report(run):
    """The invariant: an approved run's report is the very text its last verdict judged."""
    if run.get("status") == "approved":
        cycle = max(int(k.split("_")[1]) for k in run.get_all() if k.startswith("validation_"))
        verdict = CheckedVerdict.model_validate_json(run.get(f"validation_{cycle}"))
        assert verdict.approved and verdict.judged(run.get("report")) and run.get("report") == run.get(f"draft_{cycle}")


# ---------------------------------------------------------------------------- the lease itself

def test_a_lease_is_one_holders_until_released_expired_or_its_holder_dies(store):
    check_lease_rules(store)


def test_on_an_sqlite_without_returning_a_lease_keeps_the_same_rules(tmp_path, monkeypatch):
    """SQLite before 3.35 has no INSERT ... RETURNING: the take and the read of its holder, in one transaction."""
    monkeypatch.setattr("mas.memory._RETURNING", False)
    with SQLiteMemory(tmp_path / "memory.db") as memory:
        check_lease_rules(memory)


def test_a_lease_given_up_while_it_is_being_taken_is_taken_again_never_assumed(tmp_path):
    """Another process's holder releases between the refused take and the read of who has it: the lease is taken
    (a row says so), not reported as this holder's with no row to keep the next runner out."""
    path = tmp_path / "memory.db"
    with SQLiteMemory(path) as memory, sqlite3.connect(path, isolation_level=None) as other:
        assert memory.scoped("r").lease("lease", ELSEWHERE, 30) is None
        reads = []

        def release_before_the_read(sql: str) -> None:  # runs as each statement starts, before it reads
            if sql.startswith("SELECT holder FROM leases") and not reads:
                reads.append(sql)
                other.execute("DELETE FROM leases WHERE name = 'r/lease'")

        memory._shared.resource.set_trace_callback(release_before_the_read)  # the one way in between two statements
        assert memory.scoped("r").lease("lease", "me:1:a", 30) is None and reads
        memory._shared.resource.set_trace_callback(None)
        assert other.execute("SELECT holder FROM leases WHERE name = 'r/lease'").fetchall() == [("me:1:a",)]
        assert memory.scoped("r").lease("lease", ELSEWHERE, 30) == "me:1:a"


def check_lease_rules(store):
    run = store.scoped("r")
    assert run.lease("lease", "me:1:a", 30) is None and run.lease("lease", "me:1:a", 30) is None  # renewed
    assert run.lease("lease", ELSEWHERE, 30) == "me:1:a"
    run.release("lease", ELSEWHERE)  # not its lease: nothing happens
    assert run.lease("lease", ELSEWHERE, 30) == "me:1:a"
    run.release("lease", "me:1:a")
    assert run.lease("lease", ELSEWHERE, 1.0) is None  # 1 s: it cannot expire between these two calls
    assert run.lease("lease", "me:1:a", 30) == ELSEWHERE
    time.sleep(1.1)
    assert run.lease("lease", "me:1:a", 30) is None  # expired
    run.release("lease", "me:1:a")
    assert run.lease("lease", DEAD, 30) is None
    assert run.lease("lease", "me:1:a", 30) is None  # its holder is gone: free at once
    assert store.scoped("other").lease("lease", ELSEWHERE, 30) is None  # one lease per run


def test_a_lease_is_invisible_to_the_memory_it_guards(store):
    run = store.scoped("r")
    run.set("draft_1", "text")
    run.lease("lease", "me:1:a", 30)
    assert run.get_all() == {"draft_1": "text"} and run.get("lease") is None


def test_a_second_runner_is_refused_with_who_holds_the_run_and_touches_nothing(store):
    orchestrate(store)[1].run(TOPIC, run_id="r")  # a finished run ...
    run = store.scoped("r")
    before = run.get_all()
    run.lease("lease", ELSEWHERE, 30)  # ... that another machine is resuming now
    transport, orch = orchestrate(store)
    with pytest.raises(RunBusy, match="being run by another process .another-host.invalid:1:alive.; wait") as busy:
        orch.run(run_id="r")
    assert busy.value.holder == ELSEWHERE and transport.model.calls == 0 and run.get_all() == before


def test_a_run_whose_lease_was_taken_over_stops_before_its_next_write(memory):
    lease = Lease(memory.scoped("r"), ttl=0.2)
    with lease:
        time.sleep(0.3)  # expired: another process takes the run over
        assert memory.scoped("r").lease("lease", ELSEWHERE, 30) is None
        with pytest.raises(RunBusy):
            lease.renew()


def test_a_lease_needs_a_positive_ttl(memory):
    for ttl in (0, -1, float("nan")):
        with pytest.raises(ValueError, match="ttl"):
            Lease(memory, ttl=ttl)


# ---------------------------------------------------------------------------- races between processes

RACES = 2  # x 3 racers x 2 backends; the figures in the notes come from longer runs of the same test


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_concurrent_resumes_of_one_run_never_approve_an_unreviewed_draft(tmp_path, request, backend):
    outcomes = []
    for trial in range(RACES):
        if backend == "sqlite":
            target, extra = str(tmp_path / f"race{trial}.db"), []
        else:
            target, extra = f"race{uuid.uuid4().hex}", [request.getfixturevalue("redis_url")]
        racers = [subprocess.Popen([sys.executable, str(HERE / "race_worker.py"), target, "r", "0.02", *extra],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
        ends = [racer.communicate(timeout=120) for racer in racers]
        assert all(racer.returncode == 0 for racer in racers), [err for _, err in ends]
        lines = [out.strip() for out, _ in ends]
        outcomes += lines
        ran = [line for line in lines if not line.startswith("busy")]
        assert ran and all(line.startswith("approved") for line in ran)
        assert sum(line == "approved calls=5" for line in lines) == 1  # one runner made the calls; others waited it out
        memory = SQLiteMemory(target) if backend == "sqlite" else RedisMemory(extra[0], prefix=target)
        with memory:
            assert_every_approval_read_its_report(memory.scoped("r"))
            assert memory.scoped("r").lease("lease", "checker:1:x", 1) is None  # released at the end
    assert len(outcomes) == 3 * RACES


# ---------------------------------------------------------------------------- verdicts bound to their draft

def test_a_draft_written_over_after_its_verdict_is_validated_again(memory):
    orchestrate(memory)[1].run(TOPIC, run_id="r")
    run = memory.scoped("r")
    tampered = run.get("draft_2") + "\n\nAlso, it makes every team ten times faster."
    run.set_many({"draft_2": tampered, "status": "validating"})
    run.delete("report")
    transport, orch = orchestrate(memory, max_revision_cycles=1)
    result = orch.run(run_id="r")
    assert transport.model.calls == 1  # the stale verdict is not reused: the tampered draft is read
    assert not CheckedVerdict.model_validate_json(run.get("validation_2")).approved
    assert result.status == "max_cycles" and not result.approved
    assert_every_approval_read_its_report(run)


def test_a_verdict_saved_without_its_draft_hash_is_not_trusted(memory):
    orchestrate(memory)[1].run(TOPIC, run_id="r")
    run = memory.scoped("r")
    unbound = CheckedVerdict.model_validate_json(run.get("validation_2")).model_copy(update={"draft_sha256": None})
    run.set_many({"validation_2": unbound.model_dump_json(), "status": "validating"})
    run.delete("report")
    transport, orch = orchestrate(memory)
    assert orch.run(run_id="r").approved and transport.model.calls == 1
    assert CheckedVerdict.model_validate_json(run.get("validation_2")).judged(run.get("report"))


# ---------------------------------------------------------------------------- namespaces and key shapes

segment = st.text(alphabet=st.sampled_from(list("ab_-:.*?[]%0/")), min_size=1, max_size=4).filter(
    lambda s: not s.startswith("/") and not s.endswith("/"))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=segment, second=segment, key=segment)
def test_sibling_namespaces_never_see_or_clear_each_others_keys(store, first, second, key):
    nested = lambda a, b: a == b or b.startswith(a + "/") or a.startswith(b + "/")  # noqa: E731
    if nested(first, second):
        return
    a, b = store.scoped("ns").scoped(first), store.scoped("ns").scoped(second)
    a.set(key, "a's")
    b.set(key, "b's")
    assert a.get(key) == "a's" and b.get(key) == "b's"
    assert a.get_all() == {key: "a's"}
    a.clear()
    assert b.get(key) == "b's" and a.get_all() == {}
    b.clear()


def test_a_redis_prefix_cannot_contain_the_separator(redis_url):
    with pytest.raises(ValueError, match="without ':'"):
        RedisMemory(redis_url, prefix="app:tenant2")


@pytest.mark.parametrize("key", ["draft_review", "draft_x/y", "team/draft_review", "draft_", "draft_1_old",
                                 "validation_x", "draft_99999999999999999999"])
def test_other_parts_keys_in_a_run_cannot_crash_its_reading(memory, key):
    orchestrate(memory)[1].run(TOPIC, run_id="r")
    memory.scoped("r").set(key, "someone else's")
    result = orchestrate(memory)[1].run(run_id="r")
    assert result.approved and result.cycles == 1


def test_mas_run_on_a_run_another_process_holds_is_one_line_and_exit_1(tmp_path):
    db = tmp_path / "memory.db"
    with SQLiteMemory(db) as memory:
        memory.scoped("r").lease("lease", ELSEWHERE, 60)
    proc = subprocess.run([sys.executable, "-m", "mas.cli", "run", TOPIC, "--db", str(db), "--run-id", "r"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    said = [line for line in proc.stderr.splitlines() if line.startswith("mas:")]
    assert len(said) == 1 and said[0].startswith("mas: run 'r' is being run by another process")
    with SQLiteMemory(db) as memory:
        assert memory.scoped("r").get_all() == {}  # it touched nothing
