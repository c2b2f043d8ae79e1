"""Tracing and cost: a span per call for every agent, tokens and cost against hand-computed
figures, unknown prices, failed calls, async concurrency, JSONL round trips, no key in exports."""

from __future__ import annotations

import asyncio
import json

import anthropic
import httpx2
import pytest

from mas import pricing
from mas.agents import BaseAgent, ResearcherAgent, ValidatorAgent, WriterAgent
from mas.client import OFFLINE_BASE_URL, make_client
from mas.offline import Fault, Latency, OfflineTransport, ScriptedTransport, text_message
from mas.orchestrator import Orchestrator
from mas.pricing import PRICES, cost, price, set_price, uncached_cost
from mas.prompts import SYSTEM_PROMPTS
from mas.settings import DEFAULT_MODEL
from mas.tracing import TEXT_LIMIT, Span, Timeline, Tracer, _cut, load_jsonl, step

TOPIC = "How vector databases enable semantic search"
AGENTS = ["Researcher", "Writer", "Validator", "Writer", "Validator"]
STEPS = ["research", "write", "validate", "revise", "validate"]


def orchestrator(memory, transport=None, model="claude-opus-4-6", **kw):
    client = make_client(transport=transport or OfflineTransport(), max_retries=0)
    return Orchestrator(memory, client=client, model=model, progress=None, **kw)


def scripted_reply(text, inp, out, write=0, read=0, model="claude-sonnet-4-6"):
    msg = text_message(text, model=model, input_tokens=inp, output_tokens=out)
    msg["usage"].update(cache_creation_input_tokens=write, cache_read_input_tokens=read)
    return msg


def test_a_full_run_gives_one_span_per_call_in_order_with_the_runs_tokens(memory):
    with Tracer() as tracer:
        result = orchestrator(memory).run(TOPIC, run_id="r")
    spans = tracer.spans
    assert result.approved and result.usage.calls == len(spans) == 5
    assert [s.agent for s in spans] == AGENTS and [s.step for s in spans] == STEPS
    assert [s.role for s in spans] == ["researcher", "writer", "validator", "writer", "validator"]
    assert [s.index for s in spans] == [1, 2, 3, 4, 5]
    assert all(s.model == "claude-opus-4-6" and s.stop_reason == "end_turn" and s.error is None for s in spans)
    for name in ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
        assert sum(getattr(s, name) for s in spans) == getattr(result.usage, name)
    summary = tracer.summary()
    assert (summary.calls, summary.input_tokens, summary.output_tokens) == (
        5, result.usage.input_tokens, result.usage.output_tokens)
    # Opus 4.6: $5 in, $25 out per million tokens, and no caching here
    assert summary.cost == pytest.approx((result.usage.input_tokens * 5 + result.usage.output_tokens * 25) / 1e6)
    assert spans[0].start < spans[1].start and all(s.latency > 0 for s in spans)
    assert "<topic>" in spans[0].prompt and spans[3].reply == _cut(result.report, TEXT_LIMIT)
    by_agent = tracer.by("agent")
    assert list(by_agent) == ["Researcher", "Writer", "Validator"]
    assert [g.calls for g in by_agent.values()] == [1, 2, 2]
    assert [g.calls for g in tracer.by("step").values()] == [1, 1, 2, 1]


def test_cost_of_a_call_equals_the_hand_computed_figure():
    transport = ScriptedTransport([scripted_reply("first", 1000, 200, write=4000),
                                   scripted_reply("second", 1000, 200, read=4000)])
    agent = WriterAgent(client=make_client(transport=transport), model="claude-sonnet-4-6")
    with Tracer() as tracer:
        agent.run("one")
        agent.run("two")
    first, second = tracer.spans
    # Sonnet 4.6: $3 input, $15 output, $3.75 cache write, $0.30 cache read per million tokens
    assert first.cost == pytest.approx((1000 * 3 + 200 * 15 + 4000 * 3.75) / 1e6) == pytest.approx(0.021)
    assert second.cost == pytest.approx((1000 * 3 + 200 * 15 + 4000 * 0.30) / 1e6) == pytest.approx(0.0072)
    assert uncached_cost("claude-sonnet-4-6", second) == pytest.approx(0.018)
    summary = tracer.summary()
    assert summary.cost == pytest.approx(0.0282) and summary.uncached_cost == pytest.approx(0.036)
    assert "cost: $0.0282 (without prompt caching: $0.0360)" in str(summary)


