"""Agents: history, reset, clear errors for unusable replies, async, and the validator's strict verdicts."""

from __future__ import annotations

import asyncio
import json

import anthropic
import pytest
from gateway import gateway

import mas.progress
from mas.agents import BaseAgent, ResearcherAgent, ValidatorAgent, WriterAgent
from mas.client import OFFLINE_BASE_URL, make_client
from mas.contracts import ValidationResult
from mas.errors import AgentReplyError
from mas.offline import ScriptedTransport, text_message
from mas.offline.tokens import count_request
from mas.prompts import SYSTEM_PROMPTS

OK = '{"issues": [], "approved": true}'


def scripted(*replies):
    transport = ScriptedTransport(list(replies))
    return transport, make_client(transport=transport)


def test_run_sends_system_prompt_and_history_and_keeps_both_turns():
    transport, client = scripted("first answer", "second answer")
    agent = ResearcherAgent(client=client)
    assert agent.run("task one") == "first answer"
    assert agent.run("task two") == "second answer"
    assert transport.requests[0]["system"] == SYSTEM_PROMPTS["researcher"]
    assert transport.requests[1]["messages"] == [
        {"role": "user", "content": "task one"}, {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "task two"}]
    assert len(agent.history) == 4 and agent.usage.calls == 2


def test_reset_clears_the_history():
    transport, client = scripted("a", "b")
    agent = WriterAgent(client=client)
    agent.run("one")
    agent.reset()
    agent.run("two")
    assert transport.requests[1]["messages"] == [{"role": "user", "content": "two"}]


@pytest.mark.parametrize("reply, kind", [
    (text_message("", stop_reason="end_turn"), "empty"),
    (text_message("I can't help with that.", stop_reason="refusal"), "refusal"),
    (text_message("Half a sent", stop_reason="max_tokens"), "max_tokens"),
    ({"id": "m", "type": "message", "role": "assistant", "model": "x", "stop_reason": "tool_use", "stop_sequence": None,
      "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}],
      "usage": {"input_tokens": 1, "output_tokens": 1}}, "empty"),
])
def test_unusable_replies_are_clear_errors_and_leave_no_half_turn(reply, kind):
    _, client = scripted(reply)
    agent = WriterAgent(client=client)
    with pytest.raises(AgentReplyError) as info:
        agent.run("task")
    assert info.value.kind == kind and str(info.value).startswith("Writer: ")
    assert agent.history == []


def test_a_new_specialist_is_one_prompt_and_one_subclass(monkeypatch):
    monkeypatch.setitem(SYSTEM_PROMPTS, "editor", "You are an editor. Tighten the prose.")

    class EditorAgent(BaseAgent):
        role = "editor"

    transport, client = scripted("tightened")
    assert EditorAgent(client=client).run("some prose") == "tightened"
    assert transport.requests[0]["system"] == "You are an editor. Tighten the prose."
    with pytest.raises(ValueError, match="no system prompt for role 'poet'"):
        BaseAgent("poet", client=client)


def test_the_client_is_injected_and_the_default_is_built_lazily():
    agent = ResearcherAgent()
    assert agent._client is None  # nothing built at construction
    assert "Research" in agent.run("<topic>How vector databases enable semantic search</topic>")
    assert str(agent.client.base_url).startswith(OFFLINE_BASE_URL)  # the offline model answered


def test_arun_on_the_async_client():
    transport = ScriptedTransport(["async reply"])
    agent = ResearcherAgent(async_client=make_client(asynchronous=True, transport=transport))
    assert asyncio.run(agent.arun("task")) == "async reply"
    assert agent.history[-1] == {"role": "assistant", "content": "async reply"}


def test_cache_system_prompt_marks_it_with_cache_control():
    transport, client = scripted("x")
    WriterAgent(client=client, cache_system_prompt=True).run("t")
    assert transport.requests[0]["system"][0]["cache_control"] == {"type": "ephemeral"}


# ---------------------------------------------------------------- the validator's verdict


BAD_REPLIES = {
    "code fences": "```json\n" + OK + "\n```",
    "prose around it": "Looks good to me!\n" + OK,
    "truncated": '{"issues": [], "appro',
    "wrong field": '{"problems": [], "approved": true}',
    "wrong type": '{"issues": "none", "approved": "yes"}',
    "extra field": '{"issues": [], "approved": true, "note": "fine"}',
    "not json at all": "APPROVED",
}


@pytest.mark.parametrize("name", list(BAD_REPLIES))
def test_a_malformed_verdict_is_reasked_with_the_error_never_approved(name):
    transport, client = scripted(BAD_REPLIES[name], '{"issues": ["Missing point: X."], "approved": false}')
    verdict = ValidatorAgent(client=client).review("- X.", "Draft.")
    assert verdict == ValidationResult(issues=["Missing point: X."], approved=False)
    reask = transport.requests[1]["messages"]
    assert reask[1] == {"role": "assistant", "content": BAD_REPLIES[name]}
    assert reask[2]["content"].startswith("Your answer could not be used: ")


