"""Failure handling (notebook 05): retry, skip, fall back, escalate to a human; and a circuit breaker.

    writer = Resilient(WriterAgent(client=client),
                       [Retry(1), Fallback(model="claude-haiku-4-5"), Escalate(default=APPROVE)],
                       breaker=CircuitBreaker(max_failures=3))
    Orchestrator(memory, client=client, writer=writer).run(topic)     # orchestrator.py unchanged

Two layers, in this order:
1. the SDK's own retries: every `messages.create` already retries 429, 529, 5xx, 408/409,
   timeouts and connection errors `max_retries` times with backoff (`make_client(max_retries=2)`).
   A bad request (400) or an unusable reply (a refusal, a cut-off or empty one) is not retried.
2. then these policies, tried in the order given, each on the failures it knows how to handle
   (by kind, `mas.errors.KINDS`): `Retry` the agent again (a new round of SDK retries), `Fallback`
   to another model or a simpler agent, `Skip` a step the run can live without, `Escalate` to a person.

A failed call becomes an `AgentFailure(agent, kind, message, attempts)`, recorded on the
wrapper (`.failures`); the wrapper never returns a half-result as if it were a success. When no
policy recovers, it raises `AgentFailed` (a `RunStopped`), so the orchestrator stops the run with
status "agent_failed" and the reason, resumable, with nothing half-written in memory.

While a `CircuitBreaker` is open, calls to the wrapped agent are refused with no request sent:
the policies that don't need the agent (fallback, skip, escalate) still run, and if none
recovers, `CircuitOpen` stops the run ("circuit_open").

Escalation to a person: a question and a draft in, a `Decision` out (approve, reject, or edit).
A Jupyter kernel cannot know whether someone is watching (JupyterLab with a person looks exactly
like nbval or papermill with nobody there), so `mas` does not guess; it is told: `interactive=True`
or `MAS_INTERACTIVE=1`. Unattended, the default decision answers at once (never `input()`, which
would hang). Interactive, a form is shown, and since a running cell cannot receive clicks, the run
stops as "awaiting_human"; the same `run(run_id=...)` resumes once the form is answered.

Simplified on purpose: the breaker's half-open trial comes after a *count* of refused calls
(`reset_after`), not a cool-down time, so it is deterministic and testable; production breakers
usually wait N seconds. One person, one question at a time, no timeout on the form.
"""

from __future__ import annotations

import time
import typing
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Literal

from mas.agents import VALIDATION_ATTEMPTS, is_validator
from mas.contracts import Usage, ValidationResult
from mas.errors import (
    KINDS,
    RETRYABLE,
    AgentFailed,
    AgentFailure,
    AgentReplyError,
    AwaitingHuman,
    CircuitOpen,
    HumanRejected,
    failure_of,
    kind_of,
)
from mas.prompts import tag, validate_task
from mas.settings import settings

if TYPE_CHECKING:
    from mas.widgets import ApprovalForm

Action = Literal["approve", "reject", "edit"]  # keep the draft / stop / use the edited text instead
ACTIONS: tuple[Action, ...] = typing.get_args(Action)


# ---------------------------------------------------------------------------- decisions by a person

@dataclass(frozen=True)
class Decision:
    """A human's answer to an escalation.

    >>> Decision("edit", "A better draft.")
    Decision(action='edit', text='A better draft.', by='human')
    >>> Decision("edit", "  ")
    Traceback (most recent call last):
    ...
    ValueError: an edit needs the edited text (got an empty one); to keep the draft as it is, approve it
    """

    action: Action
    text: str = ""  # the edited text (edit only)
    by: str = "human"  # "human" (a click) or "default" (nobody was asked)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown action {self.action!r}; a decision is one of {', '.join(ACTIONS)}")
        if self.action == "edit" and not self.text.strip():
            raise ValueError("an edit needs the edited text (got an empty one); to keep the draft as it is, approve it")


APPROVE = Decision("approve")
REJECT = Decision("reject")


def interactive_default(interactive: bool | None = None) -> bool:
    """Whether to show a form: the explicit argument wins, else `MAS_INTERACTIVE` (an on/off switch).

    >>> interactive_default(True), interactive_default(False)
    (True, False)
    """
    return settings().interactive if interactive is None else interactive


def show_widget(form: ApprovalForm) -> None:
    """Display the form's widget in the notebook (the default way `ask_human` shows it)."""
    from IPython.display import display

    display(form.widget)


