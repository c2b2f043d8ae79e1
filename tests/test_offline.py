"""The offline model through the real SDK: create, stream, parse, count_tokens, tools, faults, retries."""

from __future__ import annotations

import asyncio
import json

import anthropic
import httpx2
import pytest
from pydantic import BaseModel

from mas.client import make_client, text_of
from mas.offline import Fault, FaultPlan, Latency, OfflineModel, OfflineTransport, ScriptedTransport, error
from mas.offline.instructions import read
from mas.offline.roles import detect_role
from mas.offline.tokens import count_request
from mas.offline.validator import check_draft
from mas.offline.writer import first_draft_flaws

MODEL = "claude-opus-4-6"
RESEARCHER = "You are a researcher. Gather key facts and angles as concise bullet points."
WRITER = "You are a technical writer. Turn research into a clear markdown draft; add no facts."
VALIDATOR = 'You are a validator. Answer with exactly {"issues": [...], "approved": true|false}.'
TOPIC = "How vector databases enable semantic search"


def ask(client, system, content, **kw):
    kw.setdefault("max_tokens", 2048)
    return client.messages.create(model=MODEL, system=system, messages=[{"role": "user", "content": content}], **kw)


def pipeline(client):
    research = text_of(ask(client, RESEARCHER, f"<topic>{TOPIC}</topic>"))
    draft = text_of(ask(client, WRITER, f"<topic>{TOPIC}</topic><research>{research}</research>"))
    verdict = json.loads(text_of(ask(client, VALIDATOR, f"<research>{research}</research><draft>{draft}</draft>")))
    revised = text_of(ask(client, WRITER, f"<research>{research}</research><draft>{draft}</draft>"
                                          f"<issues>{verdict['issues']}</issues>"))
    verdict2 = json.loads(text_of(ask(client, VALIDATOR, f"<research>{research}</research><draft>{revised}</draft>")))
    return research, draft, verdict, revised, verdict2


# ---------------------------------------------------------------- roles


def test_roles_are_recognised_by_the_first_role_word():
    assert detect_role(RESEARCHER) == "researcher"
    assert detect_role(WRITER) == "writer"
    assert detect_role("You are a validator. You check a writer's draft against the researcher's notes.") == "validator"
    assert detect_role("You are a helpful assistant.") is None


def test_the_pipeline_offline_first_draft_flawed_then_fixed():
    research, draft, verdict, revised, verdict2 = pipeline(make_client())
    bullets = [line[2:] for line in research.splitlines() if line.startswith("- ")]
    assert len(bullets) >= 5 and all(len(b) > 30 for b in bullets)
    flaws = first_draft_flaws(TOPIC, bullets, read(WRITER, ""))
    assert draft.startswith("# ") and len(flaws) == 2
    assert verdict["approved"] is False and len(verdict["issues"]) == len(flaws)
    expected = {"omit": "Missing point", "myth": "Unsupported claim", "number": "Number contradicts",
                "unclear": "Unclear section"}
    assert sorted(expected[kind] for kind, _ in flaws) == sorted(i.split(":")[0].split(" from")[0].strip()
                                                                  .replace("Number contradicts the research",
                                                                           "Number contradicts")
                                                                  for i in verdict["issues"])
    assert all(b.split(" (source:")[0] in revised for b in bullets)
    assert verdict2 == {"issues": [], "approved": True}


def test_the_validator_really_checks_the_draft():
    research = "- Redis keeps its data in memory for low latency.\n- Redis can persist snapshots to disk."
    good = "# Redis\n\nRedis keeps its data in memory for low latency. Redis can persist snapshots to disk."
    assert check_draft(good, research) == []
    invented = good + " Redis was invented on the moon by astronauts in 1802."
    assert [i for i in check_draft(invented, research) if "moon" in i]
    missing = "# Redis\n\nRedis keeps its data in memory for low latency."
    assert check_draft(missing, research) == ["Missing point from the research: Redis can persist snapshots to disk."]
    assert check_draft("", research) == ["The draft is empty."]