def test_a_model_without_a_price_has_unknown_cost_never_a_guess(memory):
    orch = orchestrator(memory, model="claude-house-blend")
    with Tracer() as tracer:
        orch.run(TOPIC, run_id="r")
    assert len(tracer) == 5 and all(s.cost is None for s in tracer.spans)
    summary = tracer.summary()
    assert summary.cost is None and summary.unpriced == ("claude-house-blend",)
    assert "cost: unknown (no price for claude-house-blend; add one with mas.pricing.set_price)" in str(summary)
    assert "unknown" in tracer.table() and "$" not in tracer.table(by="agent")
    assert cost("claude-house-blend", {"input_tokens": 1}) is None


def test_a_price_override_or_set_price_gives_the_cost(monkeypatch, memory):
    orch = orchestrator(memory, model="claude-house-blend")
    with Tracer(prices={"claude-house-blend": price(input=2, output=8)}) as tracer:
        result = orch.run(TOPIC, run_id="r")
    expected = (result.usage.input_tokens * 2 + result.usage.output_tokens * 8) / 1e6
    assert tracer.summary().cost == pytest.approx(expected)
    unpriced = Tracer.from_jsonl(tracer.to_jsonl(memory.path.parent / "t.jsonl"))
    unpriced.reprice()  # the shared table has no price for it
    assert unpriced.summary().cost is None
    monkeypatch.setitem(PRICES, "claude-house-blend", PRICES["claude-opus-4-6"])  # restored after the test
    set_price("claude-house-blend", input=1, output=4)
    assert unpriced.reprice().summary().cost == pytest.approx(expected / 2)


def test_a_failed_call_is_a_span_with_its_error_kind(memory):
    transport = OfflineTransport(faults=[Fault("overloaded", call=2)])
    with Tracer() as tracer:
        result = orchestrator(memory, transport).run(TOPIC, run_id="r")
    assert result.status == "failed" and transport.model.calls == 2
    ok, failed = tracer.spans
    assert (ok.agent, ok.error) == ("Researcher", None)
    assert (failed.agent, failed.step, failed.error, failed.stop_reason) == (
        "Writer", "write", "overloaded", None)
    assert failed.error_message.startswith("Error code: 529") and "overloaded on call 2" in failed.error_message
    assert (failed.input_tokens, failed.output_tokens, failed.cost, failed.reply) == (0, 0, 0.0, "")
    assert tracer.summary().errors == 1 and "overloaded" in tracer.table()
    assert "x overloaded" in str(tracer.timeline())


def test_a_timeout_is_recorded_as_timeout():
    agent = ResearcherAgent(client=make_client(transport=OfflineTransport(faults="timeout@1"), max_retries=0))
    with Tracer() as tracer, pytest.raises(anthropic.APITimeoutError):
        agent.run("<topic>x</topic>")
    assert [s.error for s in tracer.spans] == ["timeout"]


