"""Failure handling offline: the SDK's own retries counted, each policy's path, structured errors,
the circuit breaker, escalation to a human (the form pressed headless), and the orchestrator
running a Resilient agent under a fault plan without changing orchestrator.py."""

from __future__ import annotations

import builtins
import json

import httpx2
import pytest

from mas.agents import ResearcherAgent, ValidatorAgent, WriterAgent
from mas.client import make_client
from mas.errors import AgentFailed, AgentFailure, AwaitingHuman, CircuitOpen, HumanRejected, RunStopped
from mas.failures import (
    APPROVE,
    REJECT,
    CircuitBreaker,
    Decision,
    Escalate,
    Fallback,
    Resilient,
    Retry,
    Skip,
    ask_human,
)
from mas.hooks import call_hook
from mas.offline import Fault, OfflineTransport, ScriptedTransport, error, text_message
from mas.orchestrator import Orchestrator
from mas.prompts import revise_task, write_task
from mas.widgets import ApprovalForm

TOPIC = "How vector databases enable semantic search"
AUDIENCE = "engineers"
RESEARCH = "- Vectors encode meaning.\n- Nearest neighbours are found fast."
WRITE = write_task(TOPIC, AUDIENCE, RESEARCH)
REVISE = revise_task(TOPIC, AUDIENCE, RESEARCH, "# Old\n\nThe previous draft.", ["too short"])
PRIMARY, SMALLER = "claude-opus-4-6", "claude-haiku-4-5"


def writer(transport, retries=2, **kw):
    return WriterAgent(client=make_client(transport=transport, max_retries=retries), model=PRIMARY, **kw)


def orchestrate(memory, transport, **agents):
    client = make_client(transport=transport, max_retries=2)
    return Orchestrator(memory, client=client, model=PRIMARY, progress=None, **agents)


# ---------------------------------------------------------------- layer 1: the SDK's own retries


def test_the_sdk_retries_529_itself_three_requests_for_one_call():
    transport = OfflineTransport(faults="overloaded@1,overloaded@2")
    agent = Resilient(writer(transport), [])
    assert agent.run(WRITE).startswith("# ")
    assert transport.model.calls == 3 and agent.failures == [] and agent.outcomes == ["ok"]


def test_the_sdk_does_not_retry_a_400_one_request_and_a_structured_failure():
    transport = ScriptedTransport([error(400, "bad field"), "never sent"])
    agent = Resilient(writer(transport), [Retry(3)])  # Retry does not retry a bad request either
    with pytest.raises(AgentFailed) as stopped:
        agent.run(WRITE)
    assert len(transport.requests) == 1 and stopped.value.status == "agent_failed"
    assert stopped.value.failure == AgentFailure("Writer", "bad_request", "BadRequestError 400: bad field", 1)
    assert "(tried: none)" in str(stopped.value)


@pytest.mark.parametrize("fault, kind, attempts", [
    ("rate_limit", "rate_limit", 3), ("overloaded", "overloaded", 3), ("server_error", "server_error", 3),
    ("timeout", "timeout", 3), ("bad_request", "bad_request", 1),
    ("refusal", "refusal", 1), ("truncate", "max_tokens", 1), ("empty", "empty", 1)])
def test_each_fault_becomes_a_failure_of_the_right_kind_and_attempts(fault, kind, attempts):
    transport = OfflineTransport(faults=[Fault(fault, times=None)])
    agent = Resilient(writer(transport, retries=2), [])
    with pytest.raises(AgentFailed) as stopped:
        agent.run(WRITE)
    failure = stopped.value.failure
    assert (failure.agent, failure.kind, failure.attempts) == ("Writer", kind, attempts)
    assert transport.model.calls == attempts and agent.failures == [failure] and agent.outcomes == ["failed"]


def test_a_connection_error_is_retried_by_the_sdk_then_recorded():
    transport = ScriptedTransport([httpx2.ConnectError("refused")] * 3)
    with pytest.raises(AgentFailed) as stopped:
        Resilient(writer(transport, retries=2)).run(WRITE)
    assert (stopped.value.failure.kind, stopped.value.failure.attempts, len(transport.requests)) == ("connection", 3, 3)