@pytest.mark.parametrize("name", list(BAD_REPLIES))
def test_a_verdict_that_stays_malformed_is_a_failure_not_an_approval(name):
    transport, client = scripted(*[BAD_REPLIES[name]] * 3)
    with pytest.raises(AgentReplyError) as info:
        ValidatorAgent(client=client).review("- X.", "Draft.", attempts=3)
    assert info.value.kind == "invalid" and "after 3 answers" in str(info.value)
    assert len(transport.requests) == 3


def test_truncated_and_refused_verdicts_are_reasked():
    transport, client = scripted(text_message('{"issues": [', stop_reason="max_tokens"),
                                 text_message("No.", stop_reason="refusal"), OK)
    assert ValidatorAgent(client=client).review("- X.", "X.").approved is True
    assert "cut off at max_tokens" in transport.requests[1]["messages"][-1]["content"]
    assert "refused" in transport.requests[2]["messages"][-1]["content"]


def test_each_review_starts_fresh():
    transport, client = scripted(OK, OK)
    validator = ValidatorAgent(client=client)
    validator.review("- A.", "A.")
    validator.review("- B.", "B.")
    assert len(transport.requests[1]["messages"]) == 1


def test_the_offline_validator_end_to_end_through_the_agent():
    verdict = ValidatorAgent(client=make_client()).review("- Caches keep hot data close to the CPU.",
                                                          "Caches keep hot data close to the CPU.")
    assert verdict.approved and json.loads(verdict.model_dump_json())["issues"] == []


def test_call_hooks_see_every_call_and_can_refuse_one():
    from mas.errors import RunStopped
    from mas.hooks import call_hook

    seen = []

    def hook(agent, request):
        if "forbidden" in request["messages"][-1]["content"]:
            raise RunStopped("refused before sending")
        return lambda message, error: seen.append((agent.name, message.stop_reason if message else type(error)))

    transport, client = scripted("a", "b")
    agent = WriterAgent(client=client)
    with call_hook(hook):
        agent.run("fine")
        with pytest.raises(RunStopped):
            agent.run("forbidden")
    agent.run("outside the hook")
    assert seen == [("Writer", "end_turn")] and len(transport.requests) == 2


def test_counting_tokens_never_goes_to_another_server_than_the_agents():
    import pytest

    from mas.offline import OfflineTransport

    only_async = ResearcherAgent(async_client=make_client(transport=OfflineTransport(), asynchronous=True))
    with pytest.raises(ValueError, match="only an async client.*pass client= as well"):
        only_async.count_tokens("<topic>x</topic>")
    both = ResearcherAgent(client=make_client(transport=OfflineTransport()),
                           async_client=make_client(transport=OfflineTransport(), asynchronous=True))
    assert both.count_tokens("<topic>x</topic>") > 0


# ---------------------------------------------------------------------------- a gateway without count_tokens

def test_a_gateway_without_count_tokens_is_a_one_line_note_and_the_local_estimate(loopback, monkeypatch, capsys):
    monkeypatch.setattr(mas.progress, "_noted", set())
    with gateway(missing=("/v1/messages/count_tokens",)) as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        agent = ResearcherAgent(client=make_client(max_retries=0))
        counts = [agent.count_tokens("<topic>x</topic>") for _ in range(2)]
        assert agent.run("<topic>x</topic>") == "Hello from the gateway."  # the endpoint that is served works
    asked = [(method, path) for method, path, _ in server.requests]
    assert asked == [("POST", "/v1/messages/count_tokens")] * 2 + [("POST", "/v1/messages")]
    request = {"model": agent.model, "system": agent.system_prompt, "messages": [{"role": "user",
                                                                                "content": "<topic>x</topic>"}]}
    assert counts == [count_request(request)] * 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"mas: note: POST /v1/messages/count_tokens is not served by ANTHROPIC_BASE_URL={server.url} "
                   "(404): counting locally instead (an estimate, about 4 characters a token)"]  # said once


def test_a_404_that_names_the_model_is_no_missing_endpoint(loopback, monkeypatch):
    model_404 = json.dumps({"type": "error", "error": {"type": "not_found_error",
                                                       "message": "model: claude-nonesuch-9"}}).encode()
    with gateway(missing=("/v1/messages/count_tokens",), not_found=model_404) as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        agent = ResearcherAgent(client=make_client(max_retries=0), model="claude-nonesuch-9")
        with pytest.raises(anthropic.NotFoundError, match="claude-nonesuch-9"):
            agent.count_tokens("<topic>x</topic>")
