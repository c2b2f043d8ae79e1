"""What went wrong in an agent call, as data: a kind from a short list, and one readable line.

    try:
        writer.run(task)
    except Exception as err:
        kind = kind_of(err)                       # "overloaded", "refusal", ... or None for a bug
        failure = failure_of("Writer", err, kind)  # AgentFailure(agent, kind, message, attempts)

Every error an agent call can end in, the SDK's (after its own retries) or a bad reply's
(`AgentReplyError`, `ReplyError`), maps to one of KINDS; the failure policies of `mas.failures`
choose by kind, never by exception class or message. Anything else (a bug, a budget or other
`RunStopped`, a human's rejection) has no kind: no policy may absorb it.

Separate from `mas.failures` because classifying a failure is one idea and recovering from it
another: the circuit breaker, the orchestrator's stop reason and the parallel runner's
`SubtaskError` need the first without the policies. `mas.failures` re-exports everything here.

Simplified on purpose: the kinds are coarse (every 5xx but 529 is "server_error"), and a message
is the first line only: the API's own message, never the raw error body the SDK puts in `str(err)`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import anthropic

from mas.agents import AgentReplyError
from mas.hooks import RunStopped
from mas.schemas import ReplyError

KINDS = ("rate_limit", "overloaded", "server_error", "timeout", "connection", "bad_request",
         "refusal", "max_tokens", "empty", "invalid", "circuit_open")
# worth calling again: transient on the API's side, or a model that may answer better next time
RETRYABLE = ("rate_limit", "overloaded", "server_error", "timeout", "connection", "empty", "invalid")


@dataclass(frozen=True)
class AgentFailure:
    """One failed call of one agent, as data."""

    agent: str  # the agent's name, e.g. "Writer" or "Writer (claude-haiku-4-5)" for a fallback
    kind: str  # one of KINDS
    message: str  # one line: what went wrong
    attempts: int  # API errors: requests the SDK sent (1 + its own retries); bad replies: answers read; 0: refused

    def __str__(self) -> str:
        return f"{self.agent}: {self.kind} after {self.attempts} attempt(s): {self.message}"


class AgentFailed(RunStopped):
    """Every policy was tried and none recovered; `failure` is the last one, `failures` all of this call."""

    status = "agent_failed"

    def __init__(self, failure: AgentFailure, failures: list[AgentFailure] | None = None, why: str = ""):
        self.failure, self.failures = failure, list(failures or [failure])
        super().__init__(why or f"{failure}; no failure policy recovered")


class HumanRejected(AgentFailed):
    status = "rejected"


def kind_of(err: BaseException) -> str | None:
    """The failure kind of an error from an agent call; None for what no policy should absorb
    (a bug, a budget or other `RunStopped`, a human's rejection).

    >>> import httpx2
    >>> req = httpx2.Request("POST", "https://api.invalid/v1/messages")
    >>> kind_of(anthropic.APITimeoutError(req))
    'timeout'
    >>> kind_of(anthropic.OverloadedError("busy", response=httpx2.Response(529, request=req), body=None))
    'overloaded'
    >>> kind_of(anthropic.BadRequestError("no", response=httpx2.Response(400, request=req), body=None))
    'bad_request'
    >>> kind_of(KeyError("a bug")) is None
    True
    """
    if isinstance(err, AgentReplyError):
        return err.kind
    if isinstance(err, HumanRejected):
        return None
    if isinstance(err, AgentFailed):  # a nested Resilient (say, as a fallback) that gave up
        return err.failure.kind
    if isinstance(err, (ReplyError, anthropic.APIResponseValidationError)):
        return "invalid"
    if isinstance(err, anthropic.APITimeoutError):  # before its parent, APIConnectionError
        return "timeout"
    if isinstance(err, anthropic.APIConnectionError):
        return "connection"
    if isinstance(err, anthropic.APIStatusError):
        code = err.status_code
        return ("rate_limit" if code == 429 else "overloaded" if code == 529 else "timeout" if code == 408
                else "server_error" if code >= 500 else "bad_request")
    return None


def failure_of(agent: str, err: BaseException, kind: str, answers: int = 1) -> AgentFailure:
    """The structured record of an error. An API error's attempts are counted by the SDK itself:
    every request carries `x-stainless-retry-count`, the retries that preceded it."""
    if isinstance(err, AgentFailed):  # a nested Resilient's record, under this wrapper's name for it
        return dataclasses.replace(err.failure, agent=agent)
    if isinstance(err, anthropic.APIError):
        attempts = int(err.request.headers.get("x-stainless-retry-count", "0")) + 1
        message = one_line(err)
    else:
        attempts = answers if kind == "invalid" else 1  # a reply came back; the validator read `answers` of them
        message = str(err)
        if isinstance(err, AgentReplyError) and message.startswith(f"{err.agent}: "):
            message = message[len(err.agent) + 2:]
    return AgentFailure(agent, kind, (message.splitlines() or [kind])[0], attempts)


def one_line(err: BaseException) -> str:
    """An error as one readable line: for an API error, its class, HTTP status and the API's own
    message (not the raw error body the SDK puts in `str(err)`); for any other, its first line.

    >>> import httpx2
    >>> req = httpx2.Request("POST", "https://api.invalid/v1/messages")
    >>> body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    >>> one_line(anthropic.OverloadedError(f"Error code: 529 - {body}", body=body,
    ...                                    response=httpx2.Response(529, request=req)))
    'OverloadedError 529: Overloaded'
    >>> one_line(anthropic.APIConnectionError(request=req)), one_line(ValueError("first\\nsecond"))
    ('APIConnectionError: Connection error.', 'first')
    """
    if isinstance(err, anthropic.APIError):
        status = f" {err.status_code}" if isinstance(err, anthropic.APIStatusError) else ""
        text = f"{type(err).__name__}{status}: {getattr(err, 'api_message', None) or err.message}"
    else:
        text = str(err)
    return (text.splitlines() or [""])[0]