def ask_human(question: str, draft: str = "", *, interactive: bool | None = None, default: Decision = REJECT,
              show: Callable[[ApprovalForm], Any] | None = None) -> Decision | ApprovalForm:
    """Ask a person to approve, reject or edit `draft`.

    Unattended (not `interactive`): `default` at once, marked `by="default"`; REJECT unless
    configured, so nothing unreviewed goes further by accident. Interactive: a form, shown with
    `show` (default: displayed as a widget) and returned; its `decision` is None until a click.

    >>> ask_human("Keep this draft?", "Draft.", interactive=False)
    Decision(action='reject', text='', by='default')
    >>> ask_human("Keep this draft?", "Draft.", interactive=False, default=APPROVE).action
    'approve'
    """
    if not interactive_default(interactive):
        return replace(default, by="default")
    from mas.widgets import ApprovalForm  # ipywidgets: only when someone is asked

    form = ApprovalForm(question, draft)
    (show or show_widget)(form)
    return form


@dataclass
class Step:
    """What a policy needs to know about the call it is rescuing."""

    key: str  # the task as sent: the same step asked again has the same key
    draft: str  # the text a human could approve: the failed partial reply, or the draft being revised
    call: Callable[[Any], Any]  # does the work on an agent: lambda agent: agent.run(task)
    review: bool  # a validator's review (returns a ValidationResult), not a text step
    answers: int = 1  # how many answers the agent reads per call (the validator's re-asks)


class _Failed(Exception):
    def __init__(self, failure: AgentFailure):
        self.failure = failure


@dataclass
class Retry:
    """Call the same agent again, up to `times` more calls (each one with its own SDK retries)."""

    times: int = 1
    on: tuple[str, ...] = RETRYABLE
    delay: float = 0.0  # seconds between calls; the SDK already backed off inside each call
    label = "retry"

    def __post_init__(self) -> None:
        if self.times < 1:
            raise ValueError(f"Retry(times) must be >= 1, got {self.times}")

    def recover(self, r: Resilient, step: Step, failure: AgentFailure) -> Any:
        for _ in range(self.times):
            if failure.kind not in self.on:
                break
            time.sleep(self.delay)
            try:
                return r.attempt(r.agent, step)
            except _Failed as err:
                failure = err.failure
        raise _Failed(failure)


@dataclass
class Fallback:
    """Hand the call to another agent (a simpler one, or a Resilient), or to a copy of this one on `model`."""

    agent: Any = None
    model: str | None = None
    on: tuple[str, ...] = KINDS
    label = "fallback"

    def __post_init__(self) -> None:
        if (self.agent is None) == (self.model is None):
            raise ValueError("Fallback needs exactly one of agent=... (another agent) or model=... (another model)")

    def recover(self, r: Resilient, step: Step, failure: AgentFailure) -> Any:
        return r.attempt(r.backup(self), step, primary=False)


@dataclass
class Skip:
    """Go on without this step: an optional agent's `default_text`, or, for a revision, the draft it was
    revising (validated again, so the verdict stays honest). Never the validator: a skipped review
    must not count as an approval (Resilient refuses the combination)."""

    default_text: str | None = None
    on: tuple[str, ...] = KINDS
    label = "skip"

    def recover(self, r: Resilient, step: Step, failure: AgentFailure) -> Any:
        text = self.default_text if self.default_text is not None else (tag(step.key, "draft") or "")
        if not text:  # a first draft or research with no default: nothing to go on with
            raise _Failed(failure)
        return text


@dataclass
class Escalate:
    """Ask a person (`ask_human`, or your own `ask(question, draft)`): approve the draft,
    edit it, or reject (the run stops as "rejected"). Unattended, `default` answers."""

    ask: Callable[[str, str], Decision | ApprovalForm] | None = None
    default: Decision = REJECT
    interactive: bool | None = None
    show: Callable[[ApprovalForm], Any] | None = None
    on: tuple[str, ...] = KINDS
    label = "escalate"
    # the escalation on screen: (step key, the form, the failure it asks about)
    waiting: tuple[str, ApprovalForm, AgentFailure] | None = field(default=None, repr=False)

    @property
    def form(self) -> ApprovalForm | None:
        """The form the stopped run waits for; None when nothing waits (not asked yet, or its decision used)."""
        return self.waiting[1] if self.waiting is not None else None

    def answer_for(self, step: Step) -> tuple[Decision, AgentFailure] | None:
        """The person's decision on an earlier escalation of this very step, once given."""
        if self.waiting is None or self.waiting[0] != step.key:
            return None
        _, form, failure = self.waiting
        if form.decision is None:
            raise AwaitingHuman(f"still waiting for a decision on the form about {failure.agent} ({failure.kind})")
        self.waiting, step.draft = None, form.draft  # approving keeps the draft the form showed
        return form.decision, failure

    def recover(self, r: Resilient, step: Step, failure: AgentFailure) -> Any:
        what = "write the issues, one per line" if step.review else "edit it"
        question = f"{failure}. Approve the draft as it is, {what}, or reject it (the run stops, resumable)."
        if self.ask is not None:
            answer = self.ask(question, step.draft)
        else:
            answer = ask_human(question, step.draft, interactive=self.interactive, default=self.default, show=self.show)
        if not isinstance(answer, Decision):  # a form on screen (mas.widgets.ApprovalForm)
            self.waiting = (step.key, answer, failure)
            raise AwaitingHuman(f"{failure.agent} failed ({failure.kind}): waiting for a person to answer the form; "
                                "then run the step again (a run: orchestrator.run(run_id=...))")
        return r.apply(answer, failure, step)


