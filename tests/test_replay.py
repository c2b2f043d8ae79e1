"""Record and replay (mas.offline.record, mas.offline.replay, and mas.client's record_client, replay_client and
switches): the offline model stands in for the live one while recording, then the recording alone answers,
through the same SDK transport seam."""

from __future__ import annotations

import asyncio
import gzip
import json

import anthropic
import httpx2
import pytest

from mas.client import make_client, record_client, replay_client, text_of, usage_of
from mas.errors import LiveClientForbidden
from mas.memory import SQLiteMemory
from mas.offline import OfflineTransport, ScriptedTransport, text_message
from mas.offline.record import RecordingTransport, load_recording
from mas.offline.replay import NotInRecording, ReplayTransport
from mas.orchestrator import Orchestrator

MODEL = "claude-opus-4-6"
ASK = dict(model=MODEL, max_tokens=400, system="You are a researcher.",
           messages=[{"role": "user", "content": "<topic>How vector databases enable semantic search</topic>"}])
STREAMED = dict(model=MODEL, max_tokens=300, messages=[{"role": "user", "content": "Explain prompt caching briefly."}])
COUNTED = dict(model=MODEL, messages=[{"role": "user", "content": "How many tokens is this?"}])
TOPIC = "How vector databases enable semantic search"


def session(client: anthropic.Anthropic, db) -> dict:
    """The session recorded and replayed: a create (raw bytes too), a stream, a count, a full run."""
    raw = client.messages.with_raw_response.create(**ASK)
    with client.messages.stream(**STREAMED) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    lines: list[str] = []
    with SQLiteMemory(db) as memory:
        run = Orchestrator(memory=memory, client=client, model=MODEL, progress=lines.append).run(TOPIC, run_id="r1")
    return {"bytes": raw.http_response.content, "message": raw.parse().to_json(), "pieces": pieces,
            "final": final.to_json(), "usage": usage_of(final),
            "count": client.messages.count_tokens(**COUNTED).input_tokens,
            "run": run.model_dump(), "progress": lines}


def test_a_replayed_session_gives_the_recorded_replies_byte_for_byte(tmp_path):
    path = tmp_path / "session.jsonl"
    offline = OfflineTransport()
    recorded = session(record_client(path, offline), tmp_path / "recorded.db")
    lines = load_recording(path)
    # create + stream + the run's 5 calls (research, draft, verdict, revision, verdict) + count_tokens
    assert offline.model.calls == 7 and len(lines) == 8

    replay = ReplayTransport(path)  # no offline model anywhere: only the file answers
    replayed = session(make_client(transport=replay), tmp_path / "replayed.db")
    assert replayed == recorded
    assert replay.served == len(lines) and replay.misses == replay.fallbacks == 0
    run = recorded["run"]
    assert (run["status"], run["cycles"], run["usage"]["calls"]) == ("approved", 1, 5)
    assert [line["path"] for line in lines].count("/v1/messages/count_tokens") == 1
    streamed = next(line for line in lines if line["request"].get("stream"))
    assert streamed["headers"]["content-type"].startswith("text/event-stream")
    assert streamed["body"].startswith("event: message_start\n") and streamed["complete"] is True


def test_an_unrecorded_request_raises_not_in_recording_with_what_was_asked_and_how_to_fall_back(tmp_path):
    path = tmp_path / "session.jsonl"
    record_client(path, OfflineTransport()).messages.create(**ASK)
    replay = ReplayTransport(path)
    client = make_client(transport=replay)
    with pytest.raises(NotInRecording) as caught:
        client.messages.create(**{**ASK, "max_tokens": 401})
    said = str(caught.value)
    for part in ("POST /v1/messages", repr(MODEL), "'<topic>How vector databases enable semantic search</topic>'",
                 "differs in: max_tokens.", "fallback=True", "MAS_REPLAY_FALLBACK=1"):
        assert part in said
    long_question = "x" * 100
    with pytest.raises(NotInRecording, match=f"last user message '{'x' * 60}'\\)"):
        client.messages.create(**{**ASK, "messages": [{"role": "user", "content": long_question}]})
    with pytest.raises(NotInRecording, match="holds no POST /v1/messages/count_tokens request"):
        client.messages.count_tokens(**COUNTED)
    assert replay.misses == 3 and replay.served == 0  # raised at once: the SDK did not retry it