def test_a_validator_that_never_answers_properly_is_an_invalid_failure_with_its_answers():
    transport = OfflineTransport(faults=[Fault("fenced_json", role="validator", times=None)])
    validator = Resilient(ValidatorAgent(client=make_client(transport=transport, max_retries=0)), [])
    with pytest.raises(AgentFailed) as stopped:
        validator.review(RESEARCH, "# Draft\n\nVectors encode meaning.", attempts=2)
    assert (stopped.value.failure.kind, stopped.value.failure.attempts, transport.model.calls) == ("invalid", 2, 2)


def test_a_bug_or_a_budget_is_never_absorbed_by_a_policy():
    class Broken:
        name, role = "Broken", "writer"

        def run(self, task):
            raise KeyError("a bug")

    agent = Resilient(Broken(), [Retry(2), Skip(default_text="x")])
    with pytest.raises(KeyError):
        agent.run(WRITE)
    assert agent.failures == []


def test_a_limit_that_stops_the_run_passes_through_the_policies_untouched():
    class OverBudget(RunStopped):
        status = "over_budget"

    def refuse(agent, request):
        raise OverBudget("no budget left")

    transport = OfflineTransport()
    agent = Resilient(writer(transport), [Retry(2), Fallback(model=SMALLER), Skip(default_text="x")])
    with call_hook(refuse), pytest.raises(OverBudget):
        agent.run(WRITE)
    assert transport.model.calls == 0 and agent.failures == []


# ---------------------------------------------------------------- policies


def test_retry_succeeds_after_the_sdk_gave_up_once():
    transport = OfflineTransport(faults=[Fault("overloaded", times=3)])  # one call's 3 requests, then healthy
    agent = Resilient(writer(transport), [Retry(2)])
    assert agent.run(WRITE).startswith("# ")
    assert transport.model.calls == 4 and [f.kind for f in agent.failures] == ["overloaded"]
    assert agent.outcomes == ["retry"] and agent.usage.calls == 1


def test_retry_gives_up_after_its_times_with_every_failure_recorded():
    transport = OfflineTransport(faults=[Fault("server_error", times=None)])
    agent = Resilient(writer(transport, retries=1), [Retry(2)])
    with pytest.raises(AgentFailed) as stopped:
        agent.run(WRITE)
    assert transport.model.calls == 6 and len(stopped.value.failures) == 3 == len(agent.failures)
    assert "(tried: retry)" in str(stopped.value)


def test_skip_a_revision_keeps_the_draft_it_was_revising():
    transport = OfflineTransport(faults=[Fault("overloaded", times=None)])
    agent = Resilient(writer(transport, retries=0), [Skip()])
    assert agent.run(REVISE) == "# Old\n\nThe previous draft."
    assert agent.outcomes == ["skip"] and transport.model.calls == 1


def test_skip_has_nothing_to_keep_for_a_first_draft_unless_given_a_default():
    transport = OfflineTransport(faults=[Fault("overloaded", times=None)])
    with pytest.raises(AgentFailed, match=r"tried: skip"):
        Resilient(writer(transport, retries=0), [Skip()]).run(WRITE)
    assert Resilient(writer(transport, retries=0), [Skip(default_text="(none)")]).run(WRITE) == "(none)"


def test_a_validator_can_not_be_skipped():
    with pytest.raises(ValueError, match="can't be skipped"):
        Resilient(ValidatorAgent(client=make_client(transport=OfflineTransport())), [Skip()])


def test_fallback_to_a_smaller_model_sends_that_model():
    transport = ScriptedTransport([error(529)] * 3 + [text_message("# Draft\n\nFrom the smaller model.",
                                                                   output_tokens=7)])
    agent = Resilient(writer(transport), [Fallback(model=SMALLER)])
    assert agent.run(WRITE) == "# Draft\n\nFrom the smaller model."
    assert [r["model"] for r in transport.requests] == [PRIMARY] * 3 + [SMALLER]
    assert agent.answered_by == f"Writer ({SMALLER})" and agent.outcomes == ["fallback"]
    assert (agent.usage.calls, agent.usage.output_tokens) == (1, 7)  # the fallback's usage counts
    assert agent.agent.model == PRIMARY  # the primary agent is unchanged


