"""Hooks around every model call an agent makes: the one place tracing and budgets plug in.

    def trace(agent, request):          # before the call; may raise to refuse it
        start = time.perf_counter()
        def after(message, error):      # after it: the Message, or the error it raised
            print(agent.name, time.perf_counter() - start)
        return after

    with call_hook(trace):
        orchestrator.run(...)           # every agent call inside is traced; agent code unchanged

Hooks live in a context variable, so they apply to the code inside the `with` (and to the
asyncio tasks it starts), not to other threads or notebooks' other cells.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Callable, Iterator

if TYPE_CHECKING:
    from anthropic.types import Message

After = Callable[["Message | None", "BaseException | None"], None]
Hook = Callable[[Any, dict], "After | None"]

_hooks: ContextVar[tuple[Hook, ...]] = ContextVar("mas_call_hooks", default=())


class RunStopped(RuntimeError):
    """A limit or policy stopped the work on purpose (a budget, a depth limit, an open circuit).

    The orchestrator ends the run with `status` and this message as the reason, resumable later.
    """

    status = "stopped"


@contextmanager
def call_hook(hook: Hook) -> Iterator[Hook]:
    token = _hooks.set((*_hooks.get(), hook))
    try:
        yield hook
    finally:
        _hooks.reset(token)


def before_call(agent: Any, request: dict) -> After:
    """Run every active hook before a call; returns the function to run after it."""
    afters: list[After] = []
    try:
        for hook in _hooks.get():
            if (after := hook(agent, request)) is not None:
                afters.append(after)
    except BaseException as err:
        # a later hook refused the call: the earlier ones hear it was never sent (a budget
        # releases its reservation, a tracer closes its span)
        for fn in reversed(afters):
            fn(None, err)
        raise

    def after(message: Message | None, error: BaseException | None) -> None:
        for fn in afters:
            fn(message, error)

    return after
