"""The offline model as an httpx2 transport: what the real SDK talks to when there is no key.

    client = anthropic.Anthropic(api_key="offline", http_client=httpx2.Client(transport=OfflineTransport()))

(`mas.make_client()` does exactly this.) The SDK builds the request, the transport answers it
as the API would, and the SDK parses, retries and streams as it always does. Simulated latency
sleeps with `time.sleep` here and `asyncio.sleep` in the async transport, so parallel async
calls really overlap.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import AsyncIterator, Iterator

import httpx2

from mas.offline import wire
from mas.offline.model import Answer, OfflineModel


class _SyncSSE(httpx2.SyncByteStream):
    def __init__(self, msg: dict, model: OfflineModel):
        self.msg, self.model = msg, model

    def __iter__(self) -> Iterator[bytes]:
        time.sleep(self.model.latency.base)
        for chunk, tokens in wire.sse_events(self.msg):
            if tokens:
                time.sleep(self.model.latency.per_token * tokens)
            yield chunk


class _AsyncSSE(httpx2.AsyncByteStream):
    def __init__(self, msg: dict, model: OfflineModel):
        self.msg, self.model = msg, model

    async def __aiter__(self) -> AsyncIterator[bytes]:
        await asyncio.sleep(self.model.latency.base)
        for chunk, tokens in wire.sse_events(self.msg):
            if tokens:
                await asyncio.sleep(self.model.latency.per_token * tokens)
            yield chunk


def _streaming(request: httpx2.Request) -> bool:
    try:
        return bool(json.loads(request.read() or b"{}").get("stream"))
    except (ValueError, AttributeError):
        return False


def _timeout(request: httpx2.Request) -> httpx2.ReadTimeout:
    return httpx2.ReadTimeout("offline fault plan: the request timed out", request=request)


class OfflineTransport(httpx2.BaseTransport):
    """Answers the SDK's requests with the offline model. Options go to `OfflineModel`
    (`faults=`, `latency=`, `min_cache_tokens=`), or pass a `model=` to share one."""

    def __init__(self, model: OfflineModel | None = None, **options):
        self.model = model or OfflineModel(**options)

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        answer: Answer = self.model.answer(request)
        if answer.timeout:
            raise _timeout(request)
        if answer.message is None:
            return answer.response
        if _streaming(request):
            return httpx2.Response(200, headers=wire.SSE_HEADERS, stream=_SyncSSE(answer.message, self.model))
        time.sleep(answer.delay)
        return wire.json_response(200, answer.message)


class AsyncOfflineTransport(httpx2.AsyncBaseTransport):
    """The async twin of `OfflineTransport`, for `AsyncAnthropic`."""

    def __init__(self, model: OfflineModel | None = None, **options):
        self.model = model or OfflineModel(**options)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        await request.aread()
        answer = self.model.answer(request)
        if answer.timeout:
            raise _timeout(request)
        if answer.message is None:
            return answer.response
        if _streaming(request):
            return httpx2.Response(200, headers=wire.SSE_HEADERS, stream=_AsyncSSE(answer.message, self.model))
        await asyncio.sleep(answer.delay)
        return wire.json_response(200, answer.message)
