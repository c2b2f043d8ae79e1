"""The offline model as an httpx2 transport: what the real SDK talks to when there is no key.

    client = anthropic.Anthropic(api_key="offline", http_client=httpx2.Client(transport=OfflineTransport()))

(`mas.make_client()` does exactly this.) The SDK builds the request, the transport answers it
as the API would, and the SDK parses, retries and streams as it always does. One transport
serves `Anthropic` and `AsyncAnthropic` alike: simulated latency sleeps with `time.sleep` for a
sync client and `asyncio.sleep` for an async one, so parallel async calls really overlap.
"""

from __future__ import annotations

import asyncio
import time
from typing import AsyncIterator, Iterator

import httpx2

from mas.offline import wire
from mas.offline.model import Latency, OfflineModel


class _SSE(httpx2.SyncByteStream, httpx2.AsyncByteStream):
    """A whole message as the API's event stream, paced by the simulated latency."""

    def __init__(self, msg: dict, latency: Latency):
        self.msg, self.latency = msg, latency

    def _paced(self) -> Iterator[tuple[float, bytes]]:
        """(seconds to wait, then bytes to send): the base latency first, then each event's tokens."""
        yield self.latency.base, b""
        for chunk, tokens in wire.sse_events(self.msg):
            yield self.latency.per_token * tokens, chunk

    def __iter__(self) -> Iterator[bytes]:
        for wait, chunk in self._paced():
            if wait:
                time.sleep(wait)
            if chunk:
                yield chunk

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for wait, chunk in self._paced():
            if wait:
                await asyncio.sleep(wait)
            if chunk:
                yield chunk


class OfflineTransport(httpx2.BaseTransport, httpx2.AsyncBaseTransport):
    """Answers the SDK's requests with the offline model, for sync and async clients. Options go to
    `OfflineModel` (`faults=`, `latency=`, `min_cache_tokens=`), or pass a `model=` to share one."""

    def __init__(self, model: OfflineModel | None = None, **options):
        self.model = model or OfflineModel(**options)

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        request.read()
        response, delay = self._answer(request)
        if delay:  # no sleep(0): it would only hand the CPU away (the async side's yields to the loop)
            time.sleep(delay)
        return response

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        await request.aread()
        response, delay = self._answer(request)
        if delay is not None:
            await asyncio.sleep(delay)
        return response

    def _answer(self, request: httpx2.Request) -> tuple[httpx2.Response, float | None]:
        """The response, and how long to wait before sending a whole message (None: no wait; a
        stream paces itself)."""
        answer = self.model.answer(request)
        if answer.timeout:
            raise httpx2.ReadTimeout("offline fault plan: the request timed out", request=request)
        if answer.message is None:
            return answer.response, None
        if answer.stream:
            return httpx2.Response(200, headers=wire.SSE_HEADERS, stream=_SSE(answer.message, self.model.latency)), None
        return wire.json_response(200, answer.message), answer.delay
