"""Checks for the exercises of notebooks 05-07: failure policies, parallel agents, tracing and cost.

Each check rebuilds the exercise's scenario on a fresh offline service and runs the learner's
policies, breaker or researcher in it, or reads the learner's trace (see `mas.exercises`).
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

from mas.agents import BaseAgent, ValidatorAgent, WriterAgent
from mas.errors import RunStopped
from mas.exercises.core import CallLog, NotYet, expect, offline_client, run_pipeline
from mas.failures import CircuitBreaker, Fallback, Resilient, Retry
from mas.hooks import call_hook
from mas.offline import Fault
from mas.parallel import ParallelResearcher
from mas.pricing import PRICES, cost, price
from mas.prompts import bullets, is_no_research, merge_bullets, research_task

TOPIC = "How vector databases enable semantic search"  # the offline model has notes on it


def _policies(answer: Any) -> list[Any]:
    """The policy list of the learner's answer: the list itself, or the one inside a Resilient."""
    policies = answer.policies if isinstance(answer, Resilient) else answer
    expect(isinstance(policies, (list, tuple)) and all(callable(getattr(p, "recover", None)) for p in policies),
           "Pass the list of failure policies you gave Resilient, e.g. [Retry(...), Fallback(...)] "
           "(or the Resilient writer itself).")
    return list(policies)


def check_fallback(answer: Any) -> str:
    """05.1: the writer's requests fail for the whole run, on any model; fall back at once to a writer with no model."""
    policies = _policies(answer)
    fallbacks = [p for p in policies if isinstance(p, Fallback)]
    expect(bool(fallbacks), "Nothing falls back: retrying a service that is down for the whole run can't help. "
           "Add Fallback(agent=...) with a writer of your own that needs no model.")
    expect(all(p.model is None for p in fallbacks), "Fallback(model=...) sends the same request to another model "
           "on the same service, and every writer request fails, on any model. Fall back to an agent that needs no "
           "model: Fallback(agent=YourWriter()).")
    modelled = next((p.agent for p in fallbacks if isinstance(p.agent, (BaseAgent, Resilient))), None)
    expect(modelled is None, f"Your fallback, {getattr(modelled, 'name', modelled)!r}, calls a model too, and "
           "every writer request fails. Write a class with no model: name, run(task) -> str (a draft made from "
           "the research in the task), reset() and usage (a mas.contracts.Usage()).")
    # every writer request gets a 529, whatever its model: the SDK's 3 requests per call (max_retries=2)
    transport, client = offline_client([Fault("overloaded", role="writer", times=None)], max_retries=2)
    writer, log = Resilient(WriterAgent(client=client), policies), CallLog()
    try:
        with call_hook(log):
            result, _ = run_pipeline(client, TOPIC, writer=writer)
    except Exception as err:  # the learner's agent broke: say so, with the interface it needs
        raise NotYet(f"The run broke in your fallback: {type(err).__name__}: {err}. An agent that stands in for "
                     "the writer needs name, run(task) -> str, reset() and usage (a mas.contracts.Usage()).") from None
    if result.status == "max_cycles":
        raise NotYet(f"The validator never approved your fallback's draft: {result.issues[0]} Make the draft "
                     "from every research point in the task (tag(task, 'research'), then bullets(...)), in the "
                     "research's own words.")
    expect(result.status == "approved", f"The run stopped as {result.status!r}: {result.reason}")
    steps, dead = len(writer.outcomes), sum(not c.answered for c in log.of("writer"))
    expect(writer.outcomes == ["fallback"] * steps, f"The writer's steps ended as {writer.outcomes}: your "
           "Fallback should write every draft.")
    expect(dead == steps, f"The dead service got {dead} writer calls ({3 * dead} requests) for {steps} draft(s): "
           + ("your Retry called it again, and it is down for the whole run. Fall back at once, with no Retry."
              if any(isinstance(p, Retry) for p in policies) else "only the first call of each step should fail."))
    expect(steps == 1, f"Your fallback's first draft was sent back ({steps - 1} revision(s)), and each revision "
           "asks the dead service first: make the first draft from every research point, so it is approved at once.")
    return (f"the writer's model failed once ({3 * dead} requests, the SDK's retries), then "
            f"{writer.answered_by} wrote a draft with no model, approved at once; "
            f"{transport.model.calls} requests in all")


