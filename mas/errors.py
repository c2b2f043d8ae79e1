"""What can go wrong, in one place: every exception of `mas`, one vocabulary of failure kinds, one line each.

    try:
        writer.run(task)
    except Exception as err:
        kind = kind_of(err)                        # "overloaded", "refusal", ... or None for a bug
        print(one_line(err))                       # "OverloadedError 529: Overloaded"

Two kinds of error, as in the libraries this course learns from:
- a *failure* the system can act on: an API error after the SDK's own retries, or a reply that
  cannot be used (`AgentReplyError`, `ReplyError`). It has a kind from KINDS; failure policies,
  parallel runs, tracing and the offline fault plan all speak that vocabulary, never exception
  classes or message text.
- a *stop* on purpose (`RunStopped`: a budget, a depth limit, an open circuit, a person's "no"),
  or a developer's misuse (`ValueError`, `TypeError` with the fix in the message): no kind, so no
  policy may absorb it. A stopped run ends with the stop's `status` and its one line as the reason.

Exceptions carry their facts as fields (agent, kind, reason, attempts), never as text to be
parsed back. Every line made here goes through `mas.redact.redact_text`: an API error whose body echoes the
request's headers (a proxy's, or an `x-api-key` quoted in a message) carries no key into memory, a trace, a
recording or the screen. Simplified on purpose: the kinds are coarse (every 5xx but 529 is "server_error").
"""

from __future__ import annotations

import json
import typing
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal

import anthropic
import httpx2

from mas.redact import redact_text, redact_url

FailureKind = Literal["rate_limit", "overloaded", "server_error", "timeout", "connection", "bad_request",
                      "refusal", "max_tokens", "empty", "invalid", "circuit_open"]
KINDS: tuple[FailureKind, ...] = typing.get_args(FailureKind)
# worth calling again: transient on the API's side, or a model that may answer better next time
RETRYABLE: tuple[FailureKind, ...] = ("rate_limit", "overloaded", "server_error", "timeout", "connection", "empty",
                                      "invalid")
# what each fault of the offline fault plan (mas.offline.faults) makes happen, in this vocabulary
FAULTS: dict[str, FailureKind] = {
    "rate_limit": "rate_limit", "overloaded": "overloaded", "server_error": "server_error",
    "bad_request": "bad_request", "timeout": "timeout", "refusal": "refusal", "empty": "empty",
    "truncate": "max_tokens", "malformed_json": "invalid", "fenced_json": "invalid", "prose_json": "invalid",
}


# ---------------------------------------------------------------------------- unusable replies

class AgentReplyError(RuntimeError):
    """A reply an agent cannot use: `kind` is empty | refusal | max_tokens | invalid."""

    def __init__(self, agent: str, kind: FailureKind, reason: str, reply: str = ""):
        super().__init__(f"{agent}: {reason}")
        self.agent, self.kind, self.reason, self.reply = agent, kind, reason, reply


class ReplyError(ValueError):
    """A reply that does not fit its contract; `reason` says why in one line."""

    def __init__(self, reason: str, reply: str = ""):
        super().__init__(reason)
        self.reason, self.reply = reason, reply


class ContractError(RuntimeError):
    """No answer fitted the contract within the allowed attempts; `reasons` holds each one's, and
    `kinds` what each was: "invalid" (it did not fit), or "refusal", "max_tokens", "empty"."""

    def __init__(self, schema: type, reasons: list[str], kinds: list[FailureKind] | None = None):
        super().__init__(f"no valid {schema.__name__} after {len(reasons)} answers; last: {reasons[-1]}")
        self.schema, self.reasons = schema, reasons
        self.kinds: list[FailureKind] = kinds if kinds is not None else ["invalid"] * len(reasons)


# ---------------------------------------------------------------------------- stops on purpose

class RunStopped(RuntimeError):
    """A limit or policy stopped the work on purpose; the orchestrator ends the run with `status`
    and this message as the reason, resumable later."""

    status: ClassVar[str] = "stopped"


@dataclass(frozen=True)
class AgentFailure:
    """One failed call of one agent, as data."""

    agent: str  # the agent's name, e.g. "Writer" or "Writer (claude-haiku-4-5)" for a fallback
    kind: FailureKind
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
    """A person (or the default decision) said no."""

    status = "rejected"


class CircuitOpen(AgentFailed):
    """The circuit breaker refused the call, and no policy that needs no agent recovered."""

    status = "circuit_open"


class AwaitingHuman(RunStopped):
    """A form is on screen (a running cell can't wait for a click); answer it, then run the same
    step again, or the whole run with `run(run_id=...)`."""

    status = "awaiting_human"