def test_with_fallback_the_offline_model_answers_what_was_not_recorded(tmp_path):
    path = tmp_path / "session.jsonl"
    record_client(path, ScriptedTransport(["the recorded answer"])).messages.create(**ASK)
    replay = ReplayTransport(path, fallback=True)
    client = make_client(transport=replay)
    assert text_of(client.messages.create(**ASK)) == "the recorded answer"
    other = {**ASK, "max_tokens": 500}
    assert text_of(client.messages.create(**other)) == text_of(make_client(offline=True).messages.create(**other))
    assert (replay.served, replay.fallbacks, replay.misses) == (1, 1, 0)
    assert text_of(replay_client(path, fallback=True).messages.create(**STREAMED)).strip()


def test_async_replay_of_an_async_recording_with_concurrent_calls_and_a_stream(tmp_path):
    path = tmp_path / "session.jsonl"
    topics = ["vector databases", "prompt caching", "multi-agent systems"]
    asks = [{**ASK, "messages": [{"role": "user", "content": f"<topic>{t}</topic>"}]} for t in topics]

    async def talk(client: anthropic.AsyncAnthropic) -> tuple[list[str], str]:
        replies = await asyncio.gather(*(client.messages.create(**ask) for ask in asks))
        async with client.messages.stream(**STREAMED) as stream:
            streamed = "".join([piece async for piece in stream.text_stream])
        return [r.to_json() for r in replies], streamed

    recorded = asyncio.run(talk(record_client(path, OfflineTransport(), asynchronous=True)))
    assert len(load_recording(path)) == 4
    assert asyncio.run(talk(replay_client(path, asynchronous=True))) == recorded
    sync = replay_client(path)  # the same file serves a sync client too
    assert [sync.messages.create(**ask).to_json() for ask in asks] == recorded[0]


def test_a_sync_recording_replays_async(tmp_path):
    path = tmp_path / "session.jsonl"
    message = record_client(path, OfflineTransport()).messages.create(**ASK)
    replayed = asyncio.run(make_client(asynchronous=True, transport=ReplayTransport(path)).messages.create(**ASK))
    assert replayed.to_json() == message.to_json()


def test_repeated_identical_requests_replay_in_recorded_order_then_repeat_the_last(tmp_path):
    path = tmp_path / "session.jsonl"
    recorder = record_client(path, ScriptedTransport(["one", "two", "three"]))
    assert [text_of(recorder.messages.create(**ASK)) for _ in range(3)] == ["one", "two", "three"]
    client = replay_client(path)
    assert [text_of(client.messages.create(**ASK)) for _ in range(4)] == ["one", "two", "three", "three"]


def test_prompt_cache_usage_replays_in_order(tmp_path):
    path = tmp_path / "session.jsonl"
    cached = {**ASK, "system": [{"type": "text", "text": "You are a researcher. " * 40,
                                 "cache_control": {"type": "ephemeral"}}]}
    recorder = record_client(path, OfflineTransport(min_cache_tokens=100))
    recorded = [usage_of(recorder.messages.create(**cached)) for _ in range(2)]
    assert recorded[0]["cache_creation_input_tokens"] > 0 and recorded[1]["cache_read_input_tokens"] > 0
    client = replay_client(path)
    assert [usage_of(client.messages.create(**cached)) for _ in range(2)] == recorded


def test_stream_is_not_part_of_the_key_a_reply_is_converted_to_the_shape_asked_for(tmp_path):
    path = tmp_path / "session.jsonl"
    recorder = record_client(path, OfflineTransport())
    plain = recorder.messages.create(**ASK)
    with recorder.messages.stream(**STREAMED) as stream:
        streamed = stream.get_final_message()
    client = replay_client(path)
    with client.messages.stream(**ASK) as stream:  # recorded plain, asked streamed
        pieces = list(stream.text_stream)
        as_stream = stream.get_final_message()
    as_plain = client.messages.create(**STREAMED)  # recorded streamed, asked plain
    assert "".join(pieces) == text_of(plain) and len(pieces) > 1
    for got, want in ((as_stream, plain), (as_plain, streamed)):
        assert (got.id, text_of(got), got.stop_reason, usage_of(got)) == (want.id, text_of(want), want.stop_reason,
                                                                           usage_of(want))
    # metadata says who asks, not what: it is left out of the key too
    assert text_of(client.messages.create(**ASK, metadata={"user_id": "attendee-7"})) == text_of(plain)


