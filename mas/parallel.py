"""Parallel agents: independent subtasks run at the same time, at most `max_concurrency` at once.

    results = run_parallel([Subtask(a, "task 1"), Subtask(b, "task 2")], max_concurrency=2)
    results = await arun_parallel(subtasks, max_concurrency=2)     # inside async code / a notebook

Each subtask is one agent's `arun(task)` on `AsyncAnthropic`; `asyncio.gather` runs them and an
`asyncio.Semaphore` keeps at most `max_concurrency` calls in flight (the lever for a rate limit).
Results come back in the order of the subtasks, each either the reply's text or a `SubtaskError`
(index, label, agent, kind, message): a subtask that fails does not lose its siblings' results.
Only failures the model or the API caused become a `SubtaskError` (an API error that outlived the
SDK's retries, an unusable reply, the per-subtask `timeout`); a limit that stops the work on
purpose (`mas.errors.RunStopped`, e.g. a budget) and a programming error are raised, after the
siblings have finished.

`run_parallel` is the sync entry point. It runs the coroutine on one event loop that `mas` keeps in
a background thread, so it works the same from plain code and from Jupyter, whose own loop is
already running (where `asyncio.run` refuses to start). One long-lived loop rather than a new
`asyncio.run` per call, because an async HTTP client's pooled connections belong to the loop that
opened them: reusing one `AsyncAnthropic` across `asyncio.run` calls fails with "Event loop is
closed" (encode/httpx#2473). Context variables (the hooks of `mas.hooks`) follow the call.

Simplified on purpose: no cancellation of the siblings when one fails, no retry beyond the SDK's
own (notebook 05 adds policies), and one agent per subtask, since an agent keeps one conversation.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Any, Coroutine, Sequence, TypeVar

import anthropic

from mas.agents import DEFAULT_MAX_TOKENS, ResearcherAgent
from mas.client import make_client
from mas.contracts import Usage
from mas.errors import AgentReplyError, FailureKind, ParallelResearchFailed, kind_of, one_line
from mas.prompts import DEFAULT_AUDIENCE, NO_RESEARCH, bullet_list, is_no_research, merge_bullets, research_task, tag

T = TypeVar("T")
DEFAULT_ANGLES = ("key concepts", "real-world use", "limitations and risks")
DEFAULT_MAX_CONCURRENCY = 3


@dataclass(frozen=True)
class Subtask:
    """One independent piece of work."""

    agent: Any  # anything with `async arun(task) -> str` and `.name`: a mas agent
    task: str
    label: str = ""  # a short name for reports ("trade-offs"); the index is always reported too


@dataclass(frozen=True)
class SubtaskError:
    """A subtask that gave no usable text, and why."""

    index: int  # its position in the subtasks given
    label: str
    agent: str  # the agent's name
    kind: FailureKind  # in the one vocabulary of mas.errors: timeout, overloaded, refusal, invalid, ...
    message: str  # one line, for a person


def check_limits(max_concurrency: int, timeout: float | None = None) -> None:
    """Refuse a concurrency limit below 1 or a timeout that is not positive.

    >>> check_limits(0)
    Traceback (most recent call last):
    ...
    ValueError: max_concurrency must be an int >= 1 (1 runs the subtasks one after another), got 0
    """
    if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
        raise ValueError(f"max_concurrency must be an int >= 1 (1 runs the subtasks one after another), "
                         f"got {max_concurrency!r}")
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds, or None for no per-subtask limit; got {timeout!r}")


async def arun_parallel(subtasks: Sequence[Subtask], *, max_concurrency: int,
                        timeout: float | None = None) -> list[str | SubtaskError]:
    """Run the subtasks concurrently, at most `max_concurrency` at a time; results in input order.

    `timeout` (seconds, or None) limits each subtask from when it gets a slot, so waiting for a
    slot never counts against it.
    """
    check_limits(max_concurrency, timeout)
    subtasks = list(subtasks)
    seen: set[int] = set()
    for s in subtasks:
        if not isinstance(s, Subtask):
            raise TypeError(f"expected Subtask(agent, task, label), got {type(s).__name__}: {s!r:.60}")
        if not callable(getattr(s.agent, "arun", None)):
            raise TypeError(f"subtask {s.label or s.task[:30]!r}: its agent has no async `arun(task)`; use a mas agent")
        if id(s.agent) in seen:
            raise ValueError(f"agent {getattr(s.agent, 'name', s.agent)!r} is in two subtasks: an agent keeps one "
                             "conversation, so give each subtask its own agent (they can share one async client)")
        seen.add(id(s.agent))
    slots = asyncio.Semaphore(max_concurrency)
    # return_exceptions: a raised error (a RunStopped, a bug) waits for the siblings, then is raised below
    results = await asyncio.gather(*(_one(i, s, slots, timeout) for i, s in enumerate(subtasks)),
                                   return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


def run_parallel(subtasks: Sequence[Subtask], *, max_concurrency: int,
                 timeout: float | None = None) -> list[str | SubtaskError]:
    """`arun_parallel` from sync code, plain or in Jupyter (see `run_sync`)."""
    check_limits(max_concurrency, timeout)
    return run_sync(arun_parallel(subtasks, max_concurrency=max_concurrency, timeout=timeout))


async def _one(index: int, subtask: Subtask, slots: asyncio.Semaphore, timeout: float | None) -> str | SubtaskError:
    def failed(kind: str, message: str) -> SubtaskError:
        return SubtaskError(index, subtask.label, getattr(subtask.agent, "name", type(subtask.agent).__name__),
                            kind, message)

    async with slots:
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                return await subtask.agent.arun(subtask.task)
        except TimeoutError:
            if not deadline.expired():
                raise  # a TimeoutError of someone else's: not ours to relabel
            return failed("timeout", f"no reply within {timeout:g} s (the per-subtask timeout)")
        except AgentReplyError as err:
            return failed(err.kind, str(err).removeprefix(f"{err.agent}: "))
        except anthropic.APIError as err:
            return failed(kind_of(err) or "server_error", one_line(err))


_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _loop_lock:
        if _loop is None or _loop.is_closed():
            _loop = asyncio.new_event_loop()
            # a daemon thread: it never keeps the interpreter alive, and idles when there is no work
            threading.Thread(target=_loop.run_forever, name="mas-parallel-loop", daemon=True).start()
        return _loop


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to its end from sync code and return its result (or raise its error).

    Works where `asyncio.run` does not (a Jupyter cell, whose loop is running): the coroutine
    runs on mas's background loop while this thread waits. In async code, `await` it instead.
    """
    loop = _background_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        coro.close()
        raise RuntimeError("run_parallel/run_sync was called from code already running on mas's parallel loop "
                           "(inside a subtask), where it would wait for itself forever: use "
                           "`await arun_parallel(...)` (or the agent's `arun`) there instead")
    # run_coroutine_threadsafe copies this thread's context (hooks: tracing, budgets) into the task
    future = asyncio.run_coroutine_threadsafe(coro, loop)
    try:
        return future.result()
    except BaseException:
        future.cancel()  # interrupted (Ctrl-C, a notebook's stop button): stop the calls too, don't orphan them
        raise


