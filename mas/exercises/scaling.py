"""Checks for the exercises of notebook 08: a Celery worker killed mid-run, and a run resumed.

Both checks read what the learner's runs left in the real Redis (`REDIS_URL`, as the notebook uses): the
run's memory (its status, its calls, which process holds or finished it). When no Redis answers, they say how
to start one instead of failing on a socket error.

Simplified on purpose: 08.1 cannot see *when* the process was killed, only that it is dead, that another
process finished the run, and that the run made a clean run's calls (nothing saved was asked again).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from typing import Any

from mas.errors import MemoryUnavailableError
from mas.exercises.core import NotYet, expect
from mas.redact import redact_url as _redact
from mas.scaling import START_REDIS_HINT, RedisMemory
from mas.settings import settings

START_REDIS = START_REDIS_HINT + " Then restart the kernel and run the notebook again."


def _open(url: str | None) -> Any:
    """The RedisMemory at `url`; NotYet saying how to start Redis when none answers."""
    url = url or settings().redis_url
    try:
        return RedisMemory(url)
    except ImportError:
        raise NotYet("This exercise needs the redis package: pip install 'mas[redis]'.") from None
    except MemoryUnavailableError:
        raise NotYet(f"No Redis answers at {_redact(url)}, and this exercise reads what your runs left in it. "
                     + START_REDIS) from None


def check_killed_worker(run_id: str, holder: str, end: Any, url: str | None = None) -> str:
    """08.1: a run whose worker process was SIGKILLed mid-run, finished by another process: once, with a clean
    run's calls (the call in flight was lost, nothing saved was asked again)."""
    expect(isinstance(run_id, str) and bool(run_id), "Pass the run's id (the task's id, `task.id`) first.")
    expect(isinstance(holder, str) and ":" in holder, "Pass the holder you killed, the run's `worker` value "
           "(\"host:pid\"), as read before the kill.")
    expect(isinstance(end, dict) and "status" in end, "Pass what the task returned, `task.get(timeout=...)`: a "
           "dict with the run's status, calls and worker.")
    with _open(url) as memory:
        saved = memory.scoped(run_id).get_all()
    expect(bool(saved), f"No run {run_id!r} in Redis: pass the task's id (the run id), e.g. f\"{{NS}}-mine-001\".")
    pid = int(holder.rsplit(":", 1)[1]) if holder.rsplit(":", 1)[1].isdigit() else -1
    expect(not _alive(pid), f"The process {holder} is still running: kill it with os.kill(pid, signal.SIGKILL) "
           "while the run is being worked on.")
    expect(end["status"] == "approved" and saved.get("status") == "approved", f"The run ended as "
           f"{end['status']!r} ({end.get('reason', '')}): it should end approved once another process resumed it.")
    expect(end.get("worker") != holder and saved.get("worker") != holder, "The run was finished by the process "
           "you say you killed: kill the process in the run's `worker` key while the run is validating, then "
           "wait for the task.")
    calls = json.loads(saved.get("usage") or "{}").get("calls")
    steps = sum(key == "research" or re.fullmatch(r"(draft|validation)_\d{1,9}", key) is not None for key in saved)
    expect(end["calls"] == calls == steps, f"The run made {calls} calls in all, for {steps} saved steps "
           "(research, drafts, verdicts): a clean run makes one call a step. A killed run loses its call in flight "
           "and asks nothing saved again; more calls mean a step was asked twice (start clean: "
           "memory.scoped(run_id).clear()).")
    return (f"the run's process was killed mid-run; another finished the run: approved, with a clean run's "
            f"{steps} calls")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, ValueError, OverflowError):
        return False
    except PermissionError:
        return True
    return pid > 0


def check_crash_resume(namespace: str, first: Any, second: Any, calls_on_resume: Any, run_id: str = "my-crash",
                       url: str | None = None) -> str:
    """08.2: a run whose validator fails on its first call (no SDK retries), resumed from Redis with a
    fresh client: how many calls the resume made, and nothing done before was asked again."""
    with _open(url) as memory:
        saved = memory.scoped(namespace).scoped(run_id).get_all()
    expect(hasattr(first, "status") and hasattr(second, "status"), "Pass the two results of Orchestrator.run: "
           "the crashed run's, then the resumed run's.")
    expect(first.status != "approved", "Your first run was approved: nothing stopped it. Give its client the "
           "fault, Fault(\"server_error\", role=\"validator\"), and no SDK retries, max_retries=0: by default the "
           "SDK retries a 500 itself, and the retry is answered. (To run it again, clear the run first: "
           f"memory.scoped({run_id!r}).clear(); a finished run is not run again.)")
    expect(first.status == "failed", f"Your first run ended as {first.status!r} ({first.reason}), not 'failed'.")
    done = first.usage.calls
    expect(done >= 2, f"Your first run stopped after {done} answered call(s), before the validator: aim the fault "
           "at it, Fault(\"server_error\", role=\"validator\").")
    expect(done == 2, f"Your first run stopped after {done} answered calls: make the validator fail on its first "
           "call (Fault(\"server_error\", role=\"validator\"), times=1 by default), after the research and the draft.")
    expect(second.status == "approved", f"The resumed run ended as {second.status!r} ({second.reason}): resume "
           f"with a client without faults, Orchestrator(memory, client=...).run(run_id={run_id!r}).")
    expect(bool(saved), f"Nothing is saved under the run {run_id!r} in the namespace {namespace!r}: run both in "
           f"RedisMemory(REDIS_URL, namespace=NS), with run_id={run_id!r}.")
    expect(saved.get("status") == "approved", f"In Redis the run {run_id!r} is {saved.get('status')!r}, not "
           "'approved': resume it in the same memory and with the same run id as the crashed run.")
    resumed = second.usage.calls - done
    expect(isinstance(calls_on_resume, int) and not isinstance(calls_on_resume, bool),
           f"Pass how many calls the resume made, a whole number, not {calls_on_resume!r}.")
    expect(calls_on_resume != second.usage.calls, f"{calls_on_resume} is the "
           "run's calls in all: the resumed run's usage counts the crashed run's calls too. Count only what the "
           "resume sent, on a transport of its own (fresh.model.calls).")
    expect(calls_on_resume == resumed, f"The resume made {resumed} calls, not {calls_on_resume}: count them on "
           "the resume's own transport (fresh.model.calls).")
    return (f"the validator's 500 stopped the run after {done} calls; the resume made {resumed}, asked nothing "
            f"again, and the run is {second.status}")


CHECKS: dict[str, Callable[..., str]] = {
    "08.1": check_killed_worker,
    "08.2": check_crash_resume,
}