def test_fallback_to_a_simpler_agent_without_a_model():
    class Outline:  # no model at all: the research's bullets as a draft
        name, role, usage = "Outline", "writer", None

        def run(self, task):
            return "# Outline\n\n" + task.split("<research>\n")[1].split("\n</research>")[0]

    transport = OfflineTransport(faults=[Fault("timeout", times=None)])
    agent = Resilient(writer(transport, retries=1), [Retry(1), Fallback(agent=Outline())])
    assert agent.run(WRITE) == "# Outline\n\n" + RESEARCH
    assert transport.model.calls == 4 and agent.answered_by == "Outline"
    assert [f.kind for f in agent.failures] == ["timeout", "timeout"]


def test_policies_run_in_order_and_a_failing_fallback_moves_on():
    transport = ScriptedTransport([error(500), error(529), error(400)])
    seen = []
    agent = Resilient(writer(transport, retries=0),
                      [Retry(1), Fallback(model=SMALLER), Escalate(ask=lambda q, d: seen.append((q, d)) or APPROVE)])
    assert agent.run(REVISE) == "# Old\n\nThe previous draft."  # the human approved the draft being revised
    assert [f.kind for f in agent.failures] == ["server_error", "overloaded", "bad_request"]
    assert [f.agent for f in agent.failures] == ["Writer", "Writer", f"Writer ({SMALLER})"]
    assert seen[0][0].startswith(f"Writer ({SMALLER}): bad_request after 1 attempt(s)")
    assert agent.outcomes == ["escalate:approve"]
    transport.add(error(500), error(529), error(400))
    with pytest.raises(AgentFailed, match="no draft to keep"):  # a first draft: nothing to approve
        agent.run(WRITE)


@pytest.mark.parametrize("decision, expected", [(APPROVE, "cut"),
                                                (Decision("edit", "# Mine\n\nFixed."), "# Mine\n\nFixed.")])
def test_escalate_approve_keeps_the_cut_off_draft_and_edit_uses_the_humans_text(decision, expected):
    transport = OfflineTransport(faults=[Fault("truncate")])
    asked = []
    agent = Resilient(writer(transport), [Escalate(ask=lambda q, d: asked.append((q, d)) or decision)])
    result = agent.run(WRITE)
    question, draft = asked[0]
    assert question.startswith("Writer: max_tokens after 1 attempt(s)") and draft.startswith("# ")
    assert result == (draft if expected == "cut" else expected)
    assert agent.outcomes == [f"escalate:{decision.action}"] and agent.answered_by == "human"


def test_escalate_reject_stops_with_its_own_status():
    transport = OfflineTransport(faults=[Fault("refusal")])
    agent = Resilient(writer(transport), [Escalate()])  # unattended: the default decision, REJECT
    with pytest.raises(HumanRejected) as stopped:
        agent.run(REVISE)
    assert stopped.value.status == "rejected"
    assert "rejected by the default decision (nobody was asked)" in str(stopped.value)


def test_escalating_a_validator_makes_the_human_the_validator():
    transport = OfflineTransport(faults=[Fault("malformed_json", role="validator", times=None)])
    client = make_client(transport=transport, max_retries=0)
    edit = Decision("edit", "- Say where the numbers come from\n- Shorter title")
    verdict = Resilient(ValidatorAgent(client=client), [Escalate(ask=lambda q, d: edit)]).review(RESEARCH, "D", 1)
    assert verdict.issues == ["Say where the numbers come from", "Shorter title"] and not verdict.approved
    approve = Decision("approve", by="human")
    verdict = Resilient(ValidatorAgent(client=client), [Escalate(ask=lambda q, d: approve)]).review(RESEARCH, "D", 1)
    assert verdict.approved and verdict.issues == []
    with pytest.raises(ValueError, match="nobody reviewed"):
        Resilient(ValidatorAgent(client=client), [Escalate(default=APPROVE)])


# ---------------------------------------------------------------- circuit breaker