def test_concurrent_async_calls_are_all_recorded_and_overlap():
    client = make_client(asynchronous=True, transport=OfflineTransport(latency=Latency(base=0.2)))
    agents = [ResearcherAgent(async_client=client, name=f"Researcher {i}") for i in range(5)]

    async def fan_out():
        with step("angles"):
            return await asyncio.gather(*(a.arun(f"<topic>angle {i} of vector search</topic>")
                                          for i, a in enumerate(agents)))

    with Tracer() as tracer:
        replies = asyncio.run(fan_out())
    spans = tracer.spans
    assert len(replies) == len(spans) == 5 and {s.agent for s in spans} == {a.name for a in agents}
    assert sorted(s.index for s in spans) == [1, 2, 3, 4, 5] and {s.step for s in spans} == {"angles"}
    summary = tracer.summary()
    assert summary.output_tokens == sum(a.usage.output_tokens for a in agents)
    # wall time is first start to last end; model time adds the calls up (overlap makes them differ)
    assert summary.wall_time == pytest.approx(max(s.end for s in spans) - min(s.start for s in spans))
    assert summary.model_time == pytest.approx(sum(s.latency for s in spans))
    assert all(s.start < t.end and t.start < s.end for s in spans for t in spans)  # every pair overlapped


def test_a_jsonl_export_reads_back_span_for_span(tmp_path, memory):
    with Tracer() as tracer:
        orchestrator(memory).run(TOPIC, run_id="r")
    path = tracer.to_jsonl(tmp_path / "trace" / "run.jsonl")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 5 and json.loads(lines[1])["agent"] == "Writer"
    assert load_jsonl(path) == tracer.spans
    loaded = Tracer.from_jsonl(path)
    assert loaded.summary() == tracer.summary() and loaded.table(by="step") == tracer.table(by="step")
    path.write_text(lines[0] + "\n" + '{"agent": "x", "colour": 1}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 2: not a span"):
        load_jsonl(path)


def test_the_api_key_never_reaches_a_span_or_an_export(tmp_path, monkeypatch):
    secret = "sk-ant-api03-" + "S3CRET" * 8
    monkeypatch.setenv("ANTHROPIC_API_KEY", secret)
    seen = []

    class Recording(OfflineTransport):
        def handle_request(self, request):
            seen.append(" ".join(request.headers.get(h, "") for h in ("x-api-key", "authorization")))
            return super().handle_request(request)

    # a real SDK client holding the key, as a live one would; only the transport is local
    client = anthropic.Anthropic(api_key=secret, base_url=OFFLINE_BASE_URL, max_retries=0,
                                 http_client=httpx2.Client(transport=Recording()))
    agent = ResearcherAgent(client=client)
    with Tracer(text_limit=None) as tracer:
        agent.run("<topic>vector databases</topic> (my env has ANTHROPIC_API_KEY set)")
    assert len(seen) == 1 and secret in seen[0]  # the key was sent, in a header the hook never sees
    text = tracer.to_jsonl(tmp_path / "t.jsonl").read_text(encoding="utf-8")
    assert secret not in text and secret not in repr(tracer.spans) and secret not in tracer.table()


def test_a_tracer_records_only_inside_its_with_and_tracers_nest():
    transport = ScriptedTransport(["a", "b", "c"])
    agent = BaseAgent("researcher", client=make_client(transport=transport), name="R")
    outer, inner = Tracer(), Tracer()
    agent.run("before")
    with outer:
        with inner:
            agent.run("inside both")
        agent.run("outer only")
    assert [s.prompt for s in outer.spans] == ["inside both", "outer only"]
    assert [s.prompt for s in inner.spans] == ["inside both"] and [s.step for s in inner.spans] == [None]
    with pytest.raises(RuntimeError, match="already active"), outer, outer:
        pass


def test_prompt_caching_shows_in_the_spans_and_saves_on_reads():
    transport = OfflineTransport(min_cache_tokens=50)
    client = make_client(transport=transport)
    assert len(SYSTEM_PROMPTS["validator"]) // 4 >= 50
    agents = [ValidatorAgent(client=client, cache_system_prompt=True) for _ in range(2)]
    with Tracer() as tracer:
        for agent in agents:
            agent.run("<research>- a</research><draft>a</draft>")
    write, read = tracer.spans
    cached = write.cache_creation_input_tokens
    assert cached > 0 and read.cache_read_input_tokens == cached and write.cache_read_input_tokens == 0
    # a write costs 0.25x the input rate more than no caching; a read saves 0.9x of it
    assert write.cost - uncached_cost(write.model, write) == pytest.approx(cached * (6.25 - 5) / 1e6)
    assert uncached_cost(read.model, read) - read.cost == pytest.approx(cached * (5 - 0.5) / 1e6)


def test_timeline_text_and_svg_cut_times_to_whole_ticks():
    spans = [Span(1, "Researcher", "researcher", "m", "research", start=0.001, latency=0.203),
             Span(2, "Writer", "writer", "m", "write", start=0.205, latency=0.31, error="overloaded_error"),
             Span(3, "Validator", "validator", "m", "validate", start=0.52, latency=0.01)]
    assert str(Timeline(spans, tick=0.1)) == "\n".join([
        "#  agent       step      0s        1s",
        "1  Researcher  research  ##",
        "2  Writer      write       xxx overloaded_error",
        "3  Validator   validate       #",
        "one character = 0.1s; x = failed call"])
    assert str(Timeline(spans, tick=0.1)).isascii()  # one column a character in any code font: the bars align
    svg = Timeline(spans, tick=0.1)._repr_html_()
    assert svg.count("<rect") == 3 and 'fill="#D62728"' in svg and svg.startswith("<svg")
    assert Timeline(spans).tick == 0.01  # 0.53 s in 60 characters: the next 1-2-5 step up
    with pytest.raises(ValueError, match="tick must be > 0"):
        Timeline(spans, tick=0)


def test_a_total_is_the_sum_of_the_call_times_its_rows_show():
    # five calls of 0.4 s and a few milliseconds each: each row shows 0.4, and so the total shows 2.0, not
    # 2.1 because 5 x 25 ms of overhead crossed a tenth; the exact sum stays in model_time
    spans = [Span(i, "Writer", "writer", "m", "write", start=0.43 * i, latency=0.425) for i in range(1, 6)]
    tracer = Tracer()
    tracer._spans = spans
    summary = tracer.summary()
    assert summary.model_time == pytest.approx(2.125) and summary.model_time_shown == 2.0
    assert "time: 2.0 s in calls, 2.1 s from first call to last" in str(summary)
    rows = tracer.table().splitlines()[1:]
    assert [row.split()[-1] for row in rows] == ["0.4"] * 5
    assert tracer.table(by="agent").splitlines()[-1].split()[-1] == "2.0"


def test_the_price_table_prices_the_default_model_and_prices_cache_as_the_api_does():
    # no literal of one SDK release: models leave the SDK's list while the API still prices them
    assert DEFAULT_MODEL in PRICES and all(model.startswith("claude-") for model in PRICES)
    for model, rate in PRICES.items():
        assert rate.cache_write == pytest.approx(rate.input * 1.25), model
        assert rate.cache_read <= rate.input * 0.1 + 1e-12, model
    with pytest.raises(ValueError, match=">= 0"):
        price(-1, 5)
    with pytest.raises(ValueError, match="needs a model"):
        set_price("", input=1, output=1)
    with pytest.raises(ValueError, match="group by"):
        Tracer().by("colour")
    assert pricing.tokens_of(anthropic.types.Usage(input_tokens=3, output_tokens=4)) == (3, 4, 0, 0)


def test_a_validators_re_ask_is_its_own_step(memory):
    transport = OfflineTransport(faults="fenced_json@validator")
    with Tracer() as tracer:
        result = orchestrator(memory, transport).run(TOPIC, run_id="r")
    assert result.approved and len(tracer) == 6
    assert [s.step for s in tracer.spans] == ["research", "write", "validate", "re-ask", "revise", "validate"]
    assert tracer.spans[2].reply.startswith("```json") and tracer.by("step")["re-ask"].calls == 1


def test_the_same_budget_or_tracer_cannot_be_entered_twice():
    from mas.budget import Budget

    budget, tracer = Budget(max_calls=3), Tracer()
    with budget, pytest.raises(RuntimeError, match="already active"):
        with budget:
            pass
    with tracer, pytest.raises(RuntimeError, match="already active"):
        with tracer:
            pass