def test_an_unknown_topic_gets_one_honest_line_naming_the_nearest_notes():
    client = make_client()
    research = text_of(ask(client, RESEARCHER, "<topic>Sourdough baking</topic>"))
    assert research.startswith('No research: I have no notes on "Sourdough baking".') and "\n" not in research
    near = text_of(ask(client, RESEARCHER, "<topic>Consensus in blockchains</topic>"))
    assert "nearest topics I have notes on: How distributed consensus works" in near or not near.startswith("No")


def test_other_prompts_follow_what_they_can_of_the_instructions():
    client = make_client()
    plain = text_of(ask(client, "Be brief.", "Tell me about turtles"))
    assert plain and plain == text_of(ask(client, "Be brief.", "Tell me about turtles"))
    bullets = text_of(ask(client, "Answer as a bulleted list.", "Name things about turtles and shells"))
    assert all(line.startswith("- ") for line in bullets.splitlines())
    shaped = json.loads(text_of(ask(client, 'Reply in JSON: {"answer": ..., "score": ...}', "Rate turtles")))
    assert set(shaped) == {"answer", "score"}


# ---------------------------------------------------------------- wire format


def test_determinism_byte_for_byte_ids_included():
    raw = []
    for _ in range(2):
        client = make_client()  # a fresh model each time: nothing shared
        resp = client.messages.with_raw_response.create(model=MODEL, max_tokens=500, system=WRITER, messages=[
            {"role": "user", "content": "<research>- A point about caching.\n- Another about latency.</research>"}])
        raw.append(resp.http_response.content)
    assert raw[0] == raw[1]
    assert json.loads(raw[0])["id"].startswith("msg_")


def test_usage_matches_count_tokens():
    client = make_client()
    kwargs = dict(model=MODEL, system=RESEARCHER, messages=[{"role": "user", "content": f"<topic>{TOPIC}</topic>"}])
    counted = client.messages.count_tokens(**kwargs).input_tokens
    reply = client.messages.create(max_tokens=1000, **kwargs)
    assert reply.usage.input_tokens == counted > 10
    assert reply.usage.output_tokens == (len(text_of(reply)) + 3) // 4


def test_streaming_gives_the_same_message_as_create():
    client = make_client()
    kwargs = dict(model=MODEL, max_tokens=2048, system=RESEARCHER,
                  messages=[{"role": "user", "content": f"<topic>{TOPIC}</topic>"}])
    whole = client.messages.create(**kwargs)
    with client.messages.stream(**kwargs) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 10 and "".join(pieces) == text_of(whole)
    assert final.model_dump(exclude={"id"}) == whole.model_dump(exclude={"id"})  # ids hash the body (stream differs)


def test_raw_stream_events_are_in_the_apis_order():
    client = make_client()
    events = [e.type for e in client.messages.create(model=MODEL, max_tokens=50, stream=True,
                                                     messages=[{"role": "user", "content": "hi"}])]
    assert events[0] == "message_start" and events[1] == "content_block_start"
    assert events[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(events[2:-3]) == {"content_block_delta"}


def test_max_tokens_truncates_with_the_stop_reason():
    reply = ask(make_client(), RESEARCHER, f"<topic>{TOPIC}</topic>", max_tokens=20)
    assert reply.stop_reason == "max_tokens"
    assert reply.usage.output_tokens == 20 and len(text_of(reply)) == 80


def test_unknown_paths_and_bad_requests_get_the_apis_error_shape():
    client = make_client(max_retries=0)
    with pytest.raises(anthropic.NotFoundError) as info:
        client.get("/v1/nothing-here", cast_to=object)
    assert info.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError, match="messages"):
        client.messages.create(model=MODEL, max_tokens=10, messages=[])


# ---------------------------------------------------------------- structured outputs and tools


class Review(BaseModel):
    issues: list[str]
    approved: bool
    confidence: float


class Notes(BaseModel):
    topic: str
    points: list[str]