def test_the_breaker_opens_after_exactly_n_failures_and_refuses_without_a_request():
    transport = OfflineTransport(faults=[Fault("overloaded", times=None)])
    breaker = CircuitBreaker(max_failures=2)
    agent = Resilient(writer(transport, retries=0), [], breaker=breaker)
    for expected_calls in (1, 2):
        with pytest.raises(AgentFailed) as stopped:
            agent.run(WRITE)
        assert type(stopped.value) is AgentFailed and transport.model.calls == expected_calls
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen) as refused:
        agent.run(WRITE)
    assert transport.model.calls == 2 and refused.value.status == "circuit_open"
    assert refused.value.failure.attempts == 0 and "failed 2 time(s) in a row (last: overloaded" in str(refused.value)


def test_the_breaker_stops_a_retry_storm():
    transport = OfflineTransport(faults=[Fault("overloaded", times=None)])
    agent = Resilient(writer(transport, retries=0), [Retry(10)], breaker=CircuitBreaker(max_failures=3))
    with pytest.raises(CircuitOpen):
        agent.run(WRITE)
    assert transport.model.calls == 3 and [f.kind for f in agent.failures][-1] == "circuit_open"


def test_a_success_closes_the_breaker_so_only_consecutive_failures_count():
    transport = OfflineTransport(faults="overloaded@1,overloaded@3")
    breaker = CircuitBreaker(max_failures=2)
    agent = Resilient(writer(transport, retries=0), [Retry(1)], breaker=breaker)
    agent.run(WRITE)  # call 1 fails, the retry (call 2) succeeds: closed, count back to 0
    assert (breaker.state, breaker.failures) == ("closed", 0)
    agent.run(WRITE)  # call 3 fails, call 4 succeeds
    assert breaker.state == "closed" and transport.model.calls == 4


def test_an_open_breaker_still_lets_a_fallback_answer_without_calling_the_agent():
    transport = ScriptedTransport([error(529), "# From the fallback"])
    agent = Resilient(writer(transport, retries=0), [Fallback(model=SMALLER)], breaker=CircuitBreaker(1))
    assert agent.run(WRITE) == "# From the fallback"
    transport.add("# Fallback again")
    assert agent.run(WRITE) == "# Fallback again"
    assert [r["model"] for r in transport.requests] == [PRIMARY, SMALLER, SMALLER]


def test_half_open_after_a_count_of_refused_calls():
    transport = ScriptedTransport([error(529), "# back"])
    breaker = CircuitBreaker(max_failures=1, reset_after=2)
    agent = Resilient(writer(transport, retries=0), [], breaker=breaker)
    with pytest.raises(AgentFailed):
        agent.run(WRITE)
    for _ in range(2):
        with pytest.raises(CircuitOpen):
            agent.run(WRITE)
    assert breaker.state == "half_open" and len(transport.requests) == 1
    assert agent.run(WRITE) == "# back" and breaker.state == "closed"


@pytest.mark.parametrize("bad", [dict(max_failures=0), dict(max_failures=2, reset_after=0)])
def test_breaker_limits_must_be_positive(bad):
    with pytest.raises(ValueError, match=">= 1"):
        CircuitBreaker(**bad)


def test_misconfigured_policies_raise_at_once():
    with pytest.raises(ValueError, match="exactly one"):
        Fallback()
    with pytest.raises(ValueError, match=">= 1"):
        Retry(0)


# ---------------------------------------------------------------- the human


def test_unattended_ask_human_returns_the_default_and_never_reads_input(monkeypatch):
    monkeypatch.delenv("MAS_INTERACTIVE", raising=False)
    monkeypatch.setattr(builtins, "input", lambda *a: pytest.fail("input() would block an unattended run"))
    assert ask_human("Keep it?", "Draft.") == Decision("reject", by="default")
    assert ask_human("Keep it?", "Draft.", default=APPROVE).by == "default"


def test_mas_interactive_shows_the_form_and_returns_it_undecided(monkeypatch):
    monkeypatch.setenv("MAS_INTERACTIVE", "1")
    shown = []
    form = ask_human("Keep it?", "Draft.", show=shown.append)
    assert shown == [form] and isinstance(form, ApprovalForm) and form.decision is None
    assert form.text.value == "Draft." and "Keep it?" in form.widget.children[0].value


@pytest.mark.parametrize("press, expected", [("approve_button", APPROVE), ("reject_button", REJECT),
                                             ("edit_button", Decision("edit", "Better."))])
