"""Hooks around every model call an agent makes: the one place tracing and budgets plug in.

    def trace(agent, request):          # before the call; may raise to refuse it
        start = time.perf_counter()
        def after(message, error):      # after it: the Message, or the error it raised
            print(agent.name, time.perf_counter() - start)
        return after

    with call_hook(trace):
        orchestrator.run(...)           # every agent call inside is traced; agent code unchanged

Every request goes through `BaseAgent._call`: messages (structured outputs included) and token counts
(`count_tokens`, which a hook tells by `counting(request)`), so a hook sees and can refuse each.
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


def install(hook: Hook) -> None:
    """Add `hook` for the rest of this context (what `with call_hook(...)`, `with tracer:`, `with budget:` do)."""
    _hooks.set((*_hooks.get(), hook))


def uninstall(hook: Hook) -> None:
    """Remove the last installation of `hook` from this context (on leaving the `with`)."""
    hooks = list(_hooks.get())
    last = max((i for i, h in enumerate(hooks) if h == hook), default=None)
    if last is not None:
        del hooks[last]
        _hooks.set(tuple(hooks))


def installed() -> tuple[Hook, ...]:
    """The hooks active here, in the order they run."""
    return _hooks.get()


@contextmanager
def call_hook(hook: Hook) -> Iterator[Hook]:
    install(hook)
    try:
        yield hook
    finally:
        uninstall(hook)


def counting(request: dict) -> bool:
    """A `count_tokens` request (it has no `max_tokens`, as in the API): nothing is generated.

    >>> counting({"model": "m", "messages": []}), counting({"model": "m", "max_tokens": 5, "messages": []})
    (True, False)
    """
    return "max_tokens" not in request


def _nothing_after(message: Message | None, error: BaseException | None) -> None:
    """What runs after a call when no hook is installed: nothing."""


def before_call(agent: Any, request: dict) -> After:
    """Run every active hook before a call; returns the function to run after it."""
    hooks = _hooks.get()
    if not hooks:  # the usual case: no list and no closure to build around every call
        return _nothing_after
    afters: list[After] = []
    try:
        for hook in hooks:
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
