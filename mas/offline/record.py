"""Recording a session with the model: an httpx2 transport that writes every exchange to a file.

    client = mas.record_client("data/session.jsonl")   # live Claude, every exchange appended
    RecordingTransport(OfflineTransport(), "data/rehearsal.jsonl")   # or around any transport

The file is JSON Lines, one exchange a line, appended and flushed as each reply ends:

    {"method": "POST", "path": "/v1/messages", "request": {the JSON body},
     "status": 200, "headers": {"content-type": ..., "request-id": ...}, "body": "...", "complete": true}

`body` is the response as received: the message JSON, or a streamed reply's whole event-stream text. A
transport error (a timeout) is written as `"error": {"type", "message"}` and raised again on replay. Request
headers are never written, and of the response's only KEPT_HEADERS: keys (`x-api-key`, `authorization`),
cookies and organisation ids can't reach the file. Nor can they through a text (`mas.redact`): an error body
or message (a proxy that echoes the request's headers) is redacted, a query's credential parameters too, and
the key and token of the environment are found wherever they appear in a line.

A file that cannot be written (a directory, no permission) is refused when the transport is made, before any
request. One that fails later (a full disk) raises `RecordingNotWritten` from the reply that could not be
written: not a connection error, so the SDK does not send again a call that succeeded (and was billed live);
the requests after it are refused unsent.

Apart from `mas.offline.replay`, which answers from such a file, because the two share nothing but this
format: the recorder runs with a key (or the offline model), the replay with neither. `mas.client` builds
the clients that record or replay. Simplified on purpose: bodies are stored as UTF-8 text, as the API sends them.
"""
from __future__ import annotations

import json
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator

import anthropic
import httpx2

from mas.errors import RecordingNotWritten
from mas.redact import redact_known, redact_text

RECORD_ENV = "MAS_RECORD"  # the workshop switch that records (read by mas.client.make_client)
# the response headers worth keeping: what the SDK reads (retry timing) and the id to quote in a bug report
KEPT_HEADERS = ("content-type", "request-id", "retry-after", "retry-after-ms", "x-should-retry")
_WRITE_LOCK = threading.Lock()


class TransportMismatch(anthropic.AnthropicError, TypeError):
    """A sync transport under an async client, or the reverse (an SDK error type for the same reason)."""


class _TeeStream(httpx2.SyncByteStream, httpx2.AsyncByteStream):
    """Passes the reply's bytes on as they arrive (a live stream still streams) and keeps a copy;
    `done(body, complete)` runs once, when the body ends or is closed early."""

    def __init__(self, response: httpx2.Response, done: Callable[[bytes, bool], None]):
        self.response, self.done, self.parts, self.finished = response, done, [], False

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.response.iter_bytes():  # decoded: the copy never holds gzip bytes
            self.parts.append(chunk)
            yield chunk
        self._finish(True)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.response.aiter_bytes():
            self.parts.append(chunk)
            yield chunk
        self._finish(True)

    def close(self) -> None:
        self.response.close()
        self._finish(False)

    async def aclose(self) -> None:
        await self.response.aclose()
        self._finish(False)

    def _finish(self, complete: bool) -> None:
        if not self.finished:
            self.finished = True
            self.done(b"".join(self.parts), complete)


class RecordingTransport(httpx2.BaseTransport, httpx2.AsyncBaseTransport):
    """Wraps any transport (sync, async or both) and appends each exchange to the file at `path`.
    `recorded` counts the lines written."""

    def __init__(self, inner: httpx2.BaseTransport | httpx2.AsyncBaseTransport, path: str | Path):
        self.inner, self.path, self.recorded = inner, Path(path), 0
        self.broken: OSError | None = None  # why the last write failed: later requests are refused unsent
        check_writable(self.path)

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        self._check_not_broken(request)
        body = body_of(request.read())
        with self._errors_written(request, body):
            response = check_side(self.inner, httpx2.BaseTransport, "RecordingTransport").handle_request(request)
        return self._tee(request, body, response)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self._check_not_broken(request)
        body = body_of(await request.aread())
        with self._errors_written(request, body):
            inner = check_side(self.inner, httpx2.AsyncBaseTransport, "RecordingTransport")
            response = await inner.handle_async_request(request)
        return self._tee(request, body, response)

    @contextmanager
    def _errors_written(self, request: httpx2.Request, body: Any) -> Iterator[None]:
        """A transport error (a timeout, a refused connection) is an exchange too: written, then raised."""
        try:
            yield
        except httpx2.RequestError as err:
            self._write(request, body, {"error": {"type": type(err).__name__, "message": redact_text(str(err))}})
            raise

    def _check_not_broken(self, request: httpx2.Request) -> None:
        """After a failed write, no request is sent: its reply (billed, live) could not be recorded either."""
        if self.broken is not None:
            raise RecordingNotWritten(str(self.path), self.broken, request, sent=False)

    def _tee(self, request: httpx2.Request, body: Any, response: httpx2.Response) -> httpx2.Response:
        response.request = request
        kept = {name: response.headers[name] for name in KEPT_HEADERS if name in response.headers}

        def done(content: bytes, complete: bool) -> None:
            text = content.decode("utf-8", errors="replace")
            if response.status_code >= 400:  # an error body may echo the request, headers and all
                text = redact_text(text)
            self._write(request, body, {"status": response.status_code, "headers": kept, "body": text,
                                        "complete": complete})

        # the caller gets every header but the two that described the undecoded bytes
        headers = [(k, v) for k, v in response.headers.multi_items()
                   if k.lower() not in ("content-encoding", "content-length")]
        return httpx2.Response(response.status_code, headers=headers, stream=_TeeStream(response, done),
                               extensions=response.extensions)

    def _write(self, request: httpx2.Request, body: Any, outcome: dict) -> None:
        line = json.dumps({"method": request.method, "path": path_of(request), "request": body, **outcome},
                          ensure_ascii=False)
        data = (redact_known(line, api_only=True) + "\n").encode("utf-8")
        # one O_APPEND write per line, under a lock shared by every recorder: the lines of clients and
        # threads writing to the same file never interleave, and each is on disk when the reply ends
        # (O_BINARY, on Windows: no newline translation)
        with _WRITE_LOCK:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o600)
                try:
                    while data:
                        data = data[os.write(fd, data):]
                finally:
                    os.close(fd)
            except OSError as err:  # raised from the reply's body: the SDK must not take it for the network
                self.broken = err
                raise RecordingNotWritten(str(self.path), err, request, sent=True) from None
            self.recorded += 1