def check_breaker(validator: Any, max_failures: int = 2) -> str:
    """05.2: the validator's service is down; the validator is retried, but its circuit opens after 2 failures."""
    expect(isinstance(validator, Resilient), "Pass your wrapped validator: Resilient(ValidatorAgent(...), "
           "[policies], breaker=CircuitBreaker(...)).")
    expect(callable(getattr(validator.agent, "review", None)), "Wrap the validator (a ValidatorAgent), not "
           f"{validator.name}.")
    expect(validator.breaker is not None, f"Your validator has no circuit breaker: add "
           f"breaker=CircuitBreaker(max_failures={max_failures}) to Resilient.")
    # the learner's breaker is open after their own run: a fresh one with the same settings
    breaker = CircuitBreaker(validator.breaker.max_failures, reset_after=validator.breaker.reset_after)
    _, client = offline_client([Fault("server_error", role="validator", times=None)])
    wrapped, log = Resilient(ValidatorAgent(client=client), validator.policies, breaker=breaker), CallLog()
    with call_hook(log):
        result, saved = run_pipeline(client, TOPIC, validator=wrapped)
    sent = len(log.of("validator"))
    expect(result.status != "agent_failed", f"The run stopped as 'agent_failed' after {sent} validator "
           "request(s): your policies gave up before the breaker refused a call. Retry more times than "
           "max_failures (e.g. Retry(5)), so that the open circuit is what stops the run.")
    expect(result.status == "circuit_open", f"The run ended as {result.status!r} ({result.reason}); with the "
           "validator's service down it should stop as 'circuit_open'.")
    expect(breaker.max_failures == max_failures, f"The circuit opened after {breaker.max_failures} failed calls; "
           f"make it open after {max_failures}: CircuitBreaker(max_failures={max_failures}).")
    expect(sent == max_failures, f"The validator's service got {sent} requests, not {max_failures}: once the "
           "circuit is open nothing should reach it (a Fallback to another validator would call it again).")
    expect("validation_1" not in saved, "A verdict was saved for a review that never happened.")
    return f"{sent} failed calls opened the circuit; the run stopped as circuit_open with no verdict saved"


def _researched(researcher: Any) -> tuple[CallLog, str]:
    """Run a ParallelResearcher on a topic the offline model has notes on, counting calls in flight."""
    researcher.reset()  # each angle's agent starts a fresh conversation, whatever the learner ran before
    log = CallLog()
    try:
        with call_hook(log):
            notes = researcher.run(research_task(TOPIC, "engineers"))
    except RunStopped as err:  # too few angles answered: say why, as a hint
        raise NotYet(f"The research stopped: {str(err).splitlines()[0]}") from None
    return log, notes


def check_fourth_angle(researcher: Any, angle: str = "costs") -> str:
    """06.1: a fourth angle, all four researched at once (max_concurrency=4), and it adds points of its own.

    What it checks holds against any model: four calls, all in flight at once, and a merged research with
    more points than the other three angles' merged on their own (the new angle asked for other facts)."""
    expect(isinstance(researcher, ParallelResearcher), "Pass your ParallelResearcher (from mas.parallel).")
    expect(angle in researcher.angles, f"Add the angle {angle!r}: ParallelResearcher([*ANGLES, {angle!r}], ...).")
    expect(len(researcher.angles) == 4, f"Your researcher has {len(researcher.angles)} angle(s): keep the notebook's "
           f"three and add {angle!r}, four in all.")
    log, notes = _researched(researcher)
    expect(not researcher.errors, f"An angle failed: {researcher.errors[0] if researcher.errors else ''}")
    expect(len(log.calls) == 4, f"Your researcher made {len(log.calls)} calls for 4 angles: one call per angle.")
    expect(log.most == 4, f"At most {log.most} calls were in flight at once: max_concurrency="
           f"{researcher.max_concurrency} keeps the others waiting. Set max_concurrency=4, so all four go at once.")
    expect(not is_no_research(notes), f"No angle found anything on {TOPIC!r}: {notes.splitlines()[0]}")
    replies = {a: agent.history[-1]["content"] for a, agent in zip(researcher.angles, researcher.agents)}
    others = merge_bullets(text for a, text in replies.items() if a != angle and not is_no_research(text))
    merged = bullets(notes)
    expect(len(merged) > len(others), f"The research has {len(merged)} points, no more than the other three angles' "
           f"{len(others)}: the {angle!r} angle brought nothing new. Does your researcher's system prompt name a "
           "focus of its own? It would override every angle: keep the default system prompt.")
    return (f"4 angles, 4 calls in flight at once; {angle!r} added {len(merged) - len(others)} point(s) of its own: "
            f"{len(merged)} in all, against {len(others)} from the other three")


def _is_offline_client(researcher: ParallelResearcher) -> bool:
    """Whether the researcher's agents talk to the offline model in process (its placeholder base URL)."""
    from mas.client import OFFLINE_BASE_URL

    return all(str(agent.async_client.base_url).startswith(OFFLINE_BASE_URL) for agent in researcher.agents)


