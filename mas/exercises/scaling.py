"""Checks for the exercises of notebook 08: workers sharing a run through Redis, and a run resumed.

Both checks read what the learner's runs left in the real Redis (`REDIS_URL`, as the notebook
uses): the run's job queue (who took what, how many times) and the run's memory. When no Redis
answers, they say how to start one instead of failing on a socket error.

Simplified on purpose: how many workers took a job depends on how fast each process started, so
08.1 does not count workers; it checks what more workers must not change (each job once, the same
replies) and that a re-run does only the missing job.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mas.errors import MemoryUnavailableError
from mas.exercises.core import NotYet, expect
from mas.redact import redact_url as _redact
from mas.scaling import START_REDIS_HINT, JobQueue, RedisMemory
from mas.settings import settings

START_REDIS = START_REDIS_HINT + " Then restart the kernel and run the notebook again."


def _open(kind: str, namespace: str, url: str | None) -> Any:
    """A JobQueue or RedisMemory on `namespace`; NotYet saying how to start Redis when none answers."""
    url = url or settings().redis_url
    try:
        return JobQueue(namespace, url) if kind == "queue" else RedisMemory(url, namespace=namespace)
    except ImportError:
        raise NotYet("This exercise needs the redis package: pip install 'mas[redis]'.") from None
    except MemoryUnavailableError:
        raise NotYet(f"No Redis answers at {_redact(url)}, and this exercise reads what your runs left in it. "
                     + START_REDIS) from None


def check_fifth_worker(namespace: str, four: dict[str, str], replies: dict[str, str], url: str | None = None) -> str:
    """08.1: the eight jobs run by five workers in `namespace`, then re-run after one reply was lost:
    each job taken once, the lost one twice, and the same replies as the four workers'."""
    expect(isinstance(four, dict) and bool(four), "Pass the four workers' replies (`results`, a dict job id -> "
           "reply) as the second argument.")
    expect(isinstance(namespace, str) and bool(namespace), "Pass the namespace you gave run_jobs, f\"{NS}/five\".")
    with _open("queue", namespace, url) as queue:
        attempts, failures = queue.attempts(), queue.failures()
        pending, held = queue.pending(), queue.in_progress()
        saved = queue.results(list(four))
    expect(bool(attempts), f"No job was ever taken in the namespace {namespace!r}: pass the namespace you gave "
           "run_jobs.")
    strangers, never = sorted(set(attempts) - set(four)), sorted(set(four) - set(attempts))
    expect(not strangers, f"The jobs {strangers} of this run are not the four workers' jobs: run the same `jobs`.")
    expect(not never, f"The job(s) {never} were never taken in this run: give run_jobs all {len(four)} jobs.")
    expect(not failures, f"Job(s) failed in this run: {failures}.")
    expect(not pending and not held, f"This run's queue still has jobs (pending: {pending}, taken and not done: "
           f"{held}): check once run_jobs has returned.")
    lost = [job for job in four if job not in saved]
    expect(not lost, f"No reply in memory for {lost}: call run_jobs again in the same namespace; it runs exactly "
           "the jobs whose reply is missing.")
    differ = [job for job in four if saved[job] != four[job]]
    expect(not differ, f"The replies to {differ} are not the four workers' ones: run the same `jobs` on the same "
           "model (the offline model is deterministic, so the replies must match).")
    expect(replies == four, "The replies you passed are not the four workers' ones: pass what your last run_jobs "
           "call returned (it returns every job's reply, the ones it found in memory too).")
    again = sorted(job for job, n in attempts.items() if n > 1)
    expect(bool(again), f"Each of the {len(four)} jobs was taken exactly once: five workers, the same replies. "
           "Now the re-run: delete one reply from this run's memory (RedisMemory(REDIS_URL, namespace=...)"
           ".delete(\"result/caching\")) and call run_jobs again, the same way: only that job should run again.")
    expect(all(attempts[job] == 2 for job in again), f"Job(s) were taken more than twice: {attempts}. Run the jobs "
           "once, delete one reply, run them again (to repeat the exercise, clear the namespace first: "
           "queue.clear() and queue.memory.clear()).")
    expect(len(again) < len(four), "Every job ran twice: the re-run should find the other replies in memory and "
           "run only the missing one. Delete one reply (memory.delete(\"result/<job id>\")), not all of them.")
    return (f"{len(four)} jobs, each taken once, the four workers' replies; after losing {', '.join(again)}, "
            "the re-run did only that")


def check_crash_resume(namespace: str, first: Any, second: Any, calls_on_resume: Any, run_id: str = "my-crash",
                       url: str | None = None) -> str:
    """08.2: a run whose validator fails on its first call (no SDK retries), resumed from Redis with a
    fresh client: how many calls the resume made, and nothing done before was asked again."""
    with _open("memory", namespace, url) as memory:
        saved = memory.scoped(run_id).get_all()
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
    "08.1": check_fifth_worker,
    "08.2": check_crash_resume,
}