# ---------------------------------------------------------------------------- the circuit breaker

class CircuitBreaker:
    """Opens after `max_failures` consecutive failures; refuses calls while open; closes on a success.

    With `reset_after=k`, after k refused calls the next one is let through as a trial
    ("half_open"): a success closes the circuit, a failure opens it again for another k.

    >>> breaker, failed = CircuitBreaker(max_failures=2), AgentFailure("Writer", "overloaded", "529", 3)
    >>> breaker.record(failed); breaker.state
    'closed'
    >>> breaker.record(failed); breaker.state, breaker.allow(), breaker.refused
    ('open', False, 1)
    >>> breaker.record(None); breaker.state, breaker.allow()
    ('closed', True)
    """

    def __init__(self, max_failures: int = 3, *, reset_after: int | None = None):
        if max_failures < 1 or (reset_after is not None and reset_after < 1):
            raise ValueError(f"max_failures and reset_after must be >= 1, got {max_failures}, {reset_after}")
        self.max_failures, self.reset_after = max_failures, reset_after
        self.failures = 0  # consecutive
        self.refused = 0  # calls refused since it opened (or since the last trial)
        self.last: AgentFailure | None = None

    @property
    def state(self) -> str:
        if self.failures < self.max_failures:
            return "closed"
        return "half_open" if self.reset_after is not None and self.refused >= self.reset_after else "open"

    def allow(self) -> bool:
        """May the next call go through? (Counts it as refused when not.)"""
        state = self.state
        if state == "open":
            self.refused += 1
        elif state == "half_open":
            self.refused = 0  # one trial; its failure re-opens the circuit for another `reset_after`
        return state != "open"

    def record(self, failure: AgentFailure | None) -> None:
        if failure is None:
            self.failures, self.refused, self.last = 0, 0, None
        else:
            self.failures, self.last = self.failures + 1, failure

    def reason(self, agent: str) -> str:
        trial = f"; a trial call goes through after {self.reset_after} refused" if self.reset_after else ""
        last = f" (last: {self.last.kind}: {self.last.message})" if self.last else ""
        return (f"circuit open: {agent} failed {self.failures} time(s) in a row{last}; "
                f"calls are refused without a request{trial}")


# ---------------------------------------------------------------------------- the wrapper

