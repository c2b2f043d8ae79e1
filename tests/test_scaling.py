"""mas.scaling on the test run's real Redis: the orchestrator on RedisMemory resumes a crashed run without
repeating a call, Celery's app is set up for late acknowledgement, and the optional parts load only on use.
(RedisMemory's contract is tested beside SQLiteMemory's, in test_memory.py; the Celery workers themselves, as
real processes, in test_celery.py.)"""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from mas.client import make_client
from mas.offline import Fault, OfflineTransport
from mas.orchestrator import Orchestrator
from mas.scaling import RUN_TASK, RedisMemory, celery_app, runs

TOPIC = "How vector databases enable semantic search"
STEPS = 5  # research, draft_1, validation_1, draft_2, validation_2: one offline call each


@pytest.fixture
def prefix() -> str:
    return f"mas-test-{uuid.uuid4().hex}"  # this test's own keys: nothing shared with another test


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
        assert runs(memory) == [{"run": "r", "topic": TOPIC, "status": "approved", "reason": result.reason,
                                 "drafts": "2"}]
        memory.clear()


def test_the_celery_app_acknowledges_late_and_gives_back_a_lost_workers_task(redis_url):
    pytest.importorskip("celery")
    app = celery_app(redis_url, visibility_timeout=120, rate="10/s", latency=0.5)
    conf = app.conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost and conf.worker_prefetch_multiplier == 1
    assert conf.broker_transport_options == {"visibility_timeout": 120}
    assert conf.mas == {"url": redis_url, "rate": (10, 1.0), "latency": 0.5}
    assert RUN_TASK in app.tasks and conf.accept_content == ["json"]  # never pickle from a shared broker
    with pytest.raises(ValueError, match="N/s, N/m or N/h"):
        celery_app(redis_url, rate="fast")


def test_importing_mas_scaling_leaves_redis_and_celery_unimported():
    code = "import sys, mas.scaling; print('redis' in sys.modules, 'celery' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False False"
