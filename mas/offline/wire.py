"""The Messages API's wire format: message JSON, the SSE event stream, and error bodies, kept apart from the
reply logic so that the offline model, the scripted transport and a replay all send the SDK the same bytes."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Iterator

import httpx2

from mas.offline.tokens import estimate

JSON_HEADERS = {"content-type": "application/json"}
SSE_HEADERS = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}
STREAM_CHUNK_CHARS = 24  # size of one text_delta: small enough that a streamed reply visibly streams


def digest(value: Any, size: int = 24) -> str:
    """A stable id fragment for a JSON-able value (the same request -> the same ids)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:size]


def message(*, id: str, model: str, content: list[dict], stop_reason: str, usage: dict[str, int]) -> dict:
    return {"id": id, "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": stop_reason, "stop_sequence": None, "usage": usage}


def text_message(text: str, *, model: str = "offline", stop_reason: str = "end_turn", input_tokens: int = 0,
                 output_tokens: int | None = None, id: str | None = None) -> dict:
    """A whole reply with one text block (handy for scripted replies)."""
    usage = {"input_tokens": input_tokens, "output_tokens": estimate(text) if output_tokens is None else output_tokens}
    content = [{"type": "text", "text": text}] if text else []
    return message(id=id or "msg_" + digest([text, model]), model=model, content=content, stop_reason=stop_reason,
                   usage=usage)


def content_text(content: Any) -> str:
    """The text of a message's `content` (or of a `system`): a string as it is, else its text blocks
    joined by newlines.

    >>> content_text("hi")
    'hi'
    >>> content_text([{"type": "text", "text": "a"}, {"type": "image"}, {"type": "text", "text": "b"}])
    'a\\nb'
    """
    if isinstance(content, str):
        return content
    return "\n".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content
                     if not isinstance(b, dict) or b.get("type") == "text")


def error_body(status: int, kind: str, text: str) -> dict:
    return {"type": "error", "error": {"type": kind, "message": text}, "request_id": "req_" + digest([status, text])}


def json_response(status: int, body: dict, headers: dict[str, str] | None = None) -> httpx2.Response:
    content = json.dumps(body, ensure_ascii=False).encode()
    return httpx2.Response(status, headers={**JSON_HEADERS, **(headers or {})}, content=content)


def error_response(status: int, kind: str, text: str, headers: dict[str, str] | None = None) -> httpx2.Response:
    body = error_body(status, kind, text)
    return json_response(status, body, {"request-id": body["request_id"], **(headers or {})})


def sse_events(msg: dict) -> Iterator[tuple[bytes, int]]:
    """The event stream for a whole message, as the API sends it: (bytes, output tokens in it).

    message_start (usage with the input tokens) -> for each block: content_block_start,
    deltas (text_delta / input_json_delta), content_block_stop -> message_delta (stop reason,
    final usage) -> message_stop.
    """
    def event(name: str, **fields: Any) -> bytes:
        return f"event: {name}\ndata: {json.dumps({'type': name, **fields}, ensure_ascii=False)}\n\n".encode()

    usage = msg["usage"]
    start = {**msg, "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {**usage, "output_tokens": min(1, usage["output_tokens"])}}
    yield event("message_start", message=start), 0
    for index, block in enumerate(msg["content"]):
        if block["type"] == "text":
            yield event("content_block_start", index=index, content_block={"type": "text", "text": ""}), 0
            text = block["text"]
            for i in range(0, len(text), STREAM_CHUNK_CHARS):
                piece = text[i:i + STREAM_CHUNK_CHARS]
                yield event("content_block_delta", index=index, delta={"type": "text_delta", "text": piece}), \
                    estimate(piece)
        elif block["type"] == "tool_use":
            yield event("content_block_start", index=index, content_block={**block, "input": {}}), 0
            partial = json.dumps(block["input"], ensure_ascii=False)
            yield event("content_block_delta", index=index,
                        delta={"type": "input_json_delta", "partial_json": partial}), estimate(partial)
        yield event("content_block_stop", index=index), 0
    cached = {key: usage[key] for key in ("cache_creation_input_tokens", "cache_read_input_tokens") if key in usage}
    yield event("message_delta", delta={"stop_reason": msg["stop_reason"], "stop_sequence": None},
                usage={"output_tokens": usage["output_tokens"], "input_tokens": usage["input_tokens"], **cached}), 0
    yield event("message_stop"), 0