def test_parse_fills_the_schema_from_the_roles_answer():
    client = make_client()
    research = text_of(ask(client, RESEARCHER, f"<topic>{TOPIC}</topic>"))
    bad = f"<research>{research}</research><draft># Draft\n\nOnly one sentence about nothing useful here.</draft>"
    parsed = client.messages.parse(model=MODEL, max_tokens=2000, system=VALIDATOR, output_format=Review,
                                   messages=[{"role": "user", "content": bad}]).parsed_output
    assert isinstance(parsed, Review) and parsed.approved is False and len(parsed.issues) >= 5
    notes = client.messages.parse(model=MODEL, max_tokens=2000, system=RESEARCHER, output_format=Notes,
                                  messages=[{"role": "user", "content": f"<topic>{TOPIC}</topic>"}]).parsed_output
    assert notes.topic == TOPIC and len(notes.points) == 10 and notes.points[0].startswith("A vector database stores")


def test_tool_use_then_tool_result():
    client = make_client()
    tools = [{"name": "get_weather", "description": "Weather for a city",
              "input_schema": {"type": "object", "properties": {"city": {"type": "string"},
                                                                "unit": {"enum": ["celsius", "fahrenheit"]}},
                               "required": ["city", "unit"]}}]
    first = client.messages.create(model=MODEL, max_tokens=200, tools=tools,
                                   tool_choice={"type": "tool", "name": "get_weather"},
                                   messages=[{"role": "user", "content": "Weather in Paris?"}])
    assert first.stop_reason == "tool_use"
    call = next(b for b in first.content if b.type == "tool_use")
    assert call.name == "get_weather" and set(call.input) == {"city", "unit"} and call.input["unit"] == "celsius"
    second = client.messages.create(model=MODEL, max_tokens=200, tools=tools, messages=[
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18 C and sunny"}]}])
    assert second.stop_reason == "end_turn" and "18 C and sunny" in text_of(second)


# ---------------------------------------------------------------- caching, latency, async


def test_prompt_caching_writes_then_reads_a_long_enough_prefix():
    client = make_client(min_cache_tokens=100)
    system = [{"type": "text", "text": RESEARCHER + " Context. " * 100, "cache_control": {"type": "ephemeral"}}]
    kwargs = dict(model=MODEL, max_tokens=300, system=system)
    first = client.messages.create(messages=[{"role": "user", "content": "<topic>A</topic>"}], **kwargs)
    second = client.messages.create(messages=[{"role": "user", "content": "<topic>B</topic>"}], **kwargs)
    prefix = (len(system[0]["text"]) + 3) // 4
    assert first.usage.cache_creation_input_tokens == prefix and first.usage.cache_read_input_tokens == 0
    assert second.usage.cache_read_input_tokens == prefix and second.usage.cache_creation_input_tokens == 0
    total = client.messages.count_tokens(model=MODEL, system=system, messages=[{"role": "user", "content": "<topic>B</topic>"}])
    assert second.usage.input_tokens + prefix == total.input_tokens
    short = make_client().messages.create(messages=[{"role": "user", "content": "x"}], model=MODEL, max_tokens=5,
                                          system=[{"type": "text", "text": "short", "cache_control": {"type": "ephemeral"}}])
    assert short.usage.cache_creation_input_tokens == 0  # below the minimum: not cached, as the API does


def test_async_calls_overlap_under_simulated_latency():
    class Counting(OfflineTransport):
        """Counts the requests in flight: with a blocking sleep there would never be more than one."""

        in_flight = peak = 0

        async def handle_async_request(self, request):
            Counting.in_flight += 1
            Counting.peak = max(Counting.peak, Counting.in_flight)
            try:
                return await super().handle_async_request(request)
            finally:
                Counting.in_flight -= 1

    client = make_client(asynchronous=True, transport=Counting(latency=Latency(base=0.05)))

    async def run():
        return await asyncio.gather(*[client.messages.create(model=MODEL, max_tokens=20, messages=[
            {"role": "user", "content": f"question {i}"}]) for i in range(5)])

    replies = asyncio.run(run())
    assert len({r.id for r in replies}) == 5
    assert Counting.peak == 5  # all five waited on their latency at once


def test_latency_is_base_plus_per_output_token():
    assert Latency(base=0.5, per_token=0.01).of(100) == pytest.approx(1.5)


def test_async_stream():
    client = make_client(asynchronous=True)

    async def run():
        async with client.messages.stream(model=MODEL, max_tokens=2000, system=RESEARCHER,
                                          messages=[{"role": "user", "content": f"<topic>{TOPIC}</topic>"}]) as s:
            text = "".join([t async for t in s.text_stream])
            return text, await s.get_final_message()

    text, final = asyncio.run(run())
    assert text == text_of(final) and text.startswith("## Research")


def test_one_offline_transport_serves_sync_and_async_clients_with_one_model():
    transport = OfflineTransport(latency=Latency(base=0.01, per_token=0.0001))
    ask = dict(model=MODEL, max_tokens=2000, system=RESEARCHER,
               messages=[{"role": "user", "content": f"<topic>{TOPIC}</topic>"}])

    async def run():
        client = make_client(asynchronous=True, transport=transport)
        async with client.messages.stream(**ask) as s:
            return [t async for t in s.text_stream], (await client.messages.create(**ask)).to_json()

    sync = make_client(transport=transport)
    with sync.messages.stream(**ask) as s:
        pieces = list(s.text_stream)
    assert asyncio.run(run()) == (pieces, sync.messages.create(**ask).to_json())
    assert len(pieces) > 1 and transport.model.calls == 4


# ---------------------------------------------------------------- faults and the SDK's retries


def test_sdk_retries_529_twice_then_succeeds_in_three_attempts():
    transport = OfflineTransport(faults=[Fault("overloaded", call=1), Fault("overloaded", call=2)])
    client = make_client(transport=transport, max_retries=2)
    reply = ask(client, RESEARCHER, f"<topic>{TOPIC}</topic>")
    assert transport.model.calls == 3 and reply.stop_reason == "end_turn"


def test_a_400_is_not_retried():
    transport = OfflineTransport(faults=[Fault("bad_request", call=1)])
    with pytest.raises(anthropic.BadRequestError):
        ask(make_client(transport=transport, max_retries=2), RESEARCHER, "x")
    assert transport.model.calls == 1


@pytest.mark.parametrize("kind, error_class, status", [
    ("rate_limit", anthropic.RateLimitError, 429),
    ("overloaded", anthropic.APIStatusError, 529),
    ("server_error", anthropic.InternalServerError, 500),
])
def test_http_faults_become_the_sdks_errors_after_its_retries(kind, error_class, status):
    transport = OfflineTransport(faults=[Fault(kind, times=None)])
    with pytest.raises(error_class) as info:
        ask(make_client(transport=transport, max_retries=1), RESEARCHER, "x")
    assert info.value.status_code == status and transport.model.calls == 2


def test_timeout_fault_is_the_sdks_timeout_error():
    transport = OfflineTransport(faults=[Fault("timeout", times=None)])
    with pytest.raises(anthropic.APITimeoutError):
        ask(make_client(transport=transport, max_retries=0), RESEARCHER, "x")
    assert transport.model.calls == 1


@pytest.mark.parametrize("kind", ["malformed_json", "fenced_json", "prose_json", "truncate", "refusal", "empty"])
def test_reply_faults_on_the_validator(kind):
    transport = OfflineTransport(faults=[Fault(kind, role="validator")])
    client = make_client(transport=transport)
    task = "<research>- Caches keep hot data close.</research><draft>Caches keep hot data close.</draft>"
    reply = ask(client, VALIDATOR, task)
    text = text_of(reply)
    with pytest.raises(ValueError):
        json.loads(text)
    expected_stop = {"truncate": "max_tokens", "refusal": "refusal"}.get(kind, "end_turn")
    assert reply.stop_reason == expected_stop
    if kind == "fenced_json":
        assert text.startswith("```json") and json.loads(text.strip("`").removeprefix("json"))["approved"] is True
    if kind == "empty":
        assert reply.content == []
    assert json.loads(text_of(ask(client, VALIDATOR, task)))["approved"] is True  # the fault fired once only


def test_faults_target_roles_and_the_env_plan(monkeypatch):
    transport = OfflineTransport(faults=[Fault("refusal", role="writer", times=None)])
    client = make_client(transport=transport)
    assert ask(client, RESEARCHER, "<topic>x</topic>").stop_reason == "end_turn"
    assert ask(client, WRITER, "<research>- a</research>").stop_reason == "refusal"
    assert ask(client, WRITER, "<research>- a</research>").stop_reason == "refusal"
    monkeypatch.setenv("MAS_FAULTS", "overloaded@1")
    assert OfflineModel().faults.faults[0].kind == "overloaded"
    with pytest.raises(ValueError, match="unknown fault kind"):
        FaultPlan.parse("explode@1")


# ---------------------------------------------------------------- the scripted transport


def test_scripted_transport_replays_a_queue_and_records_requests():
    transport = ScriptedTransport(["first", error(529), "second", httpx2.ReadTimeout("slow")])
    client = make_client(transport=transport, max_retries=1)
    assert text_of(ask(client, "sys A", "one")) == "first"
    assert text_of(ask(client, "sys B", "two")) == "second"  # the 529 was retried by the SDK
    with pytest.raises(anthropic.APITimeoutError):
        ask(make_client(transport=transport, max_retries=0), "sys C", "three")
    assert [r["system"] for r in transport.requests] == ["sys A", "sys B", "sys B", "sys C"]
    with pytest.raises(anthropic.BadRequestError, match="no reply left"):
        ask(client, "sys D", "four")


def test_scripted_transport_streams_and_serves_async():
    transport = ScriptedTransport(["streamed text", "async text"])
    with make_client(transport=transport).messages.stream(model=MODEL, max_tokens=50,
                                                          messages=[{"role": "user", "content": "x"}]) as s:
        assert "".join(s.text_stream) == "streamed text"
    reply = asyncio.run(make_client(asynchronous=True, transport=transport).messages.create(
        model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "y"}]))
    assert text_of(reply) == "async text"


