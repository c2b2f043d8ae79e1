"""Parallel subtasks: complete and ordered results, at most K calls in flight (counted at the
transport), failures kept apart as structured errors, the per-subtask timeout, the limits'
validation, the sync entry point in and out of a running loop, and ParallelResearcher in the
orchestrator end to end."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading

import httpx2
import pytest

from mas.agents import ResearcherAgent
from mas.client import make_client
from mas.errors import RunStopped
from mas.hooks import call_hook
from mas.offline import Fault, Latency, OfflineTransport
from mas.offline.knowledge import find
from mas.offline.prose import bullets_of
from mas.orchestrator import Orchestrator
from mas.parallel import (
    DEFAULT_ANGLES,
    ParallelResearcher,
    Subtask,
    SubtaskError,
    arun_parallel,
    merge_bullets,
    run_parallel,
)
from mas.prompts import research_task

UNKNOWN = "Solar panel recycling"  # not in the offline model's notes: every angle says "No research:"
KNOWN = "How vector databases enable semantic search"  # in the notes: each angle gets the facts of its aspect


class CountingTransport(httpx2.AsyncBaseTransport):
    """Wraps the offline transport and counts the requests in flight at once (honest: it sees the
    HTTP requests the SDK sends, retries included)."""

    def __init__(self, **options):
        self.inner = OfflineTransport(**options)
        self.in_flight = self.max_in_flight = self.requests = 0

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.in_flight += 1
        self.requests += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self.inner.handle_async_request(request)
        finally:
            self.in_flight -= 1


def client(transport=None, **options):
    return make_client(asynchronous=True, transport=transport or OfflineTransport(**options), max_retries=0)


def topics(n: int) -> list[str]:
    return [f"<topic>subject number {i}</topic>" for i in range(n)]


def expected(task: str) -> str:
    """The reply the offline researcher gives to `task`, asked alone on the sync client."""
    return ResearcherAgent(client=make_client(offline=True, max_retries=0)).run(task)


def test_results_are_complete_and_in_input_order_even_when_later_ones_finish_first():
    tasks = topics(6)
    # subtask i waits (6 - i) * 10 ms, so the last one finishes first
    subtasks = [Subtask(ResearcherAgent(async_client=client(latency=Latency(base=(6 - i) * 0.01))), t, f"t{i}")
                for i, t in enumerate(tasks)]
    assert run_parallel(subtasks, max_concurrency=6) == [expected(t) for t in tasks]


@pytest.mark.parametrize("k", [1, 3, 10])
def test_at_most_k_calls_are_in_flight_and_k_are_reached(k):
    transport = CountingTransport(latency=Latency(base=0.02))
    shared = client(transport)
    in_flight, most = 0, 0

    def hook(agent, request):  # the same count one level up, at the agents' hook
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)

        def after(message, error):
            nonlocal in_flight
            in_flight -= 1
        return after

    subtasks = [Subtask(ResearcherAgent(async_client=shared), t) for t in topics(10)]
    with call_hook(hook):
        results = run_parallel(subtasks, max_concurrency=k)
    assert all(isinstance(r, str) for r in results)
    assert transport.requests == 10
    assert transport.max_in_flight == most == min(k, 10)


def test_a_failing_subtask_keeps_its_siblings_results_and_reports_a_structured_error():
    transport = CountingTransport(faults=[Fault("server_error", call=2)])
    tasks = topics(4)
    subtasks = [Subtask(ResearcherAgent(async_client=client(transport)), t, f"t{i}") for i, t in enumerate(tasks)]
    results = run_parallel(subtasks, max_concurrency=1)  # one at a time: call 2 is subtask 1
    assert results[1] == SubtaskError(index=1, label="t1", agent="Researcher", kind="server_error",
                                      message="InternalServerError 500: offline fault plan: server_error on call 2")
    assert [results[i] for i in (0, 2, 3)] == [expected(tasks[i]) for i in (0, 2, 3)]
    assert transport.requests == 4  # max_retries=0: the failed call was not retried


def test_with_all_subtasks_at_once_exactly_one_fails_and_the_others_are_right():
    transport = CountingTransport(faults=[Fault("overloaded", call=3)])
    tasks = topics(5)
    results = run_parallel([Subtask(ResearcherAgent(async_client=client(transport)), t) for t in tasks],
                           max_concurrency=5)
    errors = [r for r in results if isinstance(r, SubtaskError)]
    assert [(e.kind, e.message) for e in errors] == [("overloaded", "OverloadedError 529: offline fault plan: "
                                                                   "overloaded on call 3")]
    assert all(r == expected(t) for r, t in zip(results, tasks) if isinstance(r, str))


def test_an_unusable_reply_becomes_an_error_of_its_kind():
    refusing = client(faults=[Fault("refusal", call=1)])
    results = run_parallel([Subtask(ResearcherAgent(async_client=refusing), "<topic>a</topic>", "a"),
                            Subtask(ResearcherAgent(async_client=client()), "<topic>b</topic>", "b")],
                           max_concurrency=2)
    assert results[0] == SubtaskError(0, "a", "Researcher", "refusal", "the model refused this task")
    assert results[1] == expected("<topic>b</topic>")


def test_the_per_subtask_timeout_stops_a_slow_call_and_keeps_the_fast_one():
    slow = ResearcherAgent(async_client=client(latency=Latency(base=5.0)), name="Slow")
    fast = ResearcherAgent(async_client=client())
    results = run_parallel([Subtask(slow, "<topic>a</topic>", "slow"), Subtask(fast, "<topic>b</topic>", "fast")],
                           max_concurrency=2, timeout=0.1)
    assert results == [SubtaskError(0, "slow", "Slow", "timeout", "no reply within 0.1 s (the per-subtask timeout)"),
                       expected("<topic>b</topic>")]
    assert slow.history == []  # the cancelled turn is not kept


def test_waiting_for_a_slot_does_not_count_against_the_timeout():
    shared = client(latency=Latency(base=0.1))
    # one at a time, 4 calls of 0.1 s take 0.4 s in all, yet each is well within its 0.3 s
    results = run_parallel([Subtask(ResearcherAgent(async_client=shared), t) for t in topics(4)],
                           max_concurrency=1, timeout=0.3)
    assert all(isinstance(r, str) for r in results)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2", None])
def test_max_concurrency_must_be_an_int_of_at_least_one(bad):
    with pytest.raises(ValueError, match="max_concurrency must be an int >= 1"):
        run_parallel([], max_concurrency=bad)
    with pytest.raises(ValueError, match="max_concurrency must be an int >= 1"):
        ParallelResearcher(async_client=client(), max_concurrency=bad)


@pytest.mark.parametrize("bad", [0, -0.5])
def test_the_timeout_must_be_positive(bad):
    with pytest.raises(ValueError, match="timeout must be > 0"):
        run_parallel([], max_concurrency=1, timeout=bad)


def test_one_agent_in_two_subtasks_is_refused():
    agent = ResearcherAgent(async_client=client())
    with pytest.raises(ValueError, match="give each subtask its own agent"):
        run_parallel([Subtask(agent, "a"), Subtask(agent, "b")], max_concurrency=2)


def test_the_sync_entry_point_works_inside_a_running_loop_as_in_jupyter():
    async def notebook_cell():  # a Jupyter cell runs while the kernel's event loop is running
        asyncio.get_running_loop()
        return run_parallel([Subtask(ResearcherAgent(async_client=client()), "<topic>x</topic>")], max_concurrency=1)

    assert asyncio.run(notebook_cell()) == [expected("<topic>x</topic>")]
    # and the async entry point, awaited on the caller's own loop
    assert asyncio.run(arun_parallel([Subtask(ResearcherAgent(async_client=client()), "<topic>x</topic>")],
                                     max_concurrency=1)) == [expected("<topic>x</topic>")]


def test_hooks_follow_the_calls_onto_the_background_loop():
    seen = []
    with call_hook(lambda agent, request: seen.append(agent.name)):
        run_parallel([Subtask(ResearcherAgent(async_client=client(), name=f"R{i}"), t) for i, t in
                      enumerate(topics(3))], max_concurrency=3)
    assert sorted(seen) == ["R0", "R1", "R2"]


def test_a_limit_that_stops_the_work_is_raised_after_the_siblings_finish():
    class Budget(RunStopped):
        status = "budget"

    def refuse_the_second(agent, request):
        if agent.name == "R1":
            raise Budget("budget: no more calls")

    transport = CountingTransport()
    subtasks = [Subtask(ResearcherAgent(async_client=client(transport), name=f"R{i}"), t) for i, t in
                enumerate(topics(3))]
    with call_hook(refuse_the_second), pytest.raises(Budget, match="no more calls"):
        run_parallel(subtasks, max_concurrency=3)
    assert transport.requests == 2  # R0 and R2 ran to the end


def test_calling_the_sync_entry_point_from_inside_a_subtask_is_refused_with_the_await_hint():
    class Nesting:
        name = "Nesting"

        async def arun(self, task):
            inner = Subtask(ResearcherAgent(async_client=client()), task)
            return run_parallel([inner], max_concurrency=1)[0]

    with pytest.raises(RuntimeError, match="await arun_parallel"):
        run_parallel([Subtask(Nesting(), "<topic>x</topic>")], max_concurrency=1)


# --------------------------------------------------------------------------- ParallelResearcher

def test_merge_keeps_order_and_drops_duplicates():
    assert merge_bullets(["- A.\n- B", "* b\n- C", "- a"]) == ["A.", "B", "C"]


def test_parallel_research_merges_the_angles_in_order():
    transport = CountingTransport(latency=Latency(base=0.02))
    researcher = ParallelResearcher(async_client=client(transport))
    notes = researcher.run(research_task(KNOWN, "engineers"))
    assert transport.requests == 3 and transport.max_in_flight == 3
    single = ResearcherAgent(client=make_client(offline=True))
    alone = [bullets_of(single.run(research_task(f"{KNOWN}: {angle}", "engineers"))) for angle in DEFAULT_ANGLES]
    assert bullets_of(notes) == merge_bullets("\n".join(f"- {p}" for p in points) for points in alone)
    note = find(KNOWN).note  # each angle got the facts of its aspects: key concepts, real-world use, limitations
    assert [len(points) for points in alone] == [sum(bool(set(f.aspects) & want) for f in note.facts)
                                                for want in ({"basics"}, {"use"}, {"trade-off", "failure"})]
    assert notes.startswith(f"## Research: {KNOWN}\n\n- ")
    single = [a.usage for a in researcher.agents]
    assert researcher.usage.calls == 3
    assert researcher.usage.output_tokens == sum(u.output_tokens for u in single) > 0
    assert researcher.usage.input_tokens == sum(u.input_tokens for u in single) > 0


def test_angles_that_say_the_same_are_merged_into_one_list():
    notes = ParallelResearcher(["cost", "pricing"], async_client=client()).run(research_task(KNOWN, "engineers"))
    alone = ResearcherAgent(client=make_client(offline=True)).run(research_task(f"{KNOWN}: cost", "engineers"))
    assert bullets_of(notes) == bullets_of(alone) and len(bullets_of(notes)) >= 2


def test_a_topic_no_angle_knows_is_no_research_and_the_run_stops_before_any_draft(memory):
    result = orchestrate(memory, ParallelResearcher(async_client=client())).run(UNKNOWN, run_id="p")
    assert (result.status, result.approved, result.usage.calls) == ("no_research", False, 3)
    assert "none of the 3 angles" in result.reason and memory.scoped("p").get("draft_1") is None


def test_parallel_researcher_validates_its_settings():
    for angles in ([], ["a", "a"], ["a", " "]):
        with pytest.raises(ValueError, match="angles must be distinct"):
            ParallelResearcher(angles, async_client=client())
    for n in (0, 4):
        with pytest.raises(ValueError, match="min_angles must be between 1 and the number of angles"):
            ParallelResearcher(async_client=client(), min_angles=n)


def orchestrate(memory, researcher):
    sync = make_client(offline=True, max_retries=0)
    return Orchestrator(memory, client=sync, researcher=researcher, progress=None)


def test_the_orchestrator_with_a_parallel_researcher_runs_end_to_end_and_is_approved(memory):
    result = orchestrate(memory, ParallelResearcher(async_client=client())).run(KNOWN, run_id="p")
    assert (result.status, result.approved, result.cycles) == ("approved", True, 1)
    assert result.usage.calls == 3 + 4  # three angles, then draft, validate, revise, validate
    research = memory.scoped("p").get("research")
    assert all(point.split(" (source:")[0] in result.report for point in bullets_of(research))


def test_one_failed_angle_is_named_in_the_research_and_the_run_goes_on(memory):
    researcher = ParallelResearcher(async_client=client(faults=[Fault("server_error", call=2)]), max_concurrency=1)
    result = orchestrate(memory, researcher).run(KNOWN, run_id="p")
    assert result.status == "approved"
    assert [(e.index, e.label, e.kind) for e in researcher.errors] == [(1, "real-world use", "server_error")]
    research = memory.scoped("p").get("research")
    assert not any("Qdrant" in point for point in bullets_of(research))  # the use-only fact: its angle failed
    assert research.endswith("_Not researched, the call failed: real-world use (server_error)._")


def test_fewer_angles_than_min_angles_stops_the_run_as_failed_with_the_reason(memory):
    researcher = ParallelResearcher(async_client=client(faults=[Fault("server_error", call=2)]), max_concurrency=1,
                                    min_angles=3)
    result = orchestrate(memory, researcher).run(KNOWN, run_id="p")
    assert result.status == "failed" and not result.approved
    assert result.reason == ("Researcher: 2 of 3 angles researched, fewer than min_angles=3: real-world use "
                             "(server_error: InternalServerError 500: offline fault plan: server_error on call 2)")
    assert memory.scoped("p").get("research") is None  # nothing half-done was saved as the research


def test_subtasks_must_be_subtasks():
    with pytest.raises(TypeError, match=r"expected Subtask\(agent, task, label\)"):
        run_parallel([(ResearcherAgent(async_client=client()), "task")], max_concurrency=1)


@pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals")
def test_an_interrupted_wait_cancels_the_calls_it_started():
    # a shell's background job starts with Ctrl-C ignored; this test is about what Ctrl-C does
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _interrupt_a_wait()
    finally:
        signal.signal(signal.SIGINT, previous)


def _interrupt_a_wait():
    ended = threading.Event()
    errors = []

    def hook(agent, request):
        def after(message, error):
            errors.append(type(error).__name__)
            ended.set()
        return after

    slow = Subtask(ResearcherAgent(async_client=client(latency=Latency(base=5.0))), "<topic>x</topic>")
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))  # Ctrl-C while run_parallel waits
    timer.start()
    with call_hook(hook), pytest.raises(KeyboardInterrupt):
        run_parallel([slow], max_concurrency=1)
    assert ended.wait(2.0) and errors == ["CancelledError"]  # the 5 s call was stopped, not left running


def test_angles_that_know_nothing_are_named_and_all_of_them_is_no_research():
    from mas.offline import ScriptedTransport
    from mas.prompts import is_no_research

    def researched(*replies):
        transport = ScriptedTransport(list(replies))
        return ParallelResearcher(async_client=make_client(transport=transport, asynchronous=True),
                                  max_concurrency=1).run(research_task(UNKNOWN, "engineers"))

    mixed = researched("- A fact.", "No research: nothing on its use.", "- A risk.")
    assert bullets_of(mixed) == ["A fact.", "A risk."] and mixed.endswith("_No notes on: real-world use._")
    nothing = researched(*["No research: no notes."] * 3)
    assert is_no_research(nothing) and "none of the 3 angles of 'Solar panel recycling' has notes" in nothing
