"""Progress lines: each SDK retry and each re-ask, on stderr as it happens, so a fault demo is seen.
(And `note`: a line said once, such as an optional endpoint that a server does not have.)

    [SDK] 529 overloaded: retrying (attempt 2 of 3)
    [SDK] 500 server error: giving up after attempt 3 of 3
    [mas] Validator: not valid JSON (it starts with '```json'; ...): re-asking (attempt 2 of 3)

One line for each failed attempt that is tried again or would have been: an HTTP status the SDK
retries (408, 409, 429, 5xx, or what `x-should-retry` says), a timeout or a dropped connection, and
an answer that `BaseAgent.ask` re-asks. A 400 (never retried) gets no line: its exception follows at
once. `MAS_PROGRESS=0` turns the lines off (an on/off switch, on by default).

The SDK's lines come from `RetryLines`, an `anthropic.Middleware` that `mas.make_client` gives every
client it builds, live or offline: the SDK runs its middleware once per HTTP attempt, inside its own
retry loop, and tells it the retries taken so far; a timeout reaches it as the `APITimeoutError` the
SDK will retry. (httpx2's event hooks see each attempt too, but a timeout gives them no response, so
a timed-out last attempt would go unsaid, and a live client would need an HTTP client of mas's making.)

Simplified on purpose: the total of attempts is `max_retries + 1` of the client `make_client` built (or
of one request's own `max_retries`); a `client.with_options(max_retries=...)` copy shares its parent's
middleware, so its lines count against the parent's total. The lines hold no time, no id, no URL, so a
notebook's saved output stays the same on every run; the stdout written before a line is flushed first,
so the lines stand where they happened among a program's own prints.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import anthropic
from anthropic import Middleware

from mas.redact import redact_text
from mas.settings import settings

REASON_CHARS = 100  # a re-ask's reason is cut to about this much: one line, not the parser's whole message
STATUS_NAMES = {400: "bad request", 401: "unauthorized", 403: "forbidden", 404: "not found", 408: "request timeout",
                409: "conflict", 413: "request too large", 429: "rate limited", 500: "server error",
                502: "bad gateway", 503: "service unavailable", 504: "gateway timeout", 529: "overloaded"}
_lock = threading.Lock()  # parallel agents: one line is never cut into by another's


def say(line: str) -> None:
    """Write one progress line to stderr now (nothing when MAS_PROGRESS is off)."""
    if not settings().progress:
        return
    with _lock:
        # subtle: looked up at each line, not at import (a notebook's kernel and pytest's capsys swap them)
        sys.stdout.flush()
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


_noted: set[str] = set()


def note(line: str) -> None:
    """Write a note to stderr once per process (an optional endpoint a server lacks, say: the same note at
    every call would drown the lines that matter). Said even with MAS_PROGRESS off: it is not progress, it
    says that a figure is an estimate."""
    with _lock:
        if line in _noted:
            return
        _noted.add(line)
        sys.stdout.flush()
        sys.stderr.write(f"mas: note: {line}\n")
        sys.stderr.flush()


def attempt_line(what: str, attempt: int, attempts: int, again: str = "retrying") -> str:
    """The line for failed attempt `attempt` of `attempts`: tried again, or the last one.

    >>> attempt_line("[SDK] 529 overloaded", 1, 3)
    '[SDK] 529 overloaded: retrying (attempt 2 of 3)'
    >>> attempt_line("[SDK] 529 overloaded", 3, 3)
    '[SDK] 529 overloaded: giving up after attempt 3 of 3'
    """
    if attempt < attempts:
        return f"{what}: {again} (attempt {attempt + 1} of {attempts})"
    return f"{what}: giving up after attempt {attempt} of {attempts}"


def shorten(reason: str, limit: int = REASON_CHARS) -> str:
    """A reason as a short part of one line: its first line, credentials redacted; when too long, its
    details after the last ": " dropped (a parser's own message, say), then cut at a word.

    >>> shorten("not valid JSON (it starts with '```json'; send the object alone, without code fences or prose): "
    ...         "Invalid JSON: expected value at line 1 column 1")
    "not valid JSON (it starts with '```json'; send the object alone, without code fences or prose)"
    >>> shorten("the reply was empty"), shorten("word " * 30, limit=22)
    ('the reply was empty', 'word word word word...')
    """
    text = " ".join(redact_text((reason.splitlines() or [""])[0]).split())
    while len(text) > limit and ": " in text.strip(": "):
        text = text.rsplit(": ", 1)[0]
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;:") + "..."


def reask(agent: str, reason: str, attempt: int, attempts: int) -> None:
    """Say that answer `attempt` of `attempts` could not be used: re-asked, or the last one."""
    say(attempt_line(f"[mas] {agent}: {shorten(reason)}", attempt, attempts, again="re-asking"))


def failure_name(failure: Any) -> str:
    """What failed, in a few words: an HTTP status with its name, a timeout, a connection error.

    >>> failure_name(529), failure_name(418)
    ('529 overloaded', '418 error')
    """
    if isinstance(failure, anthropic.APITimeoutError):
        return "timeout"
    if isinstance(failure, anthropic.APIConnectionError):
        return "connection error"
    return f"{failure} {STATUS_NAMES.get(failure, 'server error' if failure >= 500 else 'error')}"


def sdk_retries(status: int, headers: Any) -> bool:
    """Whether the SDK retries a response with this status (its rule, `_should_retry`, as documented).

    >>> sdk_retries(529, {}), sdk_retries(400, {}), sdk_retries(500, {"x-should-retry": "false"})
    (True, False, False)
    """
    said = headers.get("x-should-retry")
    if said in ("true", "false"):
        return said == "true"
    return status in (408, 409, 429) or status >= 500


class RetryLines(Middleware):
    """The SDK's middleware that says each failed attempt the SDK retries (or would, with retries left)."""

    def __init__(self, max_retries: int):
        self.max_retries = max_retries

    def handle(self, request: Any, call_next: Any) -> Any:
        try:
            response = call_next(request)
        except anthropic.APIError as err:
            self._failed(request, err)
            raise
        self._answered(request, response)
        return response

    async def handle_async(self, request: Any, call_next: Any) -> Any:
        try:
            response = await call_next(request)
        except anthropic.APIError as err:
            self._failed(request, err)
            raise
        self._answered(request, response)
        return response

    def _answered(self, request: Any, response: Any) -> None:
        status = getattr(response, "status_code", 200)  # a later middleware may answer with a plain value
        if status >= 400 and sdk_retries(status, response.headers):
            self._say(request, failure_name(status))

    def _failed(self, request: Any, err: anthropic.APIError) -> None:
        if isinstance(err, anthropic.APIConnectionError):  # a timeout is one
            self._say(request, failure_name(err))
        elif isinstance(err, anthropic.APIStatusError) and sdk_retries(err.status_code, err.response.headers):
            self._say(request, failure_name(err.status_code))

    def _say(self, request: Any, what: str) -> None:
        own = request.max_retries  # one request's own max_retries, else the client's
        attempts = (own if isinstance(own, int) else self.max_retries) + 1
        attempt = request.retries_taken + 1
        say(attempt_line(f"[SDK] {what}", attempt, max(attempts, attempt)))
