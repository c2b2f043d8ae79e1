"""What every exercise check shares: the `NotYet` hint, and a log of the agent calls a check makes.

A check runs the learner's code against the offline model, so what it verifies is behaviour
(which agent answered, on which model, how many calls were in flight), not how the code looks.
`CallLog` is a `mas.hooks` hook, like notebook 07's tracer, reduced to what the checks read.

Simplified on purpose: `CallLog` counts calls (one per `messages.create`), not HTTP requests: the
SDK's retries happen inside a call, so a check that counts requests reads the offline transport's
`model.calls` instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mas.client import make_client
from mas.memory import SQLiteMemory
from mas.offline import OfflineTransport
from mas.orchestrator import Orchestrator


class NotYet(AssertionError):
    """The exercise is not done yet; the message says what to look at."""


def expect(condition: bool, hint: str) -> None:
    """Raise `NotYet(hint)` unless `condition` holds: a check is a list of these, first problem first.

    >>> expect(2 + 2 == 4, "never shown")
    >>> expect(2 + 2 == 5, "Check your sum.")
    Traceback (most recent call last):
    ...
    mas.exercises.core.NotYet: Check your sum.
    """
    if not condition:
        raise NotYet(hint)


def attempt(what: str, fn: Any, *args: Any, allow: tuple[type[BaseException], ...] = (), **kwargs: Any) -> Any:
    """Run the learner's `fn(*args, **kwargs)`; an exception it raises becomes one line, `NotYet`, naming `what`
    (except those in `allow`, which the check expects and handles itself).

    >>> attempt("keys('run_1/')", lambda prefix: [prefix], "run_1/")
    ['run_1/']
    >>> attempt("keys('run_1/')", lambda prefix: 1 / 0, "run_1/")
    Traceback (most recent call last):
    ...
    mas.exercises.core.NotYet: keys('run_1/') raised ZeroDivisionError: division by zero
    """
    try:
        return fn(*args, **kwargs)
    except (NotYet, *allow):
        raise
    except Exception as err:  # the learner's code: what it raised, in one line, not a traceback
        raise NotYet(f"{what} raised {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from None


@dataclass(frozen=True)
class Call:
    """One agent call seen by a `CallLog`."""

    agent: str  # the agent's name ("Writer (claude-haiku-4-5)" for a fallback copy)
    role: str
    model: str  # the model the request asked for
    answered: bool  # a reply came back (False: the call raised, after the SDK's own retries)


class CallLog:
    """A hook that records every agent call, and the most that were in flight at once.

    Use it with `mas.hooks.call_hook(log)`. Calls in flight are counted from the hook (before the
    call) to its `after` (when the reply or the error is in), so concurrent calls overlap here too.
    """

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.now = self.most = 0

    def __call__(self, agent: Any, request: dict) -> Any:
        # parallel calls all run on mas's one event loop thread, so these counts need no lock
        self.now += 1
        self.most = max(self.most, self.now)
        name, role, model = str(getattr(agent, "name", "?")), str(getattr(agent, "role", "")), str(request.get("model"))

        def after(message: Any, error: BaseException | None) -> None:
            self.now -= 1
            self.calls.append(Call(name, role, model, message is not None))

        return after

    def of(self, role: str) -> list[Call]:
        """The calls of the agents with this role, in the order they ended."""
        return [c for c in self.calls if c.role == role]


def run_pipeline(client: Any, topic: str, **agents: Any) -> tuple[Any, dict[str, str]]:
    """Notebook 03's orchestrator on `client`, in a throwaway memory: the run's result and what it saved.

    `agents` are the orchestrator's `researcher=`, `writer=`, `validator=` (the learner's, wrapped or not).
    """
    with SQLiteMemory(":memory:") as memory:
        result = Orchestrator(memory, client=client, progress=None, **agents).run(topic, run_id="check")
        return result, memory.scoped("check").get_all()


def offline_client(faults: list[Any] | None = None, max_retries: int = 0) -> tuple[OfflineTransport, Any]:
    """A new offline transport (with these faults), whose `.model.calls` counts its requests, and a client on it."""
    transport = OfflineTransport(faults=faults)
    return transport, make_client(transport=transport, max_retries=max_retries)
