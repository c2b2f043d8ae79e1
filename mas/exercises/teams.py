"""Checks for the exercises of notebook 09: a budget on a run, and the depth at which a tree of teams stops.

Each check tests what holds whatever model answers. 09.1 reads the learner's own runs and checks them
against each other (an approved run needs as many calls as it makes; a budget sends no call past its
limit), so it holds against Claude too. 09.2 rebuilds the learner's chains on fresh offline services (a
new transport per run, so its request count is that run's alone): the depth limit refuses a tree before
any call, so where it stops does not depend on the model.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from mas.errors import DepthLimitExceeded
from mas.exercises.core import NotYet, attempt, expect, offline_client
from mas.hierarchy import DEFAULT_MAX_DEPTH, ResearchTeam
from mas.prompts import research_task


def check_smallest_budget(smallest: int, enough: Any, short: Any, sent: int) -> str:
    """09.1: the smallest max_calls that lets the plain pipeline finish, and one less stopping it unsent.

    `enough` is the learner's approved run with max_calls=smallest, `short` the run with one call less and
    `sent` the requests its transport got. A run needs as many calls as it makes, so the least max_calls
    that finishes is the number of calls the approved run made; with one less, the budget refuses the last
    call before it is sent. Both hold for any model, so nothing is re-run here.
    """
    expect(isinstance(smallest, int) and not isinstance(smallest, bool) and smallest >= 1,
           f"Pass the smallest max_calls you found, a whole number >= 1, not {smallest!r}.")
    for name, result in (("enough", enough), ("short", short)):
        expect(hasattr(result, "status") and hasattr(result, "usage"), f"Pass as `{name}` the result of your run "
               f"(what Orchestrator.run returned), not {type(result).__name__}.")
    expect(enough.status == "approved", f"Your run with max_calls={smallest} ended as {enough.status!r}, not "
           "approved: it needs more calls than that.")
    made = enough.usage.calls
    expect(made <= smallest, f"Your approved run made {made} calls, more than max_calls={smallest} allows: run it "
           f"inside `with Budget(max_calls={smallest}):`.")
    expect(made == smallest, f"max_calls={smallest} is enough, but your approved run made only {made} calls, so "
           f"max_calls={made} is enough too: find the smallest.")
    expect(short.topic == enough.topic, f"Your two runs are on different topics ({enough.topic!r} and "
           f"{short.topic!r}): run the same one with one call less.")
    expect(short.status == "budget_exceeded", f"Your run with one call less ended as {short.status!r}, not "
           f"'budget_exceeded': run it inside `with Budget(max_calls={smallest - 1}):`.")
    expect(short.usage.calls == smallest - 1, f"Your short run made {short.usage.calls} calls; under "
           f"max_calls={smallest - 1} it makes exactly {smallest - 1} before the budget stops it: was it run "
           f"with `Budget(max_calls={smallest - 1})`?")
    expect(sent == smallest - 1, f"Your short run sent {sent} requests. A budget refuses a call before it is "
           f"sent, so exactly max_calls={smallest - 1} go out: count them on a transport of its own "
           "(transport.model.calls), new for that run.")
    return (f"max_calls={smallest} is the least that finishes, the calls your approved run made; with "
            f"{smallest - 1}, the call that would pass it was refused unsent ({sent} requests)")


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
        team = attempt(f"chain({levels}, client)", chain, levels, offline_client()[1])
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
        attempt(f"chain({refused_at - 1}, client).run(task)", lambda: chain(refused_at - 1, client).run(task),
                allow=(DepthLimitExceeded,))
    except DepthLimitExceeded:
        raise NotYet(f"A chain of {refused_at - 1} levels is refused already: the smallest refused chain is "
                     "shorter.") from None
    ran = transport.model.calls
    transport, client = offline_client()
    try:
        attempt(f"chain({refused_at}, client).run(task)", lambda: chain(refused_at, client).run(task),
                allow=(DepthLimitExceeded,))
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
