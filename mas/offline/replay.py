"""Replaying a recorded session: an httpx2 transport that answers from the file, with no key and no network.

An instructor with a key records (`mas.offline.record`); a room without keys replays the same replies:

    client = mas.replay_client("data/session.jsonl")   # the recorded replies, in the recorded order
    ReplayTransport("data/session.jsonl", fallback=True)   # or the transport itself, under any client

It sits under the real SDK, the seam the offline model uses, so the SDK's request building, retries, parsing
and streaming run exactly as they do live, for `Anthropic` and `AsyncAnthropic` alike (a sync recording
replays async, and the reverse).

Matching: a request gets the recorded exchange with the same `request_key()`: method, path and body as
sorted-keys JSON, minus VOLATILE_FIELDS:
- `stream` chooses the shape of a reply, not its content: a recorded message is served as an event stream
  to a streamed request, and a recorded stream is assembled into a message;
- `metadata` (`user_id`) says who asks, not what is asked.
Identical requests (SDK retries, a question asked twice, the call that reads a prompt cache the one before
wrote) are served in recorded order; when they run out, the last is served again. Anything else raises
`NotInRecording`, or is answered by the fallback (the offline model with `fallback=True`).

Simplified on purpose: matching is exact, never fuzzy (a replay that quietly answered a slightly different
question would teach the wrong thing).
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict, deque
from pathlib import Path
from typing import Any

import anthropic
import httpx2

from mas.offline import wire
from mas.offline.record import body_of, check_side, load_recording, path_of
from mas.offline.transport import OfflineTransport
from mas.redact import redact_known

FALLBACK_ENV = "MAS_REPLAY_FALLBACK"  # the workshop switch that turns the fallback on (read by mas.client)
VOLATILE_FIELDS = ("stream", "metadata")  # left out of the key: see the module docstring


class NotInRecording(anthropic.AnthropicError):
    """A replayed request the recording does not hold, with no fallback asked for. An SDK error
    type, so the SDK neither wraps nor retries it: a setup problem should stop at once."""


def request_key(method: str, path: str, body: Any) -> str:
    """The key a request is matched by: sorted-keys JSON of method, path and body minus VOLATILE_FIELDS.

    >>> request_key("POST", "/v1/messages", {"stream": True, "model": "m", "max_tokens": 5,
    ...                                      "metadata": {"user_id": "ann"}})
    '["POST", "/v1/messages", {"max_tokens": 5, "model": "m"}]'
    """
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in VOLATILE_FIELDS}
    return json.dumps([method.upper(), path, body], sort_keys=True, ensure_ascii=False)


class ReplayTransport(httpx2.BaseTransport, httpx2.AsyncBaseTransport):
    """Answers from a recording, for `Anthropic` and `AsyncAnthropic` alike. `fallback`: None or
    False (unrecorded requests raise `NotInRecording`), True (the offline model answers them), or a
    transport. `served`, `fallbacks` and `misses` count the requests each way."""

    def __init__(self, path: str | Path, fallback: Any = None):
        self.path = Path(path)
        self.exchanges = load_recording(self.path)
        self._queues: defaultdict[str, deque[dict]] = defaultdict(deque)
        for exchange in self.exchanges:
            self._queues[_key(exchange["method"], exchange["path"], exchange.get("request"))].append(exchange)
        self.fallback = _fallback(fallback)
        self.served = self.fallbacks = self.misses = 0
        self._lock = threading.Lock()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        body = body_of(request.read())
        exchange = self._take(request, body)
        if exchange is None:
            return check_side(self.fallback, httpx2.BaseTransport, "the fallback").handle_request(request)
        return _replayed(request, body, exchange)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        body = body_of(await request.aread())
        exchange = self._take(request, body)
        if exchange is None:
            fallback = check_side(self.fallback, httpx2.AsyncBaseTransport, "the fallback")
            return await fallback.handle_async_request(request)
        return _replayed(request, body, exchange)

    def _take(self, request: httpx2.Request, body: Any) -> dict | None:
        """The next recorded exchange for this request (the last one again when they have run out),
        or None when the fallback should answer; raises NotInRecording when there is none."""
        with self._lock:
            queue = self._queues.get(_key(request.method, path_of(request), body))
            if queue:
                self.served += 1
                return queue.popleft() if len(queue) > 1 else queue[0]
            if self.fallback is not None:
                self.fallbacks += 1
                return None
            self.misses += 1
        raise NotInRecording(self._explain(request, body))

    def _explain(self, request: httpx2.Request, body: Any) -> str:
        path, fields = path_of(request), body if isinstance(body, dict) else {}
        said = f"{request.method} {path} (model {fields.get('model')!r}, last user message " \
               f"{_last_user_words(fields)[:60]!r}) is not in the recording {self.path} " \
               f"({len(self.exchanges)} exchanges)."
        same_path = [e.get("request") for e in self.exchanges if (e["method"], e["path"]) == (request.method, path)]
        if same_path:
            nearest = min((_differences(fields, r if isinstance(r, dict) else {}) for r in same_path), key=len)
            said += f" The nearest recorded request differs in: {', '.join(nearest)}."
        else:
            said += f" It holds no {request.method} {path} request at all."
        return (said + " A replay answers only the requests recorded exactly (same model, system prompt, "
                "messages, max_tokens...). To let the offline model answer the others, use "
                "replay_client(path, fallback=True) or ReplayTransport(path, fallback=True), or set "
                f"{FALLBACK_ENV}=1; or record this request again with a key.")


def message_from_sse(text: str) -> dict:
    """Assemble a streamed reply (its event-stream text) into the message JSON the API would send.

    >>> msg = wire.text_message("Streams arrive in small pieces, then add up.", model="m")
    >>> sse = b"".join(chunk for chunk, _ in wire.sse_events(msg)).decode()
    >>> message_from_sse(sse) == msg
    True
    """
    msg: dict = {}
    partial_json: dict[int, str] = {}
    for block in text.replace("\r\n", "\n").split("\n\n"):
        data = "\n".join(line[5:].removeprefix(" ") for line in block.splitlines() if line.startswith("data:"))
        if not data:
            continue
        event = json.loads(data)
        kind, index = event["type"], event.get("index")
        if kind == "message_start":
            msg = event["message"]
        elif kind == "content_block_start":
            msg["content"].append(event["content_block"])
        elif kind == "content_block_delta":
            content, delta = msg["content"][index], event["delta"]
            if delta["type"] == "text_delta":
                content["text"] += delta["text"]
            elif delta["type"] == "input_json_delta":
                partial_json[index] = partial_json.get(index, "") + delta["partial_json"]
            elif delta["type"] == "thinking_delta":
                content["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                content["signature"] = delta["signature"]
            elif delta["type"] == "citations_delta":
                content["citations"] = [*(content.get("citations") or []), delta["citation"]]
        elif kind == "content_block_stop" and index in partial_json:
            msg["content"][index]["input"] = json.loads(partial_json.pop(index) or "{}")
        elif kind == "message_delta":
            msg.update(event["delta"])
            msg["usage"].update({k: v for k, v in event["usage"].items() if v is not None})
    return msg


def _replayed(request: httpx2.Request, body: Any, exchange: dict) -> httpx2.Response:
    if "error" in exchange:
        cls = getattr(httpx2, exchange["error"]["type"], None)
        if not (isinstance(cls, type) and issubclass(cls, httpx2.RequestError)):
            cls = httpx2.TransportError
        raise cls(exchange["error"]["message"], request=request)
    headers, content = dict(exchange["headers"]), exchange["body"].encode("utf-8")
    wants_stream = isinstance(body, dict) and bool(body.get("stream"))
    is_stream = headers.get("content-type", "").startswith("text/event-stream")
    if exchange["status"] == 200 and wants_stream != is_stream and exchange.get("complete", True):
        if wants_stream:
            msg = json.loads(content)
            unstreamable = {b["type"] for b in msg["content"]} - {"text", "tool_use"}
            if unstreamable:
                raise NotInRecording(f"{path_of(request)}: the recording holds this reply as a whole message with "
                                     f"{', '.join(sorted(unstreamable))} blocks, which the replay cannot stream; "
                                     "ask without streaming, or record it streamed")
            content = b"".join(chunk for chunk, _ in wire.sse_events(msg))
            headers["content-type"] = wire.SSE_HEADERS["content-type"]
        else:
            content = json.dumps(message_from_sse(exchange["body"]), ensure_ascii=False).encode("utf-8")
            headers["content-type"] = wire.JSON_HEADERS["content-type"]
    return httpx2.Response(exchange["status"], headers=headers, content=content)


def _key(method: str, path: str, body: Any) -> str:
    """The request key as a recording holds it: the environment's key and token, written as *** there
    (mas.offline.record), are matched as *** here too."""
    return redact_known(request_key(method, path, body), api_only=True)


def _fallback(fallback: Any) -> httpx2.BaseTransport | httpx2.AsyncBaseTransport | None:
    """The transport for unrecorded requests (None: they raise NotInRecording)."""
    if fallback is None or fallback is False:
        return None
    if fallback is True:
        return OfflineTransport()
    if not isinstance(fallback, (httpx2.BaseTransport, httpx2.AsyncBaseTransport)):
        raise TypeError(f"fallback must be True, False, None or an httpx2 transport, not {type(fallback).__name__}")
    return fallback


def _differences(asked: dict, recorded: dict) -> list[str]:
    """The top-level fields (the key's, so not VOLATILE_FIELDS) whose values differ."""
    return sorted(k for k in asked.keys() | recorded.keys()
                  if k not in VOLATILE_FIELDS and asked.get(k) != recorded.get(k))


def _last_user_words(body: dict) -> str:
    """The last user message on one line, for an error message (its text blocks, as a string's words).

    >>> _last_user_words({"messages": [{"role": "user", "content": [{"type": "text", "text": "What is\\n  it?"}]}]})
    'What is it?'
    """
    user = [m for m in body.get("messages") or [] if isinstance(m, dict) and m.get("role") == "user"]
    content = user[-1].get("content", "") if user else ""
    return " ".join(wire.content_text(content).split())
