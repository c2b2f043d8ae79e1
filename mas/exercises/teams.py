"""Checks for the exercises of notebook 09: a budget on a run, and the depth at which a tree of teams stops.

Both checks repeat the learner's experiment on fresh offline services (a new transport per run, so
its request count is that run's alone) and compare what happens with the learner's figures.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from mas.budget import Budget
from mas.errors import DepthLimitExceeded
from mas.exercises.core import NotYet, expect, offline_client, run_pipeline
from mas.hierarchy import DEFAULT_MAX_DEPTH, ResearchTeam
from mas.prompts import research_task

TOPIC = "How vector databases enable semantic search"


def check_smallest_budget(smallest: int, short: Any, sent: int, topic: str = TOPIC) -> str:
    """09.1: the smallest max_calls that lets the plain pipeline finish, and one less stopping it unsent."""
    def run_with(max_calls: int) -> tuple[Any, int]:
        transport, client = offline_client()
        with Budget(max_calls=max_calls):
            result, _ = run_pipeline(client, topic)
        return result, transport.model.calls

    expect(isinstance(smallest, int) and not isinstance(smallest, bool) and smallest >= 1,
           f"Pass the smallest max_calls you found, a whole number >= 1, not {smallest!r}.")
    enough, _ = run_with(smallest)
    expect(enough.status == "approved", f"With max_calls={smallest} the run stops as {enough.status!r}: "
           "it needs more calls than that.")
    less, requests = run_with(smallest - 1)
    expect(less.status != "approved", f"max_calls={smallest} is enough, but so is {smallest - 1}: find the smallest.")
    expect(hasattr(short, "status"), "Pass the result of your run with one call less (what Orchestrator.run "
           f"returned), not {type(short).__name__}.")
    expect(short.status == "budget_exceeded", f"Your run with one call less ended as {short.status!r}, not "
           f"'budget_exceeded': run it inside `with Budget(max_calls={smallest - 1}):`.")
    expect(sent == smallest - 1, f"Your short run sent {sent} requests. A budget refuses a call before it is "
           f"sent, so exactly max_calls={smallest - 1} go out: count them on a transport of its own "
           "(transport.model.calls), new for that run.")
    return (f"max_calls={smallest} is the least that finishes; with {smallest - 1}, the call that would pass it "
            f"was refused unsent ({requests} requests)")


def _teams(team: Any) -> Iterator[Any]:
    """A team and every team nested in it (the tree is finite: its height was checked first)."""
    yield team
    for angle in team.angles:
        if isinstance(angle, ResearchTeam):
            yield from _teams(angle)


def check_depth_limit(chain: Callable[[int, Any], Any], refused_at: int, deepest_requests: int) -> str:
    """09.2: chains of teams, one level inside the other: the shortest one refused, and the requests
    of the deepest one that ran."""
    expect(callable(chain), "Pass your function chain(levels, client), which builds a chain of that many teams.")
    expect(isinstance(refused_at, int) and not isinstance(refused_at, bool) and refused_at >= 2,
           f"Pass the smallest number of levels that is refused, a whole number >= 2, not {refused_at!r}.")
    for levels in range(1, refused_at + 1):
        team = chain(levels, offline_client()[1])
        expect(isinstance(team, ResearchTeam), f"chain({levels}, client) should return a ResearchTeam, "
               f"not {type(team).__name__}.")
        height = team.height(cap=levels + 1)
        expect(height == levels, f"chain({levels}, client) built a tree {height} level(s) deep: each level is a "
               "ResearchTeam holding one researcher angle and the level below (ResearchTeam([angle, team], ...)).")
        expect(all(t.max_depth == DEFAULT_MAX_DEPTH for t in _teams(team)), "Leave max_depth at its default "
               f"({DEFAULT_MAX_DEPTH}): the exercise is to find where the default stops a tree.")
    task = research_task("Prompt caching", "engineers")
    transport, client = offline_client()
    try:
        chain(refused_at - 1, client).run(task)
    except DepthLimitExceeded:
        raise NotYet(f"A chain of {refused_at - 1} levels is refused already: the smallest refused chain is "
                     "shorter.") from None
    ran = transport.model.calls
    transport, client = offline_client()
    try:
        chain(refused_at, client).run(task)
    except DepthLimitExceeded:
        pass
    else:
        raise NotYet(f"A chain of {refused_at} levels ran ({transport.model.calls} requests): it is not refused. "
                     "Try deeper chains.")
    expect(deepest_requests == ran, f"The chain of {refused_at - 1} levels did not make {deepest_requests!r} "
           "requests: count them on a transport of its own (transport.model.calls), new for that run.")
    return (f"max_depth={DEFAULT_MAX_DEPTH}: {refused_at} levels are refused with {transport.model.calls} requests "
            f"sent; {refused_at - 1} levels ran with {ran} requests")


CHECKS: dict[str, Callable[..., str]] = {
    "09.1": check_smallest_budget,
    "09.2": check_depth_limit,
}
