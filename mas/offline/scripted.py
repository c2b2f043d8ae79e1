"""A scripted transport: a queue of replies or errors, and a record of every request it got.

For tests and exercises that need an exact sequence ("the validator answers with prose, then
with valid JSON") and want to assert on what was sent:

    t = ScriptedTransport(["first reply", error(529), "second reply"])
    client = mas.make_client(transport=t)
    ...
    t.requests[0]["system"]        # the parsed JSON body of the first request

Each item of the queue is a string (a text reply), a message dict (`wire.text_message(...)`),
an `error(status)` response, or an exception to raise (such as `httpx2.ReadTimeout`). The SDK's
retries take items from the queue like any other request. `count_tokens` is answered from the
request itself without taking an item.
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any

import httpx2

from mas.offline import wire
from mas.offline.faults import HTTP_FAULTS
from mas.offline.tokens import count_request

_STATUS_KINDS = dict(HTTP_FAULTS.values()) | {401: "authentication_error", 404: "not_found_error"}


def error(status: int, message: str = "scripted error") -> httpx2.Response:
    """An API error response as the Messages API sends it (retry-after-ms keeps retries fast)."""
    headers = {"retry-after-ms": "1"} if status in (408, 409, 429) or status >= 500 else {}
    return wire.error_response(status, _STATUS_KINDS.get(status, "api_error"), message, headers)


class ScriptedTransport(httpx2.BaseTransport, httpx2.AsyncBaseTransport):
    """Serves both `Anthropic` (sync) and `AsyncAnthropic` (async) clients."""

    def __init__(self, replies: list[Any] | None = None):
        self.queue: deque[Any] = deque(replies or [])
        self.requests: list[dict] = []  # parsed bodies of the /v1/messages requests, in order

    def add(self, *replies: Any) -> ScriptedTransport:
        self.queue.extend(replies)
        return self

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        return self._answer(request, request.read())

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        return self._answer(request, await request.aread())

    def _answer(self, request: httpx2.Request, raw: bytes) -> httpx2.Response:
        body = json.loads(raw or b"{}")
        if request.url.path.endswith("/count_tokens"):
            return wire.json_response(200, {"input_tokens": count_request(body)})
        self.requests.append(body)
        if not self.queue:
            return wire.error_response(400, "invalid_request_error",
                                       f"scripted transport: no reply left for request {len(self.requests)}")
        item = self.queue.popleft()
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, httpx2.Response):
            return item
        msg = wire.text_message(item, model=body.get("model", "offline")) if isinstance(item, str) else item
        if body.get("stream"):
            return httpx2.Response(200, headers=wire.SSE_HEADERS,
                                   content=b"".join(chunk for chunk, _ in wire.sse_events(msg)))
        return wire.json_response(200, msg)