class ParallelResearcher:
    """A researcher that researches a topic from several angles at once and merges the notes.

    Each angle is one researcher call on `<topic>TOPIC: ANGLE</topic>`, by an agent of its own
    (all sharing one async client); their bullet points are merged in angle order, duplicates
    dropped. An angle that fails is reported in `errors` and named at the end of the research;
    the research goes on while at least `min_angles` angles succeeded (set it to the number of
    angles to stop the run instead). It has the researcher's interface (`run`, `reset`, `usage`,
    `name`), so `Orchestrator(researcher=ParallelResearcher())` takes it as its researcher.
    """

    role = "researcher"

    def __init__(self, angles: Sequence[str] = DEFAULT_ANGLES, *, async_client: anthropic.AsyncAnthropic | None = None,
                 model: str | None = None, max_tokens: int = DEFAULT_MAX_TOKENS,
                 max_concurrency: int = DEFAULT_MAX_CONCURRENCY, timeout: float | None = None,
                 min_angles: int = 1, name: str = "Researcher", system_prompt: str | None = None):
        angles = [str(a).strip() for a in angles]
        if not angles or not all(angles) or len(set(angles)) != len(angles):
            raise ValueError(f"angles must be distinct, non-empty strings (at least one), got {angles!r}")
        check_limits(max_concurrency, timeout)
        if not 1 <= min_angles <= len(angles):
            raise ValueError(f"min_angles must be between 1 and the number of angles ({len(angles)}), got {min_angles}")
        self.angles, self.name = angles, name
        self.max_concurrency, self.timeout, self.min_angles = max_concurrency, timeout, min_angles
        client = async_client or make_client(asynchronous=True)
        self.agents = [ResearcherAgent(async_client=client, model=model, max_tokens=max_tokens,
                                       system_prompt=system_prompt, name=f"{name} ({angle})") for angle in angles]
        self.errors: list[SubtaskError] = []  # the failed angles of the last run

    @property
    def usage(self) -> Usage:
        """Calls and tokens of all the angles' agents, added up."""
        return sum((agent.usage for agent in self.agents), Usage())

    def reset(self) -> None:
        for agent in self.agents:
            agent.reset()

    def run(self, task: str) -> str:
        """Research `task` (a research task with `<topic>`, or just a topic); returns bullet-point notes."""
        return run_sync(self.arun(task))

    async def arun(self, task: str) -> str:
        topic = tag(task, "topic") or task.strip()
        audience = tag(task, "audience") or DEFAULT_AUDIENCE
        subtasks = [Subtask(agent, research_task(f"{topic}: {angle}", audience), label=angle)
                    for agent, angle in zip(self.agents, self.angles)]
        results = await arun_parallel(subtasks, max_concurrency=self.max_concurrency, timeout=self.timeout)
        self.errors = [r for r in results if isinstance(r, SubtaskError)]
        answered = [(angle, r) for angle, r in zip(self.angles, results) if isinstance(r, str)]
        texts = [text for _, text in answered]
        if len(texts) < self.min_angles:
            failures = "; ".join(f"{e.label} ({e.kind}: {e.message})" for e in self.errors)
            raise ParallelResearchFailed(f"{self.name}: {len(texts)} of {len(self.angles)} angles researched, "
                                         f"fewer than min_angles={self.min_angles}: {failures}", self.errors)
        known = [text for text in texts if not is_no_research(text)]
        if texts and not known:  # no angle found anything: say so, rather than merge the admissions
            return f"{NO_RESEARCH} none of the {len(texts)} angles of {topic!r} has notes ({texts[0].strip()})"
        notes = f"## Research: {topic}\n\n" + bullet_list(merge_bullets(known))
        if len(known) < len(texts):
            unknown = [angle for angle, text in answered if is_no_research(text)]
            notes += f"\n\n_No notes on: {', '.join(unknown)}._"
        if self.errors:
            missing = ", ".join(f"{e.label} ({e.kind})" for e in self.errors)
            notes += f"\n\n_Not researched, the call failed: {missing}._"
        return notes
