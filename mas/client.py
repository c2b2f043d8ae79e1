"""Choosing the client: live Claude or the offline model, behind the same real SDK.

Agents never build a client themselves; they take one. `make_client()` decides which:

- `ANTHROPIC_API_KEY` set (in the environment, or in a `.env` that python-dotenv finds)
  -> a live `anthropic.Anthropic`, honouring `ANTHROPIC_BASE_URL` exactly as the SDK does;
- no key, or `MAS_OFFLINE=1` -> the same `anthropic.Anthropic` class, with the offline
  model plugged in underneath as its HTTP transport, so request building, response parsing,
  retries and streaming are the SDK's own code in both cases.

Simplified on purpose: one model for every agent (`MAS_MODEL`), and explicit limits
(`MAS_TIMEOUT`, `MAS_MAX_RETRIES`) instead of the SDK's 10-minute default timeout.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

import anthropic
import httpx2
from anthropic.types import Message

from mas.settings import Settings, settings

OFFLINE_BASE_URL = "https://offline.mas.invalid"  # never resolved: the offline transport answers first
OFFLINE_API_KEY = "offline"  # the SDK wants some key; this one opens nothing
KILL_SWITCH_ENV = "MAS_NO_LIVE"  # set by the test suite: no live client can be built
DEFAULT_TIMEOUT = Settings.model_fields["timeout"].default  # seconds for one request; the SDK's default is 10 min
DEFAULT_MAX_RETRIES = Settings.model_fields["max_retries"].default

_announced_offline = False
Transport = httpx2.BaseTransport | httpx2.AsyncBaseTransport  # one class may be both (mas.offline's are)


class LiveClientForbidden(RuntimeError):
    """A live client was asked for while the kill switch (MAS_NO_LIVE=1) is on."""


def default_model() -> str:
    """The model from `MAS_MODEL`, or the course's default; warns on an id the SDK does not list."""
    return check_model(settings().model)


def check_model(model: str) -> str:
    from mas.offline.catalog import listed_models

    known = listed_models()
    if model not in known:
        warnings.warn(
            f"model {model!r} is not in this SDK's model list; the API may reject it. "
            f"Known models: {', '.join(known)}",
            UserWarning,
            stacklevel=3,
        )
    return model


def is_offline() -> bool:
    """True when `make_client()` would give the offline model."""
    return settings().is_offline


def make_client(*, asynchronous: bool = False, offline: bool | None = None, timeout: float | None = None,
                max_retries: int | None = None, transport: Transport | None = None,
                **offline_options: Any) -> anthropic.Anthropic | anthropic.AsyncAnthropic:
    """A real `anthropic.Anthropic` (`anthropic.AsyncAnthropic` when `asynchronous`): live with a key,
    the offline model without one.

    `transport` plugs any httpx2 transport under the SDK (the offline model, a scripted
    transport in tests, a replay of a recorded session); `offline_options` go to the offline
    model (`faults=`, `latency=`, ...). Without a `transport`, the workshop switches apply:
    MAS_RECORD=path records the session to a file, MAS_REPLAY=path replays one (`mas.replay`).
    """
    timeout, max_retries = limits(timeout, max_retries)
    if transport is None and _workshop_switch():
        from mas.replay import client_from_env  # MAS_RECORD / MAS_REPLAY: see mas/replay.py

        return client_from_env(asynchronous=asynchronous, offline=offline, timeout=timeout, max_retries=max_retries,
                               **offline_options)
    if transport is None and (offline if offline is not None else is_offline()):
        from mas.offline import OfflineTransport

        _announce_offline()
        transport = OfflineTransport(**offline_options)
    sdk = anthropic.AsyncAnthropic if asynchronous else anthropic.Anthropic
    if transport is not None:
        http_client = (httpx2.AsyncClient if asynchronous else httpx2.Client)(transport=transport)
        return sdk(api_key=OFFLINE_API_KEY, base_url=OFFLINE_BASE_URL, timeout=timeout, max_retries=max_retries,
                   http_client=http_client)
    check_kill_switch()
    return sdk(timeout=timeout, max_retries=max_retries)


def text_of(message: Message) -> str:
    """The text of a reply: all its text blocks joined, whatever other blocks come first.

    >>> from anthropic.types import Message
    >>> m = Message.model_validate({"id": "m", "type": "message", "role": "assistant", "model": "x",
    ...     "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}},
    ...                 {"type": "text", "text": "Hello"}, {"type": "text", "text": " world"}],
    ...     "stop_reason": "end_turn", "stop_sequence": None,
    ...     "usage": {"input_tokens": 3, "output_tokens": 2}})
    >>> text_of(m)
    'Hello world'
    """
    return "".join(block.text for block in message.content if block.type == "text")


def last_user_text(request: dict) -> str:
    """The text of a request's last user message (its text blocks joined), "" when there is none.

    >>> last_user_text({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
    ...                               {"role": "user", "content": [{"type": "text", "text": "c"}]}]})
    'c'
    """
    for message in reversed(request.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content", "")
            if isinstance(content, str):
                return content
            return "\n".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return ""


def usage_of(message: Message) -> dict[str, int]:
    """The token usage of a reply as plain numbers (cache fields are 0 when absent)."""
    u = message.usage
    return {
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cache_creation_input_tokens": u.cache_creation_input_tokens or 0,
        "cache_read_input_tokens": u.cache_read_input_tokens or 0,
    }


def limits(timeout: float | None, max_retries: int | None) -> tuple[float, int]:
    """The timeout and retry count a client gets: the arguments, else MAS_TIMEOUT / MAS_MAX_RETRIES, else defaults."""
    s = settings()
    timeout = s.timeout if timeout is None else timeout
    max_retries = s.max_retries if max_retries is None else max_retries
    if timeout <= 0 or max_retries < 0:
        raise ValueError(f"timeout must be > 0 and max_retries >= 0, got timeout={timeout}, max_retries={max_retries}")
    return timeout, max_retries


def _workshop_switch() -> bool:
    """MAS_RECORD=path (record the session) or MAS_REPLAY=path (replay one) is set."""
    s = settings()
    return s.record is not None or s.replay is not None


def check_kill_switch() -> None:
    """Raise `LiveClientForbidden` when MAS_NO_LIVE is on: every way of building a live client calls this."""
    if settings().no_live:
        raise LiveClientForbidden(
            f"a live Anthropic client was requested while {KILL_SWITCH_ENV}=1 (the test suite's kill switch). "
            "Use make_client(offline=True) or a transport; a test that must build a live client "
            f"removes {KILL_SWITCH_ENV} from the environment explicitly."
        )


def _announce_offline() -> None:
    global _announced_offline
    if not _announced_offline:
        _announced_offline = True
        print("offline model: set ANTHROPIC_API_KEY to use Claude", file=sys.stderr)
        sys.stderr.flush()  # in a notebook: out at once, so it always comes before the cell's own prints
