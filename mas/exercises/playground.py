"""Checks for the exercises of notebook 10: the prompt playground, and reading a trace (see `mas.exercises`)."""

from __future__ import annotations

from typing import Any, Callable

from mas.agents import ResearcherAgent
from mas.errors import AgentReplyError
from mas.exercises.core import NotYet, expect
from mas.prompts import bullets, is_no_research

BUDGET = 200  # 10.1: the max_tokens the researcher's reply must fit in


def check_tight_max_tokens(playground: Any) -> str:
    """10.1: a complete researcher reply within max_tokens=BUDGET, by asking for less (its system prompt),
    not by allowing more (max_tokens). One call with the playground's researcher prompt, model and
    max_tokens, on the playground's default task: what is checked is that reply, whatever model gives it."""
    # the playground's module, so the default task is the one the learner sees (loaded only with a playground)
    from mas.widgets import DEFAULT_TASK

    limit = playground.max_tokens.value
    expect(limit <= BUDGET, f"max_tokens is {limit}: keep it at {BUDGET} or below. The exercise is to ask for "
           "less, not to allow more.")
    agent = ResearcherAgent(client=playground.client, model=playground.model.value, max_tokens=limit,
                            system_prompt=playground.prompts["researcher"])
    try:
        text = agent.run(DEFAULT_TASK)
    except AgentReplyError as err:
        expect(err.kind != "max_tokens", f"The reply is still cut off at max_tokens={limit}. Ask the researcher "
               "for less in its system prompt: fewer facts, no sources, or one aspect of the topic.")
        raise NotYet(f"The researcher's reply could not be used: {err}") from None
    expect(not is_no_research(text), "The researcher answered 'No research:': keep the task's topic.")
    points = bullets(text)
    expect(len(points) >= 2, f"The reply fits, but it holds {len(points)} bullet point(s): keep at least two facts, "
           "as bullets (the format the writer reads).")
    return (f"a complete reply of {agent.usage.output_tokens} tokens (max_tokens={limit}) with {len(points)} "
            "facts. Asking made the reply shorter, and cheaper: you pay for the tokens a reply uses, and "
            "max_tokens only cuts it off")


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
