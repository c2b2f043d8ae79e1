"""The offline model: a Messages-API request in, the API's answer out (no network, no key).

`OfflineModel.answer(request)` is the whole server: it routes the Messages and Models APIs, applies the fault
plan, and builds the reply from the role logic (`roles.py`, `writer.py`, `validator.py`), structured outputs
and tool use (`structured.py`), usage and prompt caching (`tokens.py`). The transports only add the waiting
(simulated latency) and streaming.

Deterministic: the reply depends only on the request body (ids are a hash of it), with one exception that the
real API shares: prompt caching, where the second identical request reads the prefix the first one wrote.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

import httpx2

from mas.offline import catalog, prose, roles, structured, tooluse, wire
from mas.offline.batches import Batches
from mas.offline.faults import HTTP_FAULTS, REPLY_FAULTS, Fault, FaultPlan, damage
from mas.offline.tokens import count_request, cut, estimate, request_pieces

# The smallest prefix the API caches; shorter prefixes are processed normally, with no error.
# It depends on the model. Source: Anthropic's prompt-caching docs (as quoted in
# anthropics/anthropic-sdk-python#1194 and by API gateways' docs), checked 2026-11-25; models not
# listed get the lowest documented minimum, 1,024.
MIN_CACHE_TOKENS = 1024
MIN_CACHE_TOKENS_BY_MODEL = {
    "claude-opus-4-6": 4096, "claude-opus-4-5": 4096, "claude-opus-4-5-20251101": 4096,
    "claude-haiku-4-5": 4096, "claude-haiku-4-5-20251001": 4096,
    "claude-sonnet-4-5": 1024, "claude-sonnet-4-5-20250929": 1024,
}
MAX_THREADS = 1000  # server-held conversations (the Threads of `thread=`) kept, the oldest dropped first
RETRY_AFTER_MS = "20"  # sent with 429/529/5xx so the SDK's own retries wait 20 ms, not seconds


@dataclass
class Latency:
    """Simulated time for one reply: `base` seconds, plus `per_token` seconds per output token."""

    base: float = 0.0
    per_token: float = 0.0

    def of(self, output_tokens: int) -> float:
        return self.base + self.per_token * output_tokens


@dataclass
class Answer:
    """What the transport sends back: a response, or a simulated timeout; and how long to wait."""

    response: httpx2.Response | None = None
    message: dict | None = None  # the reply, when it is a message
    stream: bool = False  # the request asked for the message as an event stream
    timeout: bool = False
    delay: float = 0.0


class OfflineModel:
    def __init__(self, faults: FaultPlan | list[Fault] | str | None = None, latency: Latency | tuple | None = None,
                 min_cache_tokens: int | None = None):
        if faults is None:
            faults = FaultPlan.from_env()
        elif isinstance(faults, str):
            faults = FaultPlan.parse(faults)
        elif not isinstance(faults, FaultPlan):
            faults = FaultPlan(faults)
        self.faults = faults
        self.latency = Latency(*latency) if isinstance(latency, tuple) else latency or Latency()
        self.min_cache_tokens = min_cache_tokens  # None: the model's own minimum, as the API has it
        self.calls = 0  # requests to /v1/messages, retries included
        self._cached_prefixes: set[str] = set()
        self._threads: dict[str, dict] = {}  # message id -> the request it answered, with the reply: a Thread
        self._lock = threading.Lock()
        self.batches = Batches(self._message, self._lock)  # the Message Batches API (mas/offline/batches.py)

    def answer(self, request: httpx2.Request) -> Answer:
        path = request.url.path
        if request.method == "GET" and path.startswith("/v1/models"):
            return Answer(_models(path, request.url.query.decode()))
        if path.startswith("/v1/messages/batches"):
            return Answer(self.batches.answer(request))
        if request.method != "POST" or path not in ("/v1/messages", "/v1/messages/count_tokens"):
            return Answer(wire.error_response(404, "not_found_error", f"{request.method} {path}: not found "
                                              "(the offline model answers POST /v1/messages, "
                                              "/v1/messages/count_tokens, /v1/messages/batches and GET /v1/models)"))
        try:
            body = json.loads(request.read() or b"{}")
        except ValueError as err:
            return Answer(wire.error_response(400, "invalid_request_error", f"request body is not valid JSON: {err}"))
        except RecursionError:  # a body nested thousands of levels deep (any client can send one to `mas serve`)
            return Answer(wire.error_response(400, "invalid_request_error", "request body is nested too deeply"))
        if problem := _invalid(body, counting=path.endswith("count_tokens")):
            return Answer(wire.error_response(400, "invalid_request_error", problem))
        if path.endswith("count_tokens"):
            return Answer(wire.json_response(200, {"input_tokens": count_request(body)}))
        return self._message(body)

    def _message(self, body: dict) -> Answer:
        """POST /v1/messages for a body already read (and, from a batch, not yet checked)."""
        if problem := _invalid(body, counting=False):
            return Answer(wire.error_response(400, "invalid_request_error", problem))
        try:
            body = self._threaded(body)
            if isinstance(body, httpx2.Response):
                return Answer(body)
            answer = self._create(body)
            if answer.message is not None and "thread" in body:
                self._hold(body, answer.message)
            return answer
        # a 400 the client can read, never an exception in the transport (the SDK's "Connection error.", retried)
        except structured.UnfillableSchema as err:
            return Answer(wire.error_response(400, "invalid_request_error", f"a JSON schema in the request: {err}"))
        except RecursionError:
            return Answer(wire.error_response(400, "invalid_request_error",
                                              "request nested too deeply for the offline model"))

    # ---------------------------------------------------------------- threads (server-held conversations)

    def _threaded(self, body: dict) -> dict | httpx2.Response:
        """A request of a Thread as a whole request: `{"type": "continue", "previous_message_id": ID}` sends only
        the new turn, and the fields the thread holds (system, tools...) and its history come from the request
        that ID answered, with that answer. As the API, the offline model holds them (the newest MAX_THREADS)."""
        thread = body.get("thread")
        if thread is None or not isinstance(thread, dict) or thread.get("type") != "continue":
            return body
        with self._lock:
            held = self._threads.get(str(thread.get("previous_message_id")))
        if held is None:
            return wire.error_response(404, "not_found_error", f"thread: no message {thread.get('previous_message_id')!r} "
                                       "to continue (the offline model holds its newest threads in memory, "
                                       "until it stops)")
        fields = {k: v for k, v in held.items() if k not in ("messages", "stream")}
        return {**fields, **{k: v for k, v in body.items() if k != "messages"},
                "messages": [*held["messages"], *body["messages"]]}

    def _hold(self, body: dict, message: dict) -> None:
        reply = {"role": "assistant", "content": message["content"]}
        with self._lock:
            self._threads[message["id"]] = {**body, "messages": [*body["messages"], reply]}
            while len(self._threads) > MAX_THREADS:
                del self._threads[next(iter(self._threads))]  # the oldest first

    # ---------------------------------------------------------------- POST /v1/messages

    def _create(self, body: dict) -> Answer:
        system = wire.content_text(body.get("system") or "")
        last = body["messages"][-1]
        prompt = wire.content_text(last.get("content", "")) if last.get("role") == "user" else ""
        role = roles.detect_role(system, prompt, _schema_fields(body))
        with self._lock:
            self.calls += 1
            fault = self.faults.take(self.calls, role)
            call = self.calls
        if fault in HTTP_FAULTS:
            status, kind = HTTP_FAULTS[fault]
            headers = {"retry-after-ms": RETRY_AFTER_MS} if status != 400 else {}
            return Answer(wire.error_response(status, kind, f"offline fault plan: {fault} on call {call}", headers))
        if fault == "timeout":
            return Answer(timeout=True)

        content, stop_reason = self._content(body, system)
        if fault in REPLY_FAULTS:
            text = "".join(b["text"] for b in content if b["type"] == "text")
            text = cut(text, max(1, estimate(text) // 3)) if fault == "truncate" else damage(text, fault)
            stop_reason = {"truncate": "max_tokens", "refusal": "refusal"}.get(fault, stop_reason)
            content = [{"type": "text", "text": text}] if text else []
        content, stop_reason = _limit(content, stop_reason, body["max_tokens"])

        output_tokens = sum(estimate(b["text"]) if b["type"] == "text" else estimate(json.dumps(b["input"]))
                            for b in content)
        usage = {**self._input_usage(body), "output_tokens": output_tokens}
        msg = wire.message(id="msg_" + wire.digest(body), model=body["model"], content=content,
                           stop_reason=stop_reason, usage=usage)
        return Answer(message=msg, delay=self.latency.of(output_tokens), stream=bool(body.get("stream")))

    def _content(self, body: dict, system: str) -> tuple[list[dict], str]:
        messages = body["messages"]
        last = messages[-1]
        content = last.get("content", "")
        prompt = wire.content_text(content) if last.get("role") == "user" else ""
        fields = _schema_fields(body)
        if body.get("tools"):
            task = next((wire.content_text(m.get("content", "")) for m in reversed(messages)
                         if m.get("role") == "user" and wire.content_text(m.get("content", "")).strip()
                         and not _answers_tools(m)), prompt)
            answered = tooluse.step(body, system, task, roles.detect_role(system, task, fields))
            if answered is not None:
                return answered
        if _answers_tools(last):  # tool results, with no tools offered any more: read them all the same
            result = " ".join(wire.content_text(b.get("content", "")) for b in content if isinstance(b, dict))
            return [{"type": "text", "text": f"Based on the tool result: {result.strip()[:2000]}"}], "end_turn"

        if roles.detect_role(system, prompt, fields) and "<" not in prompt:
            # a follow-up ("your answer could not be used...") refers to the task given earlier
            asked = (wire.content_text(m.get("content", "")) for m in reversed(messages) if m.get("role") == "user")
            prompt = next((text for text in asked if "<" in text), prompt)
        role, text = roles.reply_for(system, prompt, fields)
        fmt = (body.get("output_config") or {}).get("format") or {}
        if fmt.get("type") == "json_schema":
            given = json.loads(text) if role in ("validator", "judge") else None  # their JSON answers
            material = prose.bullets_of(text) or [line for line in text.splitlines() if not line.startswith("#")]
            topic = roles.topic_of(prompt) if role in ("researcher", "writer") else ""
            text = json.dumps(structured.fill(fmt.get("schema", {}), material, topic=topic, given=given))
        return [{"type": "text", "text": text}], "end_turn"

    def _input_usage(self, body: dict) -> dict[str, int]:
        """Input tokens, split as the API splits them when a cache_control prefix is cached."""
        pieces = request_pieces(body)
        total = sum(tokens for tokens, _, _ in pieces)
        marks = [i for i, (_, marked, _) in enumerate(pieces) if marked]
        usage = {"input_tokens": total, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        if marks:
            prefix = pieces[: marks[-1] + 1]
            prefix_tokens = sum(tokens for tokens, _, _ in prefix)
            minimum = MIN_CACHE_TOKENS_BY_MODEL.get(body["model"], MIN_CACHE_TOKENS)
            if prefix_tokens >= (minimum if self.min_cache_tokens is None else self.min_cache_tokens):
                key = wire.digest([body["model"], [k for _, _, k in prefix]])
                with self._lock:
                    hit = key in self._cached_prefixes
                    self._cached_prefixes.add(key)
                usage["input_tokens"] = total - prefix_tokens
                usage["cache_read_input_tokens" if hit else "cache_creation_input_tokens"] = prefix_tokens
        return usage


def _schema_fields(body: dict) -> tuple[str, ...]:
    """The top-level fields of the JSON schema a request asks its answer to fit (structured outputs)."""
    fmt = (body.get("output_config") or {}).get("format") or {}
    props = (fmt.get("schema") or {}).get("properties") if isinstance(fmt, dict) else None
    return tuple(props) if isinstance(props, dict) else ()


def _models(path: str, query: str) -> httpx2.Response:
    """The Models API: the list (one page of it), or one model by id."""
    if path in ("/v1/models", "/v1/models/"):
        listing = catalog.page(query)
        if isinstance(listing, str):
            return wire.error_response(400, "invalid_request_error", listing)
        return wire.json_response(200, listing)
    model_id = path.removeprefix("/v1/models/")
    info = catalog.retrieve(model_id)
    if info is None:
        return wire.error_response(404, "not_found_error", f"model: {model_id}")
    return wire.json_response(200, info)


def _invalid(body: Any, counting: bool) -> str | None:
    """The API's own checks on a request body, as a message, or None when it is fine."""
    if not isinstance(body, dict):
        return "request body must be a JSON object"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: field required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    if not counting and (not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1):
        return "max_tokens: must be an integer >= 1"
    return None


def _limit(content: list[dict], stop_reason: str, max_tokens: int) -> tuple[list[dict], str]:
    """Cut the reply at `max_tokens`, as the API does (stop_reason "max_tokens")."""
    out, left = [], max_tokens
    for block in content:
        if block["type"] == "text":
            if estimate(block["text"]) > left:
                return [*out, {**block, "text": cut(block["text"], left)}], "max_tokens"
            left -= estimate(block["text"])
        out.append(block)
    return out, stop_reason


def _answers_tools(message: dict) -> bool:
    content = message.get("content")
    return isinstance(content, list) and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in content)