def test_api_errors_and_timeouts_replay_as_recorded_so_the_sdk_retries_the_same_way(tmp_path):
    path = tmp_path / "session.jsonl"
    message = record_client(path, OfflineTransport(faults="overloaded@1"), max_retries=2).messages.create(**ASK)
    assert [line.get("status") for line in load_recording(path)] == [529, 200]
    replay = ReplayTransport(path)
    assert make_client(transport=replay, max_retries=2).messages.create(**ASK).to_json() == message.to_json()
    assert replay.served == 2
    with pytest.raises(anthropic.APIStatusError) as caught:  # no retries left: the recorded 529 is the answer
        replay_client(path, max_retries=0).messages.create(**ASK)
    assert caught.value.status_code == 529

    timed_out = tmp_path / "timeout.jsonl"
    with pytest.raises(anthropic.APITimeoutError):
        record_client(timed_out, OfflineTransport(faults="timeout@1"), max_retries=0).messages.create(**ASK)
    assert load_recording(timed_out)[0]["error"]["type"] == "ReadTimeout"
    with pytest.raises(anthropic.APITimeoutError):
        replay_client(timed_out, max_retries=0).messages.create(**ASK)


def test_a_stream_closed_early_is_recorded_as_incomplete(tmp_path):
    path = tmp_path / "session.jsonl"
    with record_client(path, OfflineTransport()).messages.stream(**STREAMED) as stream:
        first = next(iter(stream.text_stream))
    [line] = load_recording(path)
    assert line["complete"] is False and first in line["body"] and "message_stop" not in line["body"]


def test_no_key_auth_header_cookie_or_org_id_reaches_the_recording(tmp_path):
    path = tmp_path / "session.jsonl"
    # a recognisable fake, in the real key's shape ("sk-ant-" + ...), built so no scanner mistakes it for a key
    fake_key, fake_token = "sk-ant-" + "FAKE-KEY-4242-recognisable", "FAKE-BEARER-TOKEN-9393"
    seen: list[httpx2.Headers] = []

    def api(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.headers)
        body = gzip.compress(json.dumps(text_message("hello", model=MODEL)).encode())
        return httpx2.Response(200, content=body, headers={
            "content-type": "application/json", "content-encoding": "gzip", "request-id": "req_0123",
            "anthropic-organization-id": "org-SECRET-77", "set-cookie": "session=COOKIE-55", "x-api-key": fake_key})

    transport = RecordingTransport(httpx2.MockTransport(api), path)
    by_key = anthropic.Anthropic(api_key=fake_key, base_url="https://api.example.invalid",
                                 http_client=httpx2.Client(transport=transport))
    by_token = anthropic.Anthropic(auth_token=fake_token, base_url="https://api.example.invalid",
                                   http_client=httpx2.Client(transport=transport))
    assert text_of(by_key.messages.create(**ASK)) == text_of(by_token.messages.create(**ASK)) == "hello"
    # really sent (this SDK puts both in `authorization: Bearer ...`; older ones sent `x-api-key`)
    assert any(fake_key in value for _, value in seen[0].multi_items())
    assert seen[1]["authorization"] == f"Bearer {fake_token}"

    written = path.read_text()
    for secret in (fake_key, fake_token, "org-SECRET-77", "COOKIE-55", "x-api-key", "authorization",
                   "set-cookie", "anthropic-"):
        assert secret.lower() not in written.lower()
    first = load_recording(path)[0]
    assert first["headers"] == {"content-type": "application/json", "request-id": "req_0123"}
    assert json.loads(first["body"])["content"][0]["text"] == "hello"  # stored decoded, not gzip bytes
    assert transport.recorded == 2


