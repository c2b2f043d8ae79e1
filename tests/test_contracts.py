"""Contracts on the way out: plain-text replies and the SDK's structured outputs, both strict."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from mas.agents import ResearcherAgent, ValidatorAgent
from mas.client import make_client
from mas.contracts import ValidationResult, parse_reply
from mas.errors import ContractError, ReplyError
from mas.offline import Fault, OfflineTransport, ScriptedTransport, text_message
from mas.prompts import validate_task

MODEL = "claude-opus-4-6"
RESEARCH = "- Caches keep hot data close to the CPU.\n- Cache misses cost hundreds of cycles."
GOOD_DRAFT = "Caches keep hot data close to the CPU. Cache misses cost hundreds of cycles."


class Notes(BaseModel):
    topic: str
    points: list[str]


@pytest.mark.parametrize("text, stop, reason", [
    ('```json\n{"topic": "t", "points": []}\n```', "end_turn", "not valid JSON (it starts with '```json'"),
    ('Here you go: {"topic": "t", "points": []}', "end_turn", "not valid JSON"),
    ('{"topic": "t", "points": [', "end_turn", "the JSON ends before it is complete"),
    ('{"topic": "t", "points": []}', "max_tokens", "cut off at max_tokens"),
    ("I can't help with that.", "refusal", "refused"),
    ('{"topic": "t"}', "end_turn", "JSON does not fit the schema: points: Field required"),
    ('{"topic": "t", "points": "one"}', "end_turn", "points: Input should be a valid array"),
    ("   ", "end_turn", "empty"),
])
def test_parse_reply_rejects_every_kind_of_bad_reply_with_a_reason(text, stop, reason):
    with pytest.raises(ReplyError) as info:
        parse_reply(text, Notes, stop)
    assert reason in info.value.reason


def test_ask_reasks_with_the_error_then_succeeds():
    transport = ScriptedTransport(['Sure: {"topic": "t", "points": ["a"]}', '{"topic": "t", "points": ["a"]}'])
    agent = ResearcherAgent(client=make_client(transport=transport))
    assert agent.ask("<topic>t</topic>", Notes) == Notes(topic="t", points=["a"])
    reask = transport.requests[1]["messages"][-1]["content"]
    assert reask.startswith("Your answer could not be used: not valid JSON") and '"topic", "points"' in reask


def test_ask_gives_up_after_the_attempts_never_defaults():
    transport = ScriptedTransport(["nope"] * 2)
    agent = ResearcherAgent(client=make_client(transport=transport))
    with pytest.raises(ContractError, match="no valid Notes after 2 answers"):
        agent.ask("t", Notes, attempts=2)
    with pytest.raises(ValueError, match="attempts must be >= 1"):
        agent.ask("t", Notes, attempts=0)


@pytest.mark.parametrize("kind", ["malformed_json", "fenced_json", "prose_json", "truncate", "refusal", "empty"])
def test_the_validator_under_each_reply_fault_is_reasked_and_gets_the_true_verdict(kind):
    transport = OfflineTransport(faults=[Fault(kind, role="validator")])
    validator = ValidatorAgent(client=make_client(transport=transport))
    bad_draft = "Caches keep hot data close to the CPU."
    verdict = validator.review(RESEARCH, bad_draft)
    assert verdict.approved is False and verdict.issues[0].startswith("Missing point")
    assert transport.model.calls == 2


def test_structured_outputs_uses_the_sdks_structured_outputs():
    transport = OfflineTransport()
    client = make_client(transport=transport)
    validator = ValidatorAgent(client=client, model=MODEL, max_tokens=1000)
    verdict = validator.ask(validate_task(RESEARCH, GOOD_DRAFT), ValidationResult, structured=True)
    assert verdict.approved is True and verdict.issues == []


@pytest.mark.parametrize("kind", ["truncate", "refusal", "malformed_json"])
def test_structured_outputs_never_parses_a_cut_off_or_refused_reply(kind):
    transport = ScriptedTransport()
    client = make_client(transport=transport)
    bad = {"truncate": text_message('{"issues": [], "appr', stop_reason="max_tokens"),
           "refusal": text_message("I can't help with that.", stop_reason="refusal"),
           "malformed_json": text_message('{"issues": [], "approved": tr')}[kind]
    transport.add(bad, bad)
    with pytest.raises(ContractError) as info:
        ValidatorAgent(client=client, model=MODEL, max_tokens=100).ask("check", ValidationResult, attempts=2,
                                                                       structured=True)
    assert len(info.value.reasons) == 2 and len(transport.requests) == 2
    assert transport.requests[0]["output_config"]["format"]["type"] == "json_schema"
    assert transport.requests[1]["messages"][-1]["content"].startswith("Your answer could not be used")


@pytest.mark.parametrize("reply, reason", [
    ('{"issues": [], "approved": "yes"}', "approved: Input should be a valid boolean"),
    ('{"issues": [], "approved": 1}', "approved: Input should be a valid boolean"),
    ('{"issues": ["x"], "approved": true}', "approved is true but issues are listed"),
    ('{"issues": [1], "approved": false}', "issues.0: Input should be a valid string"),
])
def test_a_verdict_is_read_strictly_no_truthy_approvals(reply, reason):
    from mas.contracts import parse_validation

    with pytest.raises(ReplyError) as info:
        parse_validation(reply)
    assert reason in info.value.reason


def test_a_cut_off_structured_reply_says_so():
    transport = ScriptedTransport([text_message('{"issues": [], "appr', stop_reason="max_tokens")])
    with pytest.raises(ContractError) as info:
        ValidatorAgent(client=make_client(transport=transport), model=MODEL, max_tokens=5).ask(
            "check", ValidationResult, attempts=1, structured=True)
    assert "cut off at max_tokens" in info.value.reasons[0]


def test_a_structured_answer_that_does_not_fit_is_still_counted_and_budgeted():
    from mas.budget import Budget

    transport = OfflineTransport(faults=[Fault("malformed_json", call=1)])
    validator = ValidatorAgent(client=make_client(transport=transport), model=MODEL)
    with Budget(max_tokens=100_000) as budget:
        verdict = validator.ask(validate_task(RESEARCH, GOOD_DRAFT), ValidationResult, structured=True)
    assert verdict.approved and transport.model.calls == 2
    assert validator.usage.calls == 2 and budget.spent.calls == 2
    assert budget.spent.tokens == validator.usage.input_tokens + validator.usage.output_tokens > 0


@pytest.mark.parametrize(("fault", "kind"), [("refusal", "refusal"), ("truncate", "max_tokens"),
                                             ("prose_json", "invalid")])
def test_a_validator_that_never_answers_fails_with_the_kind_of_its_last_answer(fault, kind):
    from mas.errors import AgentReplyError

    transport = OfflineTransport(faults=[Fault(fault, role="validator", times=None)])
    with pytest.raises(AgentReplyError) as caught:
        ValidatorAgent(client=make_client(transport=transport)).review(RESEARCH, GOOD_DRAFT)
    assert caught.value.kind == kind and transport.model.calls == 3