class Resilient:
    """An agent wrapped in failure policies; it looks like an agent (`run`, `review`, `reset`, `usage`)."""

    def __init__(self, agent: Any, policies: list[Any] | None = None, breaker: CircuitBreaker | None = None):
        self.agent, self.policies, self.breaker = agent, list(policies or []), breaker
        if is_validator(agent) and any(isinstance(p, Skip) for p in self.policies):
            raise ValueError(f"{agent.name}: a validator's review can't be skipped (a skipped review is not an "
                             "approval); use Retry, Fallback or Escalate")
        if is_validator(agent) and any(isinstance(p, Escalate) and p.default.action == "approve"
                                       for p in self.policies):
            raise ValueError(f"{agent.name}: Escalate(default=APPROVE) on a validator would approve a draft that "
                             "nobody reviewed whenever no person is there; leave the default (reject) or edit")
        for p in self.policies:
            if isinstance(p, Fallback) and p.model is not None and not hasattr(agent, "with_model"):
                raise ValueError("Fallback(model=...) copies an agent onto another model (a mas BaseAgent's "
                                 "with_model); for this one pass Fallback(agent=...)")
            if isinstance(p, Fallback) and p.agent is not None and is_validator(agent) and not is_validator(p.agent):
                raise ValueError("a validator's fallback must have .review(research, draft, attempts) too")
        self.failures: list[AgentFailure] = []
        self.outcomes: list[str] = []  # per call: "ok", "retry", "fallback", "skip", "escalate:approve", ...
        self.answered_by = ""  # the name of the agent whose answer was used last ("human" for an escalation)
        self._backups: dict[int, Any] = {}

    name = property(lambda self: self.agent.name)
    role = property(lambda self: self.agent.role)

    @property
    def usage(self) -> Usage:
        """The wrapped agent's usage plus its fallbacks' (the orchestrator totals it per step)."""
        return sum((h.usage for h in self._helpers() if isinstance(h.usage, Usage)), self.agent.usage.model_copy())

    def reset(self) -> None:
        for agent in (self.agent, *self._helpers()):
            if hasattr(agent, "reset"):
                agent.reset()

    def _helpers(self) -> list[Any]:
        """The fallback agents: the copies on other models made so far, and the ones given."""
        given = [p.agent for p in self.policies if isinstance(p, Fallback) and p.agent is not None]
        return [*self._backups.values(), *given]

    def run(self, task: str) -> str:
        return self._guard(Step(task, tag(task, "draft") or "", lambda agent: agent.run(task), review=False))

    def review(self, research: str, draft: str, attempts: int = VALIDATION_ATTEMPTS) -> ValidationResult:
        return self._guard(Step(validate_task(research, draft), draft,
                                lambda agent: agent.review(research, draft, attempts), review=True, answers=attempts))

    def _guard(self, step: Step) -> Any:
        for p in self.policies:  # a person answered the form this very step put up: use that, call no model
            if isinstance(p, Escalate) and (answered := p.answer_for(step)) is not None:
                return self.apply(*answered, step)
        first, tried = len(self.failures), []
        try:
            result = self.attempt(self.agent, step)
            self.outcomes.append("ok")
            return result
        except _Failed as err:
            failure = err.failure
        for policy in self.policies:
            if failure.kind not in policy.on:
                continue
            tried.append(policy.label)
            try:
                result = policy.recover(self, step, failure)
            except _Failed as err:
                failure = err.failure
                continue
            if not isinstance(policy, Escalate):  # an escalation records the human's decision itself
                self.outcomes.append(policy.label)
            return result
        self.outcomes.append("failed")
        failures = self.failures[first:]
        if (opened := next((f for f in reversed(failures) if f.kind == "circuit_open"), None)) is not None:
            raise CircuitOpen(opened, failures, why=opened.message)
        raise AgentFailed(failure, failures, why=f"{failure}; no failure policy recovered "
                                                 f"(tried: {', '.join(tried) or 'none'})")

    def attempt(self, agent: Any, step: Step, primary: bool = True) -> Any:
        """One call of `step` on `agent` (the wrapped one when `primary`, which the breaker guards);
        a failure the policies may handle is recorded and raised as `_Failed`, anything else passes."""
        name, breaker = agent.name, (self.breaker if primary else None)
        if breaker is not None and not breaker.allow():
            failure = AgentFailure(name, "circuit_open", breaker.reason(name), attempts=0)
            self.failures.append(failure)
            raise _Failed(failure)
        try:
            result = step.call(agent)
        except Exception as err:
            kind = kind_of(err)
            if kind is None:
                raise  # a bug, a budget, a human's "no": not ours to absorb
            failure = failure_of(name, err, kind, step.answers)
            if isinstance(err, AgentReplyError) and kind == "max_tokens" and not step.review and err.reply.strip():
                step.draft = err.reply  # the cut-off reply is what a human can approve or finish
            self.failures.append(failure)
            if breaker is not None:
                breaker.record(failure)
            raise _Failed(failure) from err
        if breaker is not None:
            breaker.record(None)
        self.answered_by = name
        return result

    def backup(self, policy: Fallback) -> Any:
        """The agent a `Fallback` hands the call to: the one given, or this agent on another model
        (made once, so its usage adds up), carrying on the same conversation."""
        if policy.agent is not None:
            return policy.agent
        backup = self._backups.get(id(policy))
        if backup is None:
            backup = self._backups[id(policy)] = self.agent.with_model(policy.model)
        backup.history = list(getattr(self.agent, "history", []))
        return backup

    def apply(self, decision: Decision, failure: AgentFailure, step: Step) -> Any:
        """What a person's (or the default's) decision on `step` gives: a text, a verdict, or a stop."""
        self.outcomes.append(f"escalate:{decision.action}")
        self.answered_by = "human" if decision.by == "human" else "default decision"
        who = "a human" if decision.by == "human" else "the default decision (nobody was asked)"
        if decision.action == "reject":
            raise HumanRejected(failure, why=f"rejected by {who} after: {failure}")
        if step.review:  # the person is the validator now: approve, or the issues to send back
            if decision.action == "approve":
                if decision.by != "human":
                    raise AgentFailed(failure,
                                      why=f"nobody reviewed the draft, and a default cannot approve it: {failure}")
                return ValidationResult(issues=[], approved=True)  # text sent with an approval is not an issue
            issues = [line.strip("-* ").strip() for line in decision.text.splitlines() if line.strip("-* ").strip()]
            return ValidationResult(issues=issues or ["rejected by a human reviewer"], approved=False)
        if decision.action == "edit":
            return decision.text
        if not step.draft.strip():
            raise AgentFailed(failure, why=f"approved by {who}, but there is no draft to keep: {failure}")
        return step.draft
