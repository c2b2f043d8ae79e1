"""Checks for the exercises of notebook 10: the prompt playground, and reading a trace (see `mas.exercises`)."""

from __future__ import annotations

from typing import Any, Callable

from mas.exercises.core import expect


def check_tight_max_tokens(playground: Any) -> str:
    """10.1: the smallest max_tokens (within 10) that keeps the researcher's reply complete."""
    limit = playground.max_tokens.value
    playground.role.value = "researcher"

    def complete(max_tokens: int) -> bool:
        playground.max_tokens.value = max_tokens
        text, _ = playground._ask()
        return not text.startswith("[max_tokens]")

    try:
        expect(complete(limit), f"With max_tokens={limit} the reply is cut off: raise it.")
        expect(limit <= 10 or not complete(limit - 10), f"max_tokens={limit} works, but so does {limit - 10}: "
               "go lower, until the reply is cut off, then step back up.")
    finally:
        playground.max_tokens.value = limit
    return (f"max_tokens={limit} is just enough. The cost did not change: you pay for the tokens a reply "
            "uses, and max_tokens only caps them")


def check_most_expensive(tracer: Any, agent_name: str, call_index: int) -> str:
    """10.2: read a trace: the most expensive single call, its agent and its number."""
    priced = [s for s in tracer.spans if s.cost is not None]
    expect(bool(priced), "The trace has no priced calls: trace a run with a model that has a price.")
    top = max(priced, key=lambda s: s.cost)
    expect(agent_name == top.agent, f"Not quite: {agent_name!r} is not the agent of the most expensive call. "
           "Sort the spans by their `cost`.")
    expect(call_index == top.index, f"Right agent, wrong call: the {top.agent} made several calls, and call "
           f"{call_index} is not the costliest. Compare the spans one by one, not the agents' totals.")
    return f"{top.agent}'s call {top.index} cost ${top.cost:.4f}, the most of the run"


CHECKS: dict[str, Callable[..., str]] = {
    "10.1": check_tight_max_tokens,
    "10.2": check_most_expensive,
}