def test_pressing_each_button_decides_once(press, expected):
    form = ApprovalForm("Keep it?", "Draft.")
    form.text.value = "Better."
    getattr(form, press).click()
    assert form.decision == expected and form.approve_button.disabled and form.text.disabled
    form.reject_button.click()  # a second click changes nothing
    assert form.decision == expected and f"decision: {expected.action}" in form.describe()


def test_an_empty_edit_is_refused_on_the_form():
    form = ApprovalForm("Keep it?", "Draft.")
    form.text.value = "  "
    form.edit_button.click()
    assert form.decision is None and "empty" in form.status.value


# ---------------------------------------------------------------- with the orchestrator (unchanged)


def test_orchestrator_with_a_resilient_writer_finishes_under_a_fault_plan(memory):
    transport = OfflineTransport(faults=[Fault("overloaded", role="writer", times=3)])
    client = make_client(transport=transport, max_retries=2)
    agent = Resilient(WriterAgent(client=client, model=PRIMARY), [Retry(1)])
    result = orchestrate(memory, transport, writer=agent).run(TOPIC, run_id="r")
    assert (result.status, result.cycles) == ("approved", 1)
    assert transport.model.calls == 5 + 3 and result.usage.calls == 5  # 3 failed requests, no usage
    assert agent.outcomes == ["retry", "ok"]


def test_orchestrator_counts_the_fallbacks_usage_in_the_run(memory):
    transport = OfflineTransport(faults=[Fault("overloaded", role="writer", times=3)])
    client = make_client(transport=transport, max_retries=2)
    agent = Resilient(WriterAgent(client=client, model=PRIMARY), [Fallback(model=SMALLER)])
    result = orchestrate(memory, transport, writer=agent).run(TOPIC, run_id="r")
    assert result.status == "approved" and agent.outcomes == ["fallback", "ok"]
    assert result.usage.calls == 5 and transport.model.calls == 8
    assert agent.usage.calls == 2  # one draft from the fallback, one revision from the primary


def test_orchestrator_stops_cleanly_when_the_writer_fails_and_resumes_later(memory):
    transport = OfflineTransport(faults=[Fault("overloaded", role="writer", times=None)])
    client = make_client(transport=transport, max_retries=1)
    agent = Resilient(WriterAgent(client=client, model=PRIMARY), [Retry(1)])
    result = orchestrate(memory, transport, writer=agent).run(TOPIC, run_id="r")
    assert result.status == "agent_failed" and "Writer: overloaded after 2 attempt(s)" in result.reason
    assert set(memory.scoped("r").get_all()) == {"topic", "audience", "research", "status", "reason", "usage"}
    healthy = OfflineTransport()
    resumed = orchestrate(memory, healthy).run(run_id="r")
    assert resumed.status == "approved" and healthy.model.calls == 4  # research is not asked again


def test_orchestrator_stops_with_circuit_open(memory):
    transport = OfflineTransport(faults=[Fault("server_error", role="researcher", times=None)])
    client = make_client(transport=transport, max_retries=0)
    agent = Resilient(ResearcherAgent(client=client, model=PRIMARY), [Retry(5)], breaker=CircuitBreaker(2))
    result = orchestrate(memory, transport, researcher=agent).run(TOPIC, run_id="r")
    assert result.status == "circuit_open" and transport.model.calls == 2
    assert result.reason.startswith("circuit open: Researcher failed 2 time(s) in a row")
    assert memory.scoped("r").get("research") is None


def test_orchestrator_rejected_by_a_human(memory):
    transport = OfflineTransport(faults=[Fault("refusal", role="writer")])
    client = make_client(transport=transport, max_retries=0)
    agent = Resilient(WriterAgent(client=client, model=PRIMARY), [Escalate(default=REJECT)])
    result = orchestrate(memory, transport, writer=agent).run(TOPIC, run_id="r")
    assert result.status == "rejected" and memory.scoped("r").get("draft_1") is None