def check_writable(path: Path) -> None:
    """A ValueError naming `path` and the cause when a recording cannot be written there (a directory, a
    folder that is a file, no permission), before any request is sent. Leaves no file behind."""
    try:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            pass  # a file where the folder should be: opening says so ("Not a directory")
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600))
            os.unlink(path)  # made only to find out: the first exchange makes it again
        except FileExistsError:
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND))
    except OSError as err:
        raise ValueError(f"cannot record to {path} ({err.strerror or type(err).__name__}): point {RECORD_ENV} "
                         "(or record_client's path) at a writable file") from None


def load_recording(path: str | Path) -> list[dict]:
    """The exchanges of a recording, in order; a clear error for a missing file or a bad line."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no recording at {path}: record one first with record_client({str(path)!r}) "
                                f"or {RECORD_ENV}={path}")
    exchanges = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            exchange = json.loads(line)
        except ValueError as err:
            raise ValueError(f"{path}, line {number}: not a JSON line ({err})") from None
        if not _well_formed(exchange):
            raise ValueError(f"{path}, line {number}: not a recorded exchange "
                             "(it needs method, path, request, and status, headers and body, or error)")
        exchanges.append(exchange)
    return exchanges


def _well_formed(exchange: Any) -> bool:
    """An exchange the replay can serve: its fields there and of their types (a hand-edited line may
    not be, and would fail deep in the transport, where the SDK reports it as a connection error)."""
    if not (isinstance(exchange, dict) and isinstance(exchange.get("method"), str)
            and isinstance(exchange.get("path"), str)):
        return False
    if "error" in exchange:
        error = exchange["error"]
        return isinstance(error, dict) and isinstance(error.get("type"), str) and isinstance(error.get("message"), str)
    status, headers = exchange.get("status"), exchange.get("headers")
    return (isinstance(status, int) and not isinstance(status, bool) and 100 <= status <= 599
            and isinstance(headers, dict) and all(isinstance(v, str) for v in headers.values())
            and isinstance(exchange.get("body"), str))


def check_side(transport: Any, kind: type, who: str) -> Any:
    """`transport`, when it is of `kind` (sync or async); else a TransportMismatch naming `who`."""
    if not isinstance(transport, kind):
        wanted = "an async (AsyncAnthropic)" if kind is httpx2.AsyncBaseTransport else "a sync (Anthropic)"
        raise TransportMismatch(f"{who} was used by {wanted} client but wraps {type(transport).__name__}: wrap "
                        "httpx2.HTTPTransport for Anthropic, httpx2.AsyncHTTPTransport for AsyncAnthropic "
                        "(OfflineTransport and ScriptedTransport serve both)")
    return transport


def body_of(raw: bytes) -> Any:
    """A request's body as JSON, or as text when it is not JSON; None when empty.

    >>> body_of(b'{"model": "m"}'), body_of(b"plain"), body_of(b"")
    ({'model': 'm'}, 'plain', None)
    """
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode("utf-8", errors="replace")


def path_of(request: httpx2.Request) -> str:
    """The path and query of a request, what an exchange records (never the host), its credentials redacted.

    >>> path_of(httpx2.Request("POST", "https://api.anthropic.com/v1/messages?beta=true&api_key=abc"))
    '/v1/messages?beta=true&api_key=***'
    """
    query = redact_text(request.url.query.decode())
    return request.url.path + (f"?{query}" if query else "")