class AwaitingBatch(RunStopped, anthropic.AnthropicError):
    """The run's next request waits for a batch (`mas.batches`): the run stops as `awaiting_batch` until the
    batch holding it is read. Raised under the SDK, so it is an SDK error type too (neither wrapped nor
    retried). The step it stopped is asked again whole once the answer is in: its calls are counted then."""

    status = "awaiting_batch"


class BudgetExceeded(RunStopped):
    """A call refused before it was sent, because its worst case would pass a limit.

    `limit` is "calls", "tokens" or "cost"; `maximum` the limit; `spent` and `reserved` (by calls
    in flight) what was used before it; `needed` what this call could use (None: price unknown).
    """

    status = "budget_exceeded"

    def __init__(self, message: str, *, limit: str, maximum: float, spent: float, reserved: float,
                 needed: float | None, agent: str):
        super().__init__(message)
        self.limit, self.maximum, self.spent, self.reserved, self.needed, self.agent = (
            limit, maximum, spent, reserved, needed, agent)


class NoResearch(RunStopped):
    """The researcher knows nothing of the topic: nothing is written, let alone approved, from that."""

    status = "no_research"


class DepthLimitExceeded(RunStopped):
    """A team tree deeper than `max_depth`, refused before any of it ran."""

    status = "depth_exceeded"


class ParallelResearchFailed(RunStopped):
    """Fewer angles than `min_angles` gave research; the orchestrator stops the run as failed."""

    status = "failed"

    def __init__(self, message: str, errors: list[Any]):
        super().__init__(message)
        self.errors = errors  # the angles' SubtaskErrors


# ---------------------------------------------------------------------------- the parts around

class MemoryClosedError(RuntimeError):
    """The memory was used after `close()` (or in a process it was not opened in)."""


class MemoryUnavailableError(RuntimeError):
    """The memory's server cannot be reached."""


class LiveClientForbidden(RuntimeError):
    """A live client was asked for while the kill switch (MAS_NO_LIVE=1) is on."""


class OfflineOnlyOptions(ValueError):
    """A live client was given options that only the offline model has: `options` names them (`faults`,
    `latency`, `min_cache_tokens`), `why` says what made the client live. Refused rather than dropped: a demo
    of a fault, a simulated delay or a lowered cache minimum would print the opposite of what it says."""

    def __init__(self, options: tuple[str, ...], why: str):
        self.options, self.why = options, why
        given = ", ".join(f"{name}=..." for name in options)
        one = len(options) == 1
        super().__init__(f"make_client({given}): {', '.join(options)} {'is an option' if one else 'are options'} of "
                         f"the offline model, and this client is live ({why}): Claude has no fault plan, no "
                         "simulated latency and its own cache minimum. Ask for the offline model explicitly: "
                         f"make_client(offline=True, {given}); or leave {'it' if one else 'them'} out to use Claude")


class SettingsError(ValueError):
    """A switch with a value it does not accept; the message names the variable and what it takes."""

    def __init__(self, variable: str, value: str, accepts: str):
        value = redact_text(value)  # a URL's password, a key: a bad value is shown, never its secret
        self.variable, self.value, self.accepts = variable, value, accepts
        super().__init__(f"{variable}={value!r} is not valid: it accepts {accepts} (or leave it empty)")


class RunBusy(RuntimeError):
    """Another process holds the run's lease (`holder`): this one does not touch the run."""

    def __init__(self, message: str, holder: str):
        super().__init__(message)
        self.holder = holder


class MissingExtra(ImportError):
    """An optional package is not installed; `fix` says what installs it."""

    def __init__(self, package: str, needed_by: str, extra: str, fix: str):
        self.package, self.needed_by, self.extra, self.fix = package, needed_by, extra, fix
        super().__init__(f"{needed_by} needs {package}, which is not installed: {fix}")


class RecordingNotWritten(anthropic.APIError):
    """The recording's file could not be written (a full disk, a file made unwritable): `path`, the OSError
    `cause`, and whether the request was `sent` (its reply came back, not recorded) or refused unsent after an
    earlier failure. An SDK error type but no connection error, so the SDK neither wraps nor retries it, and no
    failure policy absorbs it: a call that succeeded (billed, live) is not sent again; the run stops with this line."""

    def __init__(self, path: str, cause: OSError, request: Any, *, sent: bool):
        self.path, self.cause, self.sent = path, cause, sent
        what = ("the reply came back but is not recorded, so it is not asked for again" if sent
                else "this request was not sent, as its reply could not be recorded either")
        super().__init__(f"cannot write the recording {path} ({cause.strerror or type(cause).__name__}): {what}; "
                         "free some space or point MAS_RECORD (or record_client's path) at a writable file, then "
                         "run again", request, body=None)


# ---------------------------------------------------------------------------- reading an error

def kind_of(err: BaseException) -> FailureKind | None:
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
    if isinstance(err, (ReplyError, ContractError, anthropic.APIResponseValidationError)):
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