@pytest.mark.parametrize("press", ["edit_button", "approve_button"])
def test_interactive_escalation_stops_awaiting_a_human_then_resumes_with_the_click(memory, press):
    transport = OfflineTransport(faults=[Fault("truncate", role="writer")])
    client = make_client(transport=transport, max_retries=0)
    forms = []
    escalate = Escalate(interactive=True, show=forms.append)
    agent = Resilient(WriterAgent(client=client, model=PRIMARY), [escalate])
    orch = orchestrate(memory, transport, writer=agent)
    assert escalate.form is None  # nothing asked yet
    waiting = orch.run(TOPIC, run_id="r")
    assert waiting.status == "awaiting_human" and len(forms) == 1 and transport.model.calls == 2
    assert escalate.form is forms[0]  # the form the run waits for
    assert memory.scoped("r").get("draft_1") is None
    with pytest.raises(AwaitingHuman):  # asking again before the click sends nothing
        agent.run(escalate.waiting[0])
    assert transport.model.calls == 2
    cut_off = forms[0].draft
    forms[0].text.value = "# Vector search\n\nWritten by a person."
    getattr(forms[0], press).click()
    result = orch.run(run_id="r")
    expected = cut_off if press == "approve_button" else "# Vector search\n\nWritten by a person."
    assert cut_off.startswith("# ") and memory.scoped("r").get("draft_1") == expected
    assert agent.outcomes[0] == ("escalate:approve" if press == "approve_button" else "escalate:edit")
    assert (result.status, result.cycles, agent.outcomes[1:]) == ("approved", 1, ["ok"])
    assert transport.model.calls == 5  # research, the cut-off draft; then validate, revise, validate
    assert escalate.form is None  # its decision was used: nothing waits any more


def test_code_can_answer_the_waiting_form_with_a_default_when_nobody_clicks(memory):
    transport = OfflineTransport(faults=[Fault("truncate", role="writer")])
    escalate = Escalate(interactive=True, show=lambda form: None)
    agent = Resilient(WriterAgent(client=make_client(transport=transport, max_retries=0), model=PRIMARY), [escalate])
    orch = orchestrate(memory, transport, writer=agent)
    assert orch.run(TOPIC, run_id="r").status == "awaiting_human"
    form = escalate.form
    form.decide(Decision("approve", by="default"))  # what an unattended notebook run does
    form.reject_button.click()  # too late: the first decision stands
    assert form.decision == Decision("approve", by="default") and form.reject_button.disabled
    result = orch.run(run_id="r")
    assert (result.status, agent.outcomes) == ("approved", ["escalate:approve", "ok"])
    assert memory.scoped("r").get("draft_1") == form.draft and transport.model.calls == 5


def test_a_failing_revision_skipped_ends_at_the_revise_limit_with_the_best_draft(memory):
    transport = OfflineTransport(faults=[Fault("overloaded", call=4, times=1)])  # the 1st revision's request
    client = make_client(transport=transport, max_retries=0)
    agent = Resilient(WriterAgent(client=client, model=PRIMARY), [Skip()])
    orch = Orchestrator(memory, client=client, model=PRIMARY, progress=None, max_revision_cycles=1, writer=agent)
    result = orch.run(TOPIC, run_id="r")
    run = memory.scoped("r")
    assert run.get("draft_2") == run.get("draft_1") and agent.outcomes == ["ok", "skip"]
    assert (result.status, result.cycles, len(result.issues)) == ("max_cycles", 1, 2)
    assert result.report == run.get("draft_2") and "returning draft 2 of 2" in result.reason
    assert json.loads(run.get("issues")) == result.issues


def test_a_validator_is_never_approved_by_a_default_decision():
    from mas.agents import ValidatorAgent
    from mas.client import make_client
    from mas.failures import APPROVE, Decision, Escalate, Resilient
    from mas.offline import OfflineTransport

    validator = ValidatorAgent(client=make_client(transport=OfflineTransport(faults="fenced_json@validator*9")))
    with pytest.raises(ValueError, match="nobody reviewed"):
        Resilient(validator, [Escalate(default=APPROVE)])
    # a person approving, with a note: an approval, and the note is not turned into issues
    human = Resilient(validator, [Escalate(ask=lambda question, draft: Decision("approve", text="looks fine", by="human"))])
    verdict = human.review("- A point.", "A point.")
    assert verdict.approved and verdict.issues == []
