"""Budgets and hierarchical orchestration, offline: every limit stops exactly where it says, the
refused call never reaches the transport, and the figures are worked out by hand.

Hand figures use the offline estimate (mas/offline/tokens.py): ceil(chars/4) per block, plus 3
per message. SYSTEM below is 14 characters (4 tokens) and TASK 8 characters (2 + 3 = 5 tokens),
so every call of `terse()` sends 9 input tokens and can get at most MAX_OUT = 20 back: 29.
Prices: claude-opus-4-6 is $5 input, $6.25 cache write and $25 output per million tokens (mas.pricing).
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import anthropic
import pytest

from mas.agents import BaseAgent
from mas.budget import Budget, Spent
from mas.client import make_client
from mas.errors import AgentReplyError, BudgetExceeded, DepthLimitExceeded
from mas.hierarchy import ResearchTeam, calls_by_depth, current_depth
from mas.offline import Latency, OfflineTransport, ScriptedTransport, error, text_message
from mas.orchestrator import Orchestrator
from mas.prompts import SYSTEM_PROMPTS, research_task

SYSTEM, TASK, MAX_OUT, MODEL = "Reply in JSON.", "Hi there", 20, "claude-opus-4-6"
WORST = 4 + 5 + MAX_OUT  # 29 tokens: input 9 + max_tokens 20
REPLY = text_message("ok", input_tokens=9)  # what the scripted API answers: 9 in, 1 out ("ok" = 2 chars)
TOPIC = "Building a research assistant with agents"
ANGLES = ["Multi-agent LLM systems and orchestration", "Vector databases and semantic search",
          "Prompt caching and its cost"]
ORCH_CALLS = 4  # write, validate, revise, validate: the offline pipeline after its research


def terse(client, **kw) -> BaseAgent:
    return BaseAgent("note", client=client, model=kw.pop("model", MODEL), max_tokens=MAX_OUT, system_prompt=SYSTEM,
                     **kw)


def ask(agent, budget, times):
    """Ask `times` times, each from an empty history (so every call is the same 29-token worst case)."""
    with budget:
        for _ in range(times):
            agent.reset()
            agent.run(TASK)


# ---------------------------------------------------------------------------------- the budget

def test_a_calls_budget_allows_exactly_n_calls_and_the_next_is_never_sent():
    transport = OfflineTransport()
    agent, budget = terse(make_client(transport=transport)), Budget(max_calls=3)
    ask(agent, budget, 3)
    with pytest.raises(BudgetExceeded) as info:
        ask(agent, budget, 1)
    assert transport.model.calls == 3 and budget.spent.calls == 3 and budget.reserved == Spent()
    err = info.value
    assert (err.status, err.limit, err.maximum, err.spent, err.needed) == ("budget_exceeded", "calls", 3, 3, 1)
    assert str(err) == ("budget exceeded: Note's call would be call 4 but max_calls=3 (3 spent, 0 in flight); "
                        "it was not sent")


def test_a_zero_budget_refuses_the_first_call():
    transport = OfflineTransport()
    with pytest.raises(BudgetExceeded):
        ask(terse(make_client(transport=transport)), Budget(max_calls=0), 1)
    assert transport.model.calls == 0


def test_the_estimate_is_what_the_offline_model_bills():
    agent = terse(make_client(transport=OfflineTransport()))
    budget = Budget(max_tokens=1000)
    assert budget.worst_case(agent, agent._request(TASK)).tokens == WORST
    ask(agent, budget, 1)
    assert agent.last_message.usage.input_tokens == WORST - MAX_OUT


def test_a_tokens_budget_counts_input_plus_max_tokens_and_stops_at_its_limit():
    # each call reserves 29 and settles at 10 (9 in + 1 out): after k calls 10k are spent, and the
    # next is allowed while 10k + 29 <= 59, i.e. k <= 3: four calls (the 4th lands exactly on 59)
    transport = ScriptedTransport([REPLY] * 10)
    agent, budget = terse(make_client(transport=transport)), Budget(max_tokens=59)
    with pytest.raises(BudgetExceeded) as info:
        ask(agent, budget, 10)
    assert len(transport.requests) == 4 and budget.spent == Spent(4, 40, pytest.approx(4 * 70e-6))
    err = info.value
    assert (err.limit, err.maximum, err.spent, err.needed, err.agent) == ("tokens", 59, 40, WORST, "Note")
    assert str(err) == ("budget exceeded: Note's call could use 29 tokens (input + max_tokens) but 40 of "
                        "max_tokens=59 are spent (0 more reserved in flight); it was not sent")


def test_a_cost_budget_prices_the_worst_case_and_stops_at_its_limit():
    # worst case (9*5 + 20*25) / 1e6 = $0.000545; each call settles at (9*5 + 1*25) / 1e6 = $0.00007;
    # the next call is allowed while 0.00007k + 0.000545 <= 0.001, i.e. k <= 6: seven calls
    transport = ScriptedTransport([REPLY] * 10)
    agent, budget = terse(make_client(transport=transport)), Budget(max_cost=0.001)
    with pytest.raises(BudgetExceeded) as info:
        ask(agent, budget, 10)
    assert len(transport.requests) == 7 and budget.spent.cost == pytest.approx(7 * 0.00007)
    err = info.value
    assert err.limit == "cost" and err.needed == pytest.approx(0.000545)
    assert str(err) == ("budget exceeded: Note's call could cost $0.000545 but $0.00049 of max_cost=$0.001 is spent "
                        "($0 more reserved in flight); it was not sent")


def test_a_cached_system_prompt_is_priced_as_a_cache_write_in_the_worst_case():
    agent = terse(make_client(transport=ScriptedTransport()), cache_system_prompt=True)
    need = Budget(max_cost=1).worst_case(agent, agent._request(TASK))
    assert (need.tokens, need.cost) == (WORST, pytest.approx((9 * 6.25 + 20 * 25) / 1e6))


def test_a_model_without_a_price_is_refused_under_max_cost_and_unknown_without_it():
    transport = ScriptedTransport([REPLY])
    agent = terse(make_client(transport=transport), model="my-fine-tune")
    with pytest.raises(BudgetExceeded, match="no known price for model 'my-fine-tune'"):
        ask(agent, Budget(max_cost=10), 1)
    assert transport.requests == []
    counted = Budget(max_calls=5)
    ask(agent, counted, 1)
    assert counted.spent.cost is None and counted.summary() == "1 call(s) of 5, 10 tokens, cost unknown"


def test_an_overridden_price_is_used():
    budget = Budget(max_cost=1, price=lambda model, usage: 0.25 if model == "my-fine-tune" else None)
    ask(terse(make_client(transport=ScriptedTransport([REPLY])), model="my-fine-tune"), budget, 1)
    assert budget.spent == Spent(1, 10, 0.25)


def test_a_failed_call_counts_as_a_call_with_no_tokens_and_frees_its_reservation():
    budget = Budget(max_calls=5, max_tokens=100)
    with pytest.raises(anthropic.BadRequestError):
        ask(terse(make_client(transport=ScriptedTransport([error(400)]), max_retries=0)), budget, 1)
    assert budget.spent == Spent(1, 0, 0.0) and budget.reserved == Spent()


def test_api_counting_asks_count_tokens_once_per_call_and_a_calls_only_budget_counts_nothing():
    class Counting(OfflineTransport):
        counted = 0

        def handle_request(self, request):
            self.counted += request.url.path.endswith("/count_tokens")
            return super().handle_request(request)

    transport = Counting()
    agent = terse(make_client(transport=transport))
    api = Budget(max_tokens=1000, input_count="api")
    assert api.worst_case(agent, agent._request(TASK)).tokens == WORST  # the offline API counts like the estimate
    ask(agent, api, 2)
    assert (transport.counted, transport.model.calls) == (3, 2)
    ask(agent, Budget(max_calls=5), 2)
    assert (transport.counted, transport.model.calls) == (3, 4)


@pytest.mark.parametrize("kwargs", [{"max_calls": -1}, {"max_tokens": "10"}, {"max_cost": True},
                                    {"input_count": "guess"}])
def test_bad_limits_are_clear_errors(kwargs):
    with pytest.raises(ValueError, match="max_calls|max_tokens|max_cost|input_count"):
        Budget(**kwargs)


def test_concurrent_async_calls_cannot_jointly_overshoot():
    # ten calls start together; each reserves its worst case (29) while in flight, so only
    # 100 // 29 = 3 fit, although each one really uses less; sequentially more would fit
    transport = OfflineTransport(latency=Latency(base=0.05))
    client = make_client(asynchronous=True, transport=transport)
    budget = Budget(max_tokens=100)

    async def main():
        agents = [terse(None, async_client=client) for _ in range(10)]
        return await asyncio.gather(*(a.arun(TASK) for a in agents), return_exceptions=True)

    with budget:
        results = asyncio.run(main())
    answered = [r for r in results if isinstance(r, str)]
    refused = [r for r in results if isinstance(r, BudgetExceeded)]
    assert (len(answered), len(refused), transport.model.calls, budget.spent.calls) == (3, 7, 3, 3)
    assert budget.spent.tokens <= 100 and budget.reserved == Spent()


def test_threads_sharing_one_budget_make_exactly_max_calls():
    transport = OfflineTransport(latency=Latency(base=0.02))
    client, budget = make_client(transport=transport), Budget(max_calls=5)
    outcomes, lock = [], threading.Lock()

    def work(_):
        try:
            ask(terse(client), budget, 1)  # `with budget:` in each thread: hooks are per context
            ok = True
        except BudgetExceeded:
            ok = False
        with lock:
            outcomes.append(ok)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(12)))
    assert (outcomes.count(True), transport.model.calls, budget.spent.calls) == (5, 5, 5)


def test_a_budget_holds_over_mas_parallels_background_loop():
    from mas.parallel import ParallelResearcher

    transport = OfflineTransport(latency=Latency(base=0.02))
    client = make_client(asynchronous=True, transport=transport)
    researcher = ParallelResearcher(["a", "b", "c"], async_client=client)
    with Budget(max_calls=2) as budget, pytest.raises(BudgetExceeded):
        researcher.run(research_task("Solar panel recycling", "engineers"))
    assert transport.model.calls == budget.spent.calls == 2


# ---------------------------------------------------------------------------------- the orchestrator

def orchestrate(memory, transport=None, **kw):
    transport = transport or OfflineTransport()
    return transport, Orchestrator(memory, client=make_client(transport=transport, max_retries=0), progress=None, **kw)


def test_a_run_stopped_by_a_budget_resumes_with_a_larger_one_and_repeats_no_call(memory):
    transport, orch = orchestrate(memory)
    with Budget(max_calls=2):
        stopped = orch.run("How vector databases enable semantic search", run_id="r")
    assert (stopped.status, transport.model.calls) == ("budget_exceeded", 2)
    assert "max_calls=2 (2 spent, 0 in flight)" in stopped.reason
    assert set(memory.scoped("r").get_all()) >= {"research", "draft_1"}
    transport, orch = orchestrate(memory)
    with Budget(max_calls=3):
        resumed = orch.run(run_id="r")
    assert (resumed.status, transport.model.calls, resumed.usage.calls) == ("approved", 3, 5)


# ---------------------------------------------------------------------------------- the hierarchy

def tree(client=None, **kw):
    return ResearchTeam([ANGLES[0], ResearchTeam(ANGLES[1:], angle="Retrieval and cost")], client=client, **kw)


def chain(levels: int, **kw) -> ResearchTeam:
    """`levels` teams, each inside the one above."""
    team = ResearchTeam(["Prompt caching"], angle="level", **kw)
    for _ in range(levels - 1):
        team = ResearchTeam(["Prompt caching", team], angle="level", **kw)
    return team


def test_a_hierarchical_run_is_approved_and_its_calls_are_counted_per_depth(memory):
    transport = OfflineTransport()
    client = make_client(transport=transport, max_retries=0)
    team = tree(client)
    orch = Orchestrator(memory, client=client, researcher=team, progress=None)
    with Budget(max_calls=7) as budget, calls_by_depth() as counts:
        result = orch.run(TOPIC, run_id="h")
    assert (result.status, result.cycles) == ("approved", 1)
    assert dict(counts) == {0: ORCH_CALLS, 1: 1, 2: 2}  # the orchestrator's own agents, the team, the nested team
    assert transport.model.calls == budget.spent.calls == result.usage.calls == 7 and team.usage.calls == 3
    research = memory.scoped("h").get("research")
    assert research.startswith(f"## Research: {TOPIC}\n\n### {ANGLES[0]}\n- ")
    assert "\n### Retrieval and cost\n" in research
    assert team._local == {}  # the checkpoints go once the research is whole


def test_the_depth_limit_stops_exactly_at_max_depth():
    transport = OfflineTransport()
    client = make_client(transport=transport)
    for levels in (1, 2, 3):
        chain(levels, client=client, max_depth=3).run(research_task("Caching", "engineers"))
    assert transport.model.calls == 1 + 2 + 3
    with pytest.raises(DepthLimitExceeded) as info:
        chain(4, client=client, max_depth=3).run(research_task("Caching", "engineers"))
    assert transport.model.calls == 6  # refused before any call of the tree
    assert info.value.status == "depth_exceeded"
    assert str(info.value) == ("depth limit: ResearchTeam (level) at depth 1 would take the team tree to depth 4, "
                               "past max_depth=3; nothing was sent (flatten the tree or raise max_depth)")


def test_the_tightest_max_depth_on_the_way_down_wins_and_depth_is_restored():
    inner = ResearchTeam(["Prompt caching"], angle="inner", max_depth=1)  # allows no team above it
    outer = ResearchTeam(["Vector databases", inner], client=make_client(transport=OfflineTransport()))
    with pytest.raises(DepthLimitExceeded, match="ResearchTeam \\(inner\\) at depth 2 .* past max_depth=1"):
        outer.run(research_task("Retrieval", "engineers"))
    assert current_depth() == 0


def test_a_team_that_contains_itself_is_refused_before_any_call():
    transport = OfflineTransport()
    team = ResearchTeam(["Prompt caching"], angle="loop", client=make_client(transport=transport))
    team.angles.append(team)
    with pytest.raises(DepthLimitExceeded, match="to depth 4, past max_depth=3"):
        team.run(research_task("Caching", "engineers"))
    assert transport.model.calls == 0


def test_the_orchestrator_stops_a_too_deep_tree_with_its_status_and_no_call(memory):
    transport, orch = orchestrate(memory, researcher=chain(2, max_depth=1, client=make_client(
        transport=(t := OfflineTransport()))))
    result = orch.run(TOPIC, run_id="d")
    assert result.status == "depth_exceeded" and "past max_depth=1" in result.reason
    assert transport.model.calls == t.model.calls == 0


@pytest.mark.parametrize("persist", [False, True])
def test_a_tree_stopped_by_a_budget_resumes_without_repeating_a_finished_angle(memory, persist):
    team_memory = memory.scoped("teams") if persist else None
    first = OfflineTransport()
    team = ResearchTeam(ANGLES, client=make_client(transport=first), memory=team_memory)
    _, orch = orchestrate(memory, researcher=team)
    with Budget(max_calls=2):
        stopped = orch.run(TOPIC, run_id="b")
    assert (stopped.status, first.model.calls) == ("budget_exceeded", 2)
    assert "Researcher (Prompt caching and its cost)'s call would be call 3" in stopped.reason
    if persist:  # a new process: a new team object on a new transport, the same memory
        first = OfflineTransport()
        team = ResearchTeam(ANGLES, client=make_client(transport=first), memory=team_memory)
    before = first.model.calls
    transport, orch = orchestrate(memory, researcher=team)
    resumed = orch.run(run_id="b")
    assert resumed.status == "approved" and (first.model.calls - before, transport.model.calls) == (1, ORCH_CALLS)
    assert resumed.usage.calls == 3 + ORCH_CALLS
    assert team_memory is None or team_memory.get_all() == {}


def test_an_empty_task_is_a_clear_error():
    with pytest.raises(ValueError, match="empty task"):
        ResearchTeam(["x"], client=make_client(transport=ScriptedTransport())).run(" ")


def test_notes_without_bullets_are_re_asked_with_the_problem_then_refused():
    transport = ScriptedTransport(["Caching is nice.", "- Caching stores a prefix."])
    team = ResearchTeam(["Prompt caching"], client=make_client(transport=transport))
    assert team.run(research_task("Caching", "engineers")) == (
        "## Research: Caching\n\n### Prompt caching\n- Caching stores a prefix.")
    assert "no bullet points" in transport.requests[1]["messages"][-1]["content"] and team.usage.calls == 2
    bad = ResearchTeam(["Prompt caching"], client=make_client(transport=ScriptedTransport(["prose", "more prose"])))
    with pytest.raises(AgentReplyError, match="no usable notes after 2 answers") as info:
        bad.run(research_task("Caching", "engineers"))
    assert info.value.kind == "invalid"


def test_each_leaf_is_a_researcher_on_its_angle_and_a_nested_team_shares_its_parents_client():
    transport = ScriptedTransport(["- a.", "- b.", "- c."])
    team = tree(make_client(transport=transport))
    research = team.run(research_task(TOPIC, "engineers"))
    assert research == f"## Research: {TOPIC}\n\n### {ANGLES[0]}\n- a.\n\n### Retrieval and cost\n- b.\n- c."
    assert [r["system"] for r in transport.requests] == [SYSTEM_PROMPTS["researcher"]] * 3
    sent = [r["messages"][-1]["content"] for r in transport.requests]
    assert [s.split("</topic>")[0].removeprefix("<topic>") for s in sent] == ANGLES
    assert f"wider research on: {TOPIC} > Retrieval and cost</context>" in sent[2]
    assert team.angles[1]._client is team.client and team.usage.calls == 3


@pytest.mark.parametrize("angles, kwargs, message", [
    ([], {}, "at least one angle"),
    ([" "], {}, "non-empty string"),
    ([ResearchTeam(["x"])], {}, "nested ResearchTeam needs angle="),
    (["x"], {"max_depth": 0}, "max_depth and check_attempts must be >= 1"),
])
def test_bad_teams_are_clear_errors(angles, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ResearchTeam(angles, **kwargs)
    with pytest.raises(TypeError, match="a string or a ResearchTeam"):
        ResearchTeam([42])


def test_a_team_whose_angles_know_nothing_says_so_and_the_run_stops_before_a_draft(memory):
    from mas.prompts import is_no_research

    team = ResearchTeam(["Angle A", "Angle B"], client=make_client(transport=ScriptedTransport(
        ["- A fact.", "No research: nothing on B."])))
    mixed = team.run("<topic>T</topic>")
    assert "- A fact." in mixed and mixed.endswith("_No notes on: Angle B._")
    transport = ScriptedTransport(["No research: nothing on A.", "No research: nothing on B."])
    team = ResearchTeam(["Angle A", "Angle B"], client=make_client(transport=transport))
    result = Orchestrator(memory, client=make_client(transport=transport), researcher=team, progress=None).run(
        "T", run_id="t")
    assert is_no_research(memory.scoped("t").get("research")) and result.status == "no_research"
    assert len(transport.requests) == 2  # the two angles, asked once each: nothing written