def check_one_slot(researcher: Any, latencies: float) -> str:
    """06.2: with max_concurrency=1 the three angles run one after another, so their waits add up.

    What it checks holds against any model: never more than one call in flight, and the whole research as long
    as its calls' own times added up. The learner's figure (elapsed / LATENCY) is compared with 3 only on the
    offline model, whose every reply takes LATENCY; a live model's replies take their own time."""
    expect(isinstance(researcher, ParallelResearcher), "Pass your ParallelResearcher (from mas.parallel).")
    expect(researcher.max_concurrency == 1, f"Your researcher has max_concurrency={researcher.max_concurrency}; "
           "set it to 1: one slot.")
    expect(len(researcher.angles) == 3, f"Use the notebook's three angles (ANGLES), not {len(researcher.angles)}.")
    expect(isinstance(latencies, (int, float)) and not isinstance(latencies, bool),
           "Pass the time you measured, in latencies: round(elapsed / LATENCY).")
    durations: list[float] = []

    def timed(agent: Any, request: dict) -> Any:
        start = time.perf_counter()
        return lambda message, error: durations.append(time.perf_counter() - start)

    start = time.perf_counter()
    with call_hook(timed):
        log, _ = _researched(researcher)
    elapsed = time.perf_counter() - start
    expect(log.most == 1, f"{log.most} calls were in flight at once; with one slot there should never be more than 1.")
    expect(elapsed >= 0.9 * sum(durations), f"The research took {elapsed:.2f} s, less than its calls' "
           f"{sum(durations):.2f} s added up: some calls overlapped.")
    if not _is_offline_client(researcher):
        return (f"one call at a time: the three waits add up again, as in the plain loop (live model: here its "
                f"{len(durations)} calls took {sum(durations):.1f} s in all, one after another; your figure, "
                f"{latencies:g}, counts the offline model's simulated latencies, so it is not checked)")
    expect(round(latencies) == 3, f"You measured about {latencies:g} latencies (elapsed / LATENCY). With one slot "
           "each angle waits for the one before it to get its reply, so the waits add up: expect one latency per "
           "angle. Time the whole `run(...)` call.")
    return "one call at a time: the three waits add up again, as in the plain loop"


def check_costliest_agent(tracer: Any, agent: str, share: float) -> str:
    """07.1: the agent whose calls cost the most in all, and its share of the run's cost."""
    totals: dict[str, float] = {}
    for span in tracer.spans:
        expect(span.cost is not None, f"Call {span.index} ({span.model}) has no price: trace a run on a priced model.")
        totals[span.agent] = totals.get(span.agent, 0.0) + span.cost
    expect(bool(totals), "The tracer has no calls: pass the tracer of the traced run.")
    expect(agent in totals, f"No agent named {agent!r} in the trace; its agents are {', '.join(totals)}.")
    top = max(totals, key=totals.get)
    expect(agent == top, f"{agent} cost ${totals[agent]:.4f} in all, but another agent cost more: add up each "
           "agent's calls (tracer.by('agent')[name].cost) and take the largest.")
    run_cost = sum(totals.values())
    expect(isinstance(share, (int, float)) and 0 <= share <= 1, f"Give the share as a fraction of 1 (like 0.25), "
           f"not {share!r}.")
    right = totals[agent] / run_cost
    if not math.isclose(share, right, abs_tol=0.005):
        single = max(s.cost for s in tracer.spans if s.agent == agent)
        expect(not math.isclose(share, single / run_cost, abs_tol=0.005), f"{share:.0%} is the share of {agent}'s "
               "most expensive call; the exercise asks for all of its calls together.")
        raise NotYet(f"{share:.0%} is not {agent}'s share: divide its cost by the whole run's "
                     "(tracer.summary().cost).")
    return f"{agent} cost ${totals[agent]:.4f} over its calls, {right:.0%} of the run"


def check_tracer_price(tracer: Any, model: str = "claude-haiku-5-5", input: float = 0.10,
                       output: float = 0.50) -> str:
    """07.2: a price for an unpriced model, on one tracer only, and the cost it gives."""
    spans = [s for s in tracer.spans if s.model == model]
    expect(bool(spans), f"This tracer has no call on {model}: pass the tracer that traced it (haiku_tracer).")
    rates = f"price(input={input:.2f}, output={output:.2f})"
    expect(tracer.summary().cost is not None, f"The trace's cost is still unknown: give {model} its price on this "
           f"tracer and recompute, tracer.reprice({{{model!r}: {rates}}}).")
    for s in spans:
        by_hand = cost(model, s, {model: price(input, output)})
        expect(math.isclose(s.cost, by_hand), f"Call {s.index} costs ${s.cost:.6f}; at ${input:.2f} per million input "
               f"tokens and ${output:.2f} per million output tokens it is ${by_hand:.6f}. Check the rates, in dollars "
               f"per million tokens, and their order: {rates}.")
    expect(model not in PRICES, f"The cost is right, but {model} now has a price for everyone (in "
           f"mas.pricing.PRICES, e.g. from set_price): the exercise asks for this tracer only, with "
           f"tracer.reprice(...). Undo the other with `del PRICES[{model!r}]`.")
    return f"{model} priced on this tracer only: ${tracer.summary().cost:.6f}, as by hand"


CHECKS: dict[str, Callable[..., str]] = {
    "05.1": check_fallback,
    "05.2": check_breaker,
    "06.1": check_fourth_angle,
    "06.2": check_one_slot,
    "07.1": check_costliest_agent,
    "07.2": check_tracer_price,
}