def test_count_request_is_the_same_estimate_everywhere():
    body = {"model": MODEL, "system": "abcd" * 10, "messages": [{"role": "user", "content": "efgh" * 5}]}
    assert count_request(body) == 10 + (3 + 5)


@pytest.mark.filterwarnings("ignore:The model 'claude-sonnet-4-5' is deprecated:DeprecationWarning")
def test_the_cacheable_minimum_depends_on_the_model_as_in_the_api():
    system = [{"type": "text", "text": "x" * 4 * 2000, "cache_control": {"type": "ephemeral"}}]  # 2,000 tokens

    def cached(model):
        reply = make_client().messages.create(model=model, max_tokens=5, system=system,
                                              messages=[{"role": "user", "content": "hi"}])
        return reply.usage.cache_creation_input_tokens

    assert cached("claude-opus-4-6") == 0  # its minimum is 4,096 tokens
    assert cached("claude-sonnet-4-5") == 2000  # its minimum is 1,024


def test_every_fault_of_the_plan_makes_a_failure_of_the_one_vocabulary():
    from mas.errors import FAULTS, KINDS
    from mas.offline.faults import HTTP_FAULTS, REPLY_FAULTS
    from mas.offline.faults import KINDS as FAULT_KINDS

    assert set(FAULT_KINDS) == {*HTTP_FAULTS, "timeout", *REPLY_FAULTS} and set(FAULTS.values()) <= set(KINDS)
    with pytest.raises(ValueError, match=r"truncate \(max_tokens\).*fenced_json \(invalid\)"):
        Fault("typo")
