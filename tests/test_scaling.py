"""mas.scaling's worker processes sharing one run through the test run's real Redis: every job done
exactly once, a worker killed mid-job leaves its job recoverable, a re-run resumes from memory, and
the orchestrator on RedisMemory resumes a crashed run without repeating a call. (RedisMemory's
contract is tested beside SQLiteMemory's, in test_memory.py.)"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import pytest

from mas.agents import ResearcherAgent
from mas.client import make_client
from mas.errors import JobsIncomplete, MemoryClosedError, MemoryUnavailableError
from mas.offline import Fault, OfflineTransport, ScriptedTransport
from mas.offline.knowledge import find
from mas.orchestrator import Orchestrator
from mas.prompts import research_task
from mas.scaling import Job, JobQueue, RedisMemory, Worker, collect, merge_bullets, run_jobs, start_workers, work

AUDIENCE = "senior software engineers"
TOPIC = "How vector databases enable semantic search"
STEPS = 5  # research, draft_1, validation_1, draft_2, validation_2: one offline call each


@pytest.fixture
def prefix() -> str:
    return f"mas-test-{uuid.uuid4().hex}"  # this test's own keys: nothing shared with another test


@pytest.fixture
def queue(redis_url, prefix):
    with JobQueue("run", redis_url, prefix=prefix) as q:
        yield q
        q.clear()
        q.memory.clear()


def angle_jobs(n: int) -> list[Job]:
    return [Job(id=f"angle-{i}", task=research_task(f"Angle {i} of caching in distributed systems", AUDIENCE))
            for i in range(n)]


def expected(jobs: list[Job]) -> dict[str, str]:
    """What one researcher in this process answers: the offline model is deterministic."""
    agent = ResearcherAgent(client=make_client(transport=OfflineTransport()))
    return {job.id: (agent.reset(), agent.run(job.task))[1] for job in jobs}


def wait_until(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_four_worker_processes_do_every_job_exactly_once(queue, tmp_path):
    jobs = angle_jobs(12)
    queue.push(jobs)
    workers = start_workers("run", 4, queue.url, prefix=queue.prefix, latency=0.05, log_dir=tmp_path)
    results = collect(queue, workers, [job.id for job in jobs], timeout=60)
    assert [w.process.wait(timeout=30) for w in workers] == [0, 0, 0, 0]
    assert results == expected(jobs)  # complete, in job order, each the reply to its own task
    assert queue.attempts() == {job.id: 1 for job in jobs}  # each job taken exactly once
    done_by = queue.done_by()
    assert sorted(done_by) == sorted(job.id for job in jobs) and set(done_by.values()) <= {w.name for w in workers}
    taken = sum(int((tmp_path / f"{w.name}.log").read_text().split(": ")[-1].split()[0]) for w in workers)
    assert taken == 12
    assert queue.pending() == [] and queue.in_progress() == {} and queue.failures() == {}


def test_a_worker_killed_mid_job_leaves_its_job_recoverable(queue):
    jobs = angle_jobs(3)
    queue.push(jobs)
    [slow] = start_workers("run", 1, queue.url, prefix=queue.prefix, latency=60)  # sleeps inside its first call
    wait_until(lambda: queue.in_progress())
    slow.kill()  # SIGKILL mid-job: no cleanup runs
    assert queue.in_progress() == {slow.name: ["angle-0"]}  # the job is not lost: the dead worker holds it
    assert queue.pending() == ["angle-1", "angle-2"] and queue.results(["angle-0"]) == {}

    with pytest.raises(JobsIncomplete, match="no restart was left"):
        collect(queue, [slow], [job.id for job in jobs], restarts=0)
    assert queue.pending() == ["angle-0", "angle-1", "angle-2"]  # requeued at the head, order kept
    assert queue.in_progress() == {}

    results = collect(queue, [slow], [job.id for job in jobs], restarts=1)  # a replacement worker does them
    assert results == expected(jobs)
    assert queue.attempts() == {"angle-0": 2, "angle-1": 1, "angle-2": 1}


def test_collect_stops_its_workers_at_the_timeout_and_their_jobs_stay_recoverable(queue):
    queue.push(angle_jobs(1))
    queue.take("stuck")  # a worker that took the job and never finishes: a process that only sleeps
    stuck = Worker("stuck", subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]))
    with pytest.raises(TimeoutError, match="1 of 1 job"):
        collect(queue, [stuck], ["angle-0"], timeout=0.2)
    assert not stuck.alive and queue.in_progress() == {"stuck": ["angle-0"]}
    assert queue.requeue() == 1 and queue.pending() == ["angle-0"]


def test_requeue_and_an_in_process_worker_finish_a_dead_workers_jobs(queue):
    jobs = angle_jobs(3)
    queue.push(jobs)
    queue.take("dead")
    queue.take("dead")
    assert queue.in_progress() == {"dead": ["angle-0", "angle-1"]}
    assert queue.requeue("dead") == 2 and queue.pending() == ["angle-0", "angle-1", "angle-2"]
    transport = OfflineTransport()
    assert work("run", queue.url, worker="alive", prefix=queue.prefix, client=make_client(transport=transport)) == 3
    assert transport.model.calls == 3 and queue.results([j.id for j in jobs]) == expected(jobs)
    assert queue.attempts() == {"angle-0": 2, "angle-1": 2, "angle-2": 1}
    assert set(queue.done_by().values()) == {"alive"}


def test_a_crash_after_saving_the_reply_but_before_the_ack_costs_no_second_call(queue):
    [job] = angle_jobs(1)
    queue.push([job])
    queue.take("dead")
    queue.memory.set("result/angle-0", "the reply the dead worker saved")
    queue.requeue("dead")
    transport = ScriptedTransport([])  # any request would fail: none must be sent
    work("run", queue.url, prefix=queue.prefix, client=make_client(transport=transport))
    assert transport.requests == [] and queue.in_progress() == {} and queue.pending() == []
    assert queue.results(["angle-0"]) == {"angle-0": "the reply the dead worker saved"}


def test_run_jobs_resumes_only_the_jobs_memory_does_not_hold(queue):
    jobs = angle_jobs(5)
    queue.memory.set("result/angle-0", "saved before the crash")
    queue.memory.set("result/angle-1", "saved before the crash, too")
    queue.push(jobs[2:])  # what the crashed round left: a queue, and a job taken by a dead worker
    queue.take("dead")
    results = run_jobs("run", jobs, queue.url, workers=2, prefix=queue.prefix)
    assert results == {"angle-0": "saved before the crash", "angle-1": "saved before the crash, too",
                       **{k: v for k, v in expected(jobs).items() if k not in ("angle-0", "angle-1")}}
    assert queue.attempts() == {"angle-2": 2, "angle-3": 1, "angle-4": 1}  # memory's jobs: never taken
    assert queue.pending() == [] and queue.in_progress() == {}


def test_a_failing_job_is_reported_never_dropped(queue):
    jobs = angle_jobs(3)
    queue.push(jobs)
    client = make_client(transport=OfflineTransport(faults=[Fault("bad_request", call=2)]), max_retries=0)
    assert work("run", queue.url, prefix=queue.prefix, client=client) == 3
    assert list(queue.failures()) == ["angle-1"] and "BadRequestError" in queue.failures()["angle-1"]
    with pytest.raises(JobsIncomplete, match=r"1 job\(s\) not done \(angle-1\): angle-1: BadRequestError") as info:
        collect(queue, [], [job.id for job in jobs])
    assert info.value.missing == ["angle-1"]
    assert sorted(queue.results([job.id for job in jobs])) == ["angle-0", "angle-2"]  # the others' work is kept


def test_the_merged_results_continue_the_run_in_the_orchestrator(queue, prefix):
    subtopics = ["Multi-agent LLM systems: an orchestrator and specialist agents",
                 "Prompt caching to cut the cost of repeated prompts", TOPIC]
    jobs = [Job(id=f"part-{i}", task=research_task(s, AUDIENCE)) for i, s in enumerate(subtopics)]
    queue.push(jobs)
    work("run", queue.url, prefix=queue.prefix, client=make_client(transport=OfflineTransport()))
    research = merge_bullets(list(queue.results([job.id for job in jobs]).values()))
    notes = [find(s).note for s in subtopics]
    assert len(research.splitlines()) == sum(len(n.facts) for n in notes)  # every fact of the three notes, once
    queue.memory.set("research", research)

    transport = OfflineTransport()
    with RedisMemory(queue.url, prefix=prefix) as memory:
        lines = []
        result = Orchestrator(memory, client=make_client(transport=transport), progress=lines.append).run(
            "A research assistant built from LLM agents", audience=AUDIENCE, run_id="run")
    assert "[Orchestrator] research: already in memory, not asked again" in lines
    assert transport.model.calls == STEPS - 1 and result.approved and result.cycles == 1
    assert notes[1].facts[0].text in result.report


@pytest.mark.parametrize("failing_call", range(1, STEPS + 1))
def test_the_orchestrator_on_redis_resumes_a_crashed_run_from_memory(redis_url, prefix, failing_call):
    with RedisMemory(redis_url, prefix=prefix) as memory:
        faulty = make_client(transport=OfflineTransport(faults=[Fault("server_error", call=failing_call)]),
                             max_retries=0)
        failed = Orchestrator(memory, client=faulty, progress=None).run(TOPIC, run_id="r")
        assert failed.status == "failed" and failed.usage.calls == failing_call - 1
        fresh = OfflineTransport()
        result = Orchestrator(memory, client=make_client(transport=fresh), progress=None).run(run_id="r")
        assert fresh.model.calls == STEPS - failing_call + 1  # the failed call again, and what came after it
        assert result.approved and result.usage.calls == STEPS
        memory.clear()


def test_queue_keys_live_under_the_runs_namespace_and_clear_touches_nothing_else(redis_url, prefix):
    import redis

    raw = redis.Redis.from_url(redis_url, decode_responses=True)
    with JobQueue("run[1]", redis_url, prefix=prefix) as mine, JobQueue("run1", redis_url, prefix=prefix) as other:
        for q in (mine, other):
            q.push(angle_jobs(2))
            q.take("w")
            q.memory.set("result/angle-9", "kept?")
        assert sorted(raw.scan_iter(match=f"{prefix}:run1/*")) == [
            f"{prefix}:run1/queue:attempts", f"{prefix}:run1/queue:pending", f"{prefix}:run1/queue:processing:w",
            f"{prefix}:run1/result/angle-9"]
        mine.clear()  # the glob characters of "run[1]" are escaped: "run1" matches no pattern of mine
        mine.memory.clear()
        assert list(raw.scan_iter(match=f"{prefix}:run?1?/*")) == []
        assert len(list(raw.scan_iter(match=f"{prefix}:run1/*"))) == 4
        other.clear()
        other.memory.clear()
    raw.close()


def test_bad_input_gets_a_clear_error(queue):
    with pytest.raises(ValueError, match="a job id is letters"):
        Job(id="run/1", task="t")
    with pytest.raises(ValueError, match="no system prompt for role 'poet'; known roles: researcher"):
        Job(id="j", task="t", role="poet")
    with pytest.raises(ValueError, match="job ids must be unique"):
        queue.push([Job(id="j", task="a"), Job(id="j", task="b")])
    with pytest.raises(ValueError, match="count must be >= 1"):
        start_workers("run", 0)
    with pytest.raises(ValueError, match="workers must be >= 1"):
        run_jobs("run", angle_jobs(1), queue.url, workers=0, prefix=queue.prefix)
    assert queue.pending() == []


def test_the_queue_fails_as_its_memory_does_when_the_server_goes_or_after_close(redis_to_stop, prefix):
    queue = JobQueue("run", redis_to_stop.url, prefix=prefix)
    queue.push(angle_jobs(1))
    redis_to_stop.stop()
    with pytest.raises(MemoryUnavailableError, match="(?s)cannot reach Redis at redis://127.*redis-server --port"):
        queue.take("w")
    queue.close()
    with pytest.raises(MemoryClosedError, match="is closed"):
        queue.pending()


def test_importing_mas_scaling_leaves_redis_unimported():
    code = "import sys, mas.scaling; print('redis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_jobs_lost_to_a_redis_restart_are_reported_as_that_not_as_dead_workers(redis_to_stop, prefix):
    queue = JobQueue("run", redis_to_stop.url, prefix=prefix)
    queue.push(angle_jobs(2))
    port = redis_to_stop.url.rsplit(":", 1)[1].split("/")[0]
    redis_to_stop.stop()  # a server with no persistence: restarting it forgets the queue
    again = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly",
                              "no"], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                queue.pending()
                break
            except MemoryUnavailableError:
                time.sleep(0.05)
        with pytest.raises(JobsIncomplete, match="Redis restarted while the jobs ran"):
            collect(queue, [], [job.id for job in angle_jobs(2)], restarts=0)
    finally:
        queue.close()
        again.terminate()
        again.wait()


def test_jobs_whose_keys_were_deleted_are_reported_as_that(redis_url, prefix):
    with JobQueue("run", redis_url, prefix=prefix) as queue:
        queue.push(angle_jobs(2))
        queue.reset()  # deletes the queue's lists, as a FLUSHDB or a cleanup would
        with pytest.raises(JobsIncomplete, match="no longer in the queue"):
            collect(queue, [], [job.id for job in angle_jobs(2)], restarts=0)