def test_the_live_recording_client_refuses_under_the_kill_switch(tmp_path, monkeypatch):
    path = tmp_path / "live.jsonl"
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-FAKE")
    with pytest.raises(LiveClientForbidden):
        record_client(path)
    with pytest.raises(LiveClientForbidden):
        record_client(path, asynchronous=True)
    monkeypatch.setenv("MAS_RECORD", str(path))
    with pytest.raises(LiveClientForbidden):
        make_client(offline=False)
    assert not path.exists()


def test_with_the_kill_switch_lifted_the_network_guard_still_stops_a_live_recording(tmp_path, monkeypatch):
    path = tmp_path / "live.jsonl"
    monkeypatch.delenv("MAS_NO_LIVE")
    with pytest.raises(ValueError, match="needs ANTHROPIC_API_KEY"):
        record_client(path)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-FAKE")
    client = record_client(path, max_retries=0)
    with pytest.raises(anthropic.APIConnectionError):  # conftest's guard refuses the real HTTP transport
        client.messages.create(**ASK)
    assert not path.exists()  # a refused send is not an exchange


def test_workshop_switches(tmp_path, monkeypatch):
    path = tmp_path / "room.jsonl"
    message = make_client().messages.create(**ASK)  # no switch: the offline model, nothing written
    assert not path.exists()
    monkeypatch.setenv("MAS_RECORD", str(path))  # the test suite is offline: this records the offline model
    assert make_client().messages.create(**ASK).to_json() == message.to_json()
    assert asyncio.run(make_client(asynchronous=True).messages.create(**STREAMED)).stop_reason == "end_turn"
    assert [line["request"]["max_tokens"] for line in load_recording(path)] == [ASK["max_tokens"], 300]
    monkeypatch.delenv("MAS_RECORD")
    monkeypatch.setenv("MAS_REPLAY", str(path))
    assert make_client().messages.create(**ASK).to_json() == message.to_json()
    assert asyncio.run(make_client(asynchronous=True).messages.create(**ASK)).to_json() == message.to_json()
    with pytest.raises(NotInRecording):
        make_client().messages.create(**{**ASK, "max_tokens": 7})
    monkeypatch.setenv("MAS_REPLAY_FALLBACK", "1")
    assert text_of(make_client().messages.create(**{**ASK, "max_tokens": 7})).strip()
    monkeypatch.setenv("MAS_RECORD", str(path))
    with pytest.raises(ValueError, match="both set"):
        make_client()


def test_bad_recordings_and_bad_fallbacks_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="record one first"):
        ReplayTransport(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"method": "POST", "path": "/v1/messages", "status": 200, "headers": {}, "body": ""}\n{oops\n')
    with pytest.raises(ValueError, match="line 2: not a JSON line"):
        ReplayTransport(bad)
    bad.write_text('{"method": "POST"}\n')
    with pytest.raises(ValueError, match="line 1: not a recorded exchange"):
        ReplayTransport(bad)
    good = tmp_path / "good.jsonl"
    record_client(good, ScriptedTransport(["hi"])).messages.create(**ASK)
    with pytest.raises(TypeError, match="fallback must be"):
        ReplayTransport(good, fallback="offline")
    sync_only = RecordingTransport(httpx2.HTTPTransport(), good)
    with pytest.raises(TypeError, match="AsyncHTTPTransport for AsyncAnthropic"):  # a sync transport, an async client
        asyncio.run(make_client(asynchronous=True, transport=sync_only).messages.create(**ASK))


def test_clients_from_the_replay_switch_share_one_place_in_the_recording(tmp_path, monkeypatch):
    path = tmp_path / "room.jsonl"
    recorder = record_client(path, ScriptedTransport(["first", "second"]))
    [recorder.messages.create(**ASK) for _ in range(2)]
    monkeypatch.setenv("MAS_REPLAY", str(path))
    # a new client per cell, as notebooks do: the second still gets the second reply
    assert [text_of(make_client().messages.create(**ASK)) for _ in range(3)] == ["first", "second", "second"]
    assert text_of(replay_client(path).messages.create(**ASK)) == "first"  # an explicit replay starts afresh
    record_client(path, ScriptedTransport(["third"])).messages.create(**ASK)  # the file changed: start again
    assert [text_of(make_client().messages.create(**ASK)) for _ in range(4)] == ["first", "second", "third",
                                                                                     "third"]