def failure_of(agent: str, err: BaseException, kind: FailureKind, answers: int = 1) -> AgentFailure:
    """The structured record of an error. An API error's attempts are counted by the SDK itself:
    every request carries `x-stainless-retry-count`, the retries that preceded it."""
    if isinstance(err, AgentFailed):  # a nested Resilient's record, under this wrapper's name for it
        return replace(err.failure, agent=agent)
    if isinstance(err, anthropic.APIError):
        attempts = int(err.request.headers.get("x-stainless-retry-count", "0")) + 1
    else:
        attempts = answers if kind == "invalid" else 1  # a reply came back; the validator read `answers` of them
    return AgentFailure(agent, kind, one_line(err) if isinstance(err, anthropic.APIError) else reason_of(err),
                        attempts)


def reason_of(err: BaseException) -> str:
    """What went wrong, without who: an agent error's `reason`, else its one line.

    >>> reason_of(AgentReplyError("Writer", "empty", "the reply had no text"))
    'the reply had no text'
    """
    reason = getattr(err, "reason", None)
    return redact_text((reason.splitlines() or [""])[0]) if isinstance(reason, str) and reason else one_line(err)


def not_served(err: anthropic.NotFoundError, instead: str) -> str:
    """The one line for a 404 from an optional endpoint (`count_tokens`, the Models API), with what is done
    `instead`: which endpoint, which server (its URL redacted), so that a gateway without it is a note, not a
    traceback. A 404 whose message names the model asked for is about the model, and says so.

    >>> import httpx2
    >>> req = httpx2.Request("POST", "http://gw.example:8000/v1/messages/count_tokens", json={"model": "m"})
    >>> not_served(anthropic.NotFoundError("Not Found", response=httpx2.Response(404, request=req), body=None),
    ...            "counting locally instead")
    'POST /v1/messages/count_tokens is not served by http://gw.example:8000 (404): counting locally instead'
    >>> body = {"type": "error", "error": {"type": "not_found_error", "message": "model: m"}}
    >>> not_served(anthropic.NotFoundError("x", response=httpx2.Response(404, request=req), body=body), "so?")
    'POST /v1/messages/count_tokens at http://gw.example:8000: NotFoundError 404: model: m: so?'
    """
    request = err.request
    path = request.url.path
    path = path[path.find("/v1/"):] if "/v1/" in path else path  # the endpoint, after a gateway's own prefix
    url = str(request.url.copy_with(query=None))
    base = redact_url(url[: -len(path)] if url.endswith(path) else url)
    from mas.settings import settings  # here, not at the top: mas.settings imports this module

    configured = settings().base_url
    if configured and redact_url(configured.rstrip("/")) == base:
        base = f"ANTHROPIC_BASE_URL={base}"
    if names_model(err):
        return f"{request.method} {path} at {base}: {one_line(err)}: {instead}"
    return f"{request.method} {path} is not served by {base} (404): {instead}"


def names_model(err: anthropic.APIStatusError) -> bool:
    """Whether an API error's message names the model its request asked for (a 404 about the model, not
    about the endpoint: the API says "model: claude-..." when it does not serve a model)."""
    try:
        model = json.loads(err.request.content or b"{}").get("model")
    except (ValueError, AttributeError, httpx2.RequestNotRead):
        model = None
    said = f"{getattr(err, 'api_message', None) or ''} {err.message}"
    return isinstance(model, str) and bool(model) and model in said


def one_line(err: BaseException) -> str:
    """An error as one readable line: for an API error, its class, HTTP status and the API's own
    message (not the raw error body the SDK puts in `str(err)`); for any other, its first line. Credentials in
    it are redacted (`mas.redact.redact_text`).

    >>> import httpx2
    >>> req = httpx2.Request("POST", "https://api.invalid/v1/messages")
    >>> body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    >>> one_line(anthropic.OverloadedError(f"Error code: 529 - {body}", body=body,
    ...                                    response=httpx2.Response(529, request=req)))
    'OverloadedError 529: Overloaded'
    >>> one_line(anthropic.APIConnectionError(request=req)), one_line(ValueError("first\\nsecond"))
    ('APIConnectionError: Connection error.', 'first')
    >>> echo = {"type": "error", "error": {"type": "authentication_error", "message": "x-api-key: fake-key-0000"}}
    >>> one_line(anthropic.AuthenticationError(f"Error code: 401 - {echo}", body=echo,
    ...                                        response=httpx2.Response(401, request=req)))
    'AuthenticationError 401: x-api-key: ***'
    """
    if isinstance(err, anthropic.APIError):
        status = f" {err.status_code}" if isinstance(err, anthropic.APIStatusError) else ""
        text = f"{type(err).__name__}{status}: {getattr(err, 'api_message', None) or err.message}"
    else:
        text = str(err) or type(err).__name__
    return redact_text((text.splitlines() or [""])[0])
