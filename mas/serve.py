"""`mas serve`: the offline model (or a recorded session) as a local HTTP server speaking the Messages API.

    mas serve                                        http://127.0.0.1:8000, the offline model
    mas serve --faults overloaded@1 --latency 0.3,0.01
    mas serve --replay data/session.jsonl [--fallback]
    mas serve --host 0.0.0.0                         a classroom's network (it warns that anyone on it can use it)

Then any client runs offline, unchanged: a script with a global `anthropic.Anthropic()`, curl, the TypeScript
SDK, another framework's Anthropic client:

    export ANTHROPIC_BASE_URL=http://127.0.0.1:8000 ANTHROPIC_API_KEY=any

The server has no reply logic of its own. Each request becomes the `httpx2.Request` the SDK would have handed
the transport in process, and goes to that same transport (`OfflineTransport`, or `ReplayTransport`); its
response (JSON, or the event stream paced by the simulated latency) goes back as it is. So a client over HTTP
gets what `mas.make_client()` gets in process, byte for byte: POST /v1/messages (JSON and SSE),
/v1/messages/count_tokens, GET /v1/models, and whatever the transports answer next. Anything else is the
model's own 404, in the API's error shape.

Keys: any key is accepted, and none (like a local gateway). No request header but `content-type` reaches the
transport, so no key can be echoed in a reply, recorded or logged; the line logged per request is its
method, path (credentials in a query hidden), status and time. Faults are the server's: their calls are
counted over every client it serves.

Two things a transport does in process that HTTP has to say another way:
- a timeout (the `timeout` fault, a recorded one): nothing is answered, so the client's own timeout fires, as
  when the API is slow; after HOLD_S with the client still waiting, a 504 `timeout_error`;
- a recorded connection error: a 502 (the SDK retries both, as it does a connection error).
A request a replay does not hold is a 400 (404 when the recording has nothing on that path), with the
replay's own explanation: the SDK does not retry it.

Built on Starlette and uvicorn (the `serve` extra), loaded only when the command runs: `import mas` loads
neither. Simplified on purpose: plain HTTP/1.1 (a laptop, or a room's network; no TLS), no CORS for
browsers, one process (the offline model takes a millisecond or so a reply: one event loop serves a room).
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import ipaddress
import math
import os
import signal
import socket
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx2

from mas.extras import require
from mas.offline import wire
from mas.offline.model import Latency, OfflineModel
from mas.offline.record import path_of
from mas.offline.replay import NotInRecording, ReplayTransport
from mas.offline.transport import OfflineTransport
from mas.redact import redact_text

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8000
MAX_BODY = 32 * 1024 * 1024  # the Messages API's own limit on a request (413 request_too_large above it)
HOLD_S = 600.0  # a timeout holds the request this long at most: the SDK's default timeout, so a client's fires first
FORWARDED = ("content-type",)  # the only request header a transport sees: never a key or a token
# response headers that describe one connection's bytes: Starlette and uvicorn set their own
HOP_HEADERS = {"content-length", "content-encoding", "transfer-encoding", "connection", "keep-alive"}
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]  # every one reaches the transport (HEAD with GET)
BACKLOG = 2048  # connections the kernel queues before the server accepts them (uvicorn's default)
GRACEFUL_S = 3.0  # after Ctrl-C, streams under way get this long to finish


# ---------------------------------------------------------------------------- the app

def make_app(transport: httpx2.AsyncBaseTransport, log: Callable[[str], None] | None = None) -> Any:
    """The Starlette app: every request, whatever its path, goes to `transport`; `log` gets one line a request.

    In process, for a test or an embedding (`uvicorn.run(make_app(OfflineTransport()))`); `mas serve` runs it."""
    require("starlette", "mas serve")
    from starlette.applications import Starlette
    from starlette.background import BackgroundTask
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect, Request
    from starlette.responses import Response, StreamingResponse
    from starlette.routing import Route

    async def answer(request: Request) -> Response:
        started = time.perf_counter()
        outgoing = None
        try:
            outgoing = await _outgoing(request)
        except _BadRequest as err:
            reply = err.response
        except ClientDisconnect:  # the client went away mid-request (a killed worker): no one to answer
            return Response(status_code=499)
        else:
            reply = await _answered(transport, outgoing, request.receive)
        streamed = reply.headers.get("content-type", "").startswith("text/event-stream")
        headers = {name: value for name, value in reply.headers.items() if name.lower() not in HOP_HEADERS}
        path = path_of(outgoing) if outgoing is not None else request.url.path

        async def done() -> None:
            await reply.aclose()
            if log is not None:
                log(redact_text(f"{request.method} {path} -> {reply.status_code}{' stream' if streamed else ''}, "
                                f"{time.perf_counter() - started:.2f} s"))

        if streamed:
            return StreamingResponse(reply.aiter_bytes(), reply.status_code, headers, background=BackgroundTask(done))
        return Response(await reply.aread(), reply.status_code, headers, background=BackgroundTask(done))

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        text = (f"{request.method} {request.url.path}: {exc.detail}" if isinstance(exc, HTTPException)
                else f"mas serve failed on this request ({type(exc).__name__}); its log has the traceback")
        return _starlette_response(wire.error_response(status, "api_error" if status >= 500 else
                                                       "invalid_request_error", text))

    return Starlette(routes=[Route("/{path:path}", answer, methods=METHODS)],
                     exception_handlers={HTTPException: http_error, Exception: http_error})


class _BadRequest(Exception):
    def __init__(self, response: httpx2.Response):
        self.response = response


async def _outgoing(request: Any) -> httpx2.Request:
    """The Starlette request as the `httpx2.Request` the SDK would have built: method, path, query and body,
    and of the headers only FORWARDED (so no key goes further)."""
    body, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise _BadRequest(wire.error_response(413, "request_too_large",
                                                  f"request body is larger than {MAX_BODY // 2**20} MB"))
        body.append(chunk)
    scope = request.scope
    target = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
    if scope.get("query_string"):
        target += "?" + scope["query_string"].decode("latin-1")
    headers = {name: request.headers[name] for name in FORWARDED if name in request.headers}
    try:
        return httpx2.Request(request.method, "http://mas-serve.invalid" + target, headers=headers,
                              content=b"".join(body))
    except httpx2.InvalidURL:
        raise _BadRequest(wire.error_response(400, "invalid_request_error", "the request's path cannot be read")) \
            from None


async def _answered(transport: httpx2.AsyncBaseTransport, request: httpx2.Request,
                    receive: Callable[[], Any]) -> httpx2.Response:
    """The transport's response; what it raises (a timeout, a request a replay does not hold) as HTTP says it."""
    try:
        return await transport.handle_async_request(request)
    except httpx2.TimeoutException:
        await _hold(receive, HOLD_S)
        return wire.error_response(504, "timeout_error", "the request timed out: no answer was sent in time")
    except NotInRecording as err:
        recorded = {exchange["path"].partition("?")[0] for exchange in getattr(transport, "exchanges", [])
                    if exchange["method"] == request.method}
        status, kind = (400, "invalid_request_error") if request.url.path in recorded else (404, "not_found_error")
        return wire.error_response(status, kind, str(err))
    except httpx2.RequestError as err:  # a connection error the recording holds
        return wire.error_response(502, "api_error", f"the recorded request failed: {type(err).__name__}: {err}",
                                   {"retry-after-ms": "20"})


async def _hold(receive: Callable[[], Any], seconds: float) -> None:
    """Wait until the client gives up (it disconnects), at most `seconds`: what a timeout looks like on the wire."""
    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    try:
        await asyncio.wait_for(disconnected(), seconds)
    except asyncio.TimeoutError:
        pass


def _starlette_response(reply: httpx2.Response) -> Any:
    from starlette.responses import Response

    headers = {name: value for name, value in reply.headers.items() if name.lower() not in HOP_HEADERS}
    return Response(reply.read(), reply.status_code, headers)


# ---------------------------------------------------------------------------- what it serves

def make_transport(*, faults: str | None = None, latency: Latency | None = None, replay: str | Path | None = None,
                   fallback: bool = False) -> httpx2.AsyncBaseTransport:
    """The transport `mas serve` answers with: the offline model (`faults` as MAS_FAULTS, None: MAS_FAULTS
    itself; `latency`), or the recording `replay` (with `fallback`, the offline model answers what it lacks)."""
    offline = OfflineTransport(OfflineModel(faults=faults, latency=latency))
    if replay is None:
        return offline
    return ReplayTransport(replay, fallback=offline if fallback else None)


def _transport(args: argparse.Namespace) -> tuple[httpx2.AsyncBaseTransport, str]:
    """The transport the options ask for, and how the start line names it."""
    if args.replay is not None and not args.fallback and (args.faults is not None or args.latency is not None):
        raise ValueError("--faults and --latency change the offline model, which answers a replay only with "
                         "--fallback: add --fallback, or leave them out")
    if args.fallback and args.replay is None:
        raise ValueError("--fallback is for --replay FILE (the offline model answers what the recording lacks): "
                         "give --replay, or leave --fallback out")
    try:
        transport = make_transport(faults=args.faults, latency=args.latency, replay=args.replay,
                                   fallback=args.fallback)
    except (OSError, ValueError) as err:  # a recording missing, unreadable, or not one
        cause = err.strerror.lower() if isinstance(err, OSError) and err.strerror else str(err)
        raise ValueError(f"--replay {args.replay} cannot be served: {cause} -> give --replay a file that "
                         "MAS_RECORD (or mas.record_client) wrote") from None
    if args.replay is not None:
        what = f"the recording {args.replay} ({len(transport.exchanges)} exchanges" + \
               (", the offline model for the rest)" if args.fallback else ")")
        return transport, what
    from mas.settings import settings

    details = []
    if spec := (args.faults if args.faults is not None else settings().faults):
        details.append(f"faults {spec}")
    if args.latency is not None and (args.latency.base or args.latency.per_token):
        details.append(f"latency {args.latency.base:g} s + {args.latency.per_token:g} s a token")
    return transport, "the offline model" + (f" ({'; '.join(details)})" if details else "")


# ---------------------------------------------------------------------------- where it listens

def listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: a free one), or a ValueError with the one line that says why not.

    Bound here, not by uvicorn, so that a port already taken is one line, and --port 0's port is known."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as err:
        raise ValueError(f"--host {host} is not an address or a name this machine knows "
                         f"({getattr(err, 'strerror', None) or err}) -> 127.0.0.1 (this machine only), or 0.0.0.0 "
                         "(every network it is on)") from None
    family, kind, proto, _, address = sorted(infos, key=lambda info: info[0] != socket.AF_INET)[0]  # IPv4 first
    sock = socket.socket(family, kind, proto)
    try:
        if os.name == "posix":  # rebind at once after a restart; on POSIX it never lets two servers share a port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as err:
        sock.close()
        if err.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", errno.EADDRINUSE)):
            raise ValueError(f"port {port} on {host} is taken (another mas serve, or another server) -> stop that "
                             f"one, or give another: --port {port + 1 if 0 < port < 65535 else 8001} "
                             "(--port 0 picks a free one)") from None
        if err.errno == errno.EADDRNOTAVAIL:
            raise ValueError(f"--host {host} is not an address of this machine -> 127.0.0.1 (this machine only), "
                             "or 0.0.0.0 (every network it is on)") from None
        if err.errno == errno.EACCES:
            raise ValueError(f"port {port} needs administrator rights here -> a port from 1024, e.g. "
                             f"--port {DEFAULT_PORT}") from None
        raise ValueError(f"cannot listen on {host}:{port}: {(err.strerror or str(err)).lower()}") from None
    return sock


def url_of(sock: socket.socket) -> tuple[str, bool]:
    """The URL clients use for a listening socket, and whether it is reachable from other machines. For a
    wildcard (0.0.0.0), the address this machine has on its network (found without sending anything)."""
    host, port = sock.getsockname()[:2]
    address = ipaddress.ip_address(host)
    if address.is_unspecified:
        host = _network_address(sock.family) or host
        address = ipaddress.ip_address(host)
    shown = f"[{host}]" if address.version == 6 else host
    return f"http://{shown}:{port}", not address.is_loopback


def _network_address(family: int) -> str | None:
    """This machine's address on its network: the one a UDP socket would send from (connect sends no packet)."""
    probe = socket.socket(family, socket.SOCK_DGRAM)
    try:
        probe.connect(("10.254.254.254", 9) if family == socket.AF_INET else ("fd00::1", 9))
        return probe.getsockname()[0]
    except OSError:
        return None
    finally:
        probe.close()


# ---------------------------------------------------------------------------- the command

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`mas serve`'s options (mas.cli registers the subcommand)."""
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"the address to listen on (default {DEFAULT_HOST}: this machine only; 0.0.0.0: every "
                        "machine on your network, with a warning)")
    parser.add_argument("--port", type=_port, default=DEFAULT_PORT,
                        help=f"the port (default {DEFAULT_PORT}; 0 picks a free one)")
    parser.add_argument("--faults", type=_faults, metavar="PLAN",
                        help="a fault plan, as MAS_FAULTS (default: MAS_FAULTS), e.g. overloaded@1,fenced_json@validator;"
                        " calls are counted over every client")
    parser.add_argument("--latency", type=_latency, metavar="BASE[,PER_TOKEN]",
                        help="simulated time of a reply: BASE seconds, plus PER_TOKEN seconds an output token "
                        "(e.g. 0.3,0.01)")
    parser.add_argument("--replay", metavar="FILE", help="answer from a recorded session (MAS_RECORD wrote it)")
    parser.add_argument("--fallback", action="store_true",
                        help="with --replay: the offline model answers what the recording does not hold")
    parser.add_argument("--quiet", action="store_true", help="no line on stderr for each request")


def main(args: argparse.Namespace) -> int:
    """`mas serve`: until Ctrl-C. A problem of the setup raises ValueError (or MissingExtra) with its one line."""
    require("starlette", "mas serve")
    uvicorn = require("uvicorn", "mas serve")
    transport, what = _transport(args)
    sock = listen(args.host, args.port)
    url, networked = url_of(sock)
    served = 0

    def log(line: str) -> None:
        nonlocal served
        served += 1
        if not args.quiet:
            print(f"mas serve: {line}", file=sys.stderr, flush=True)

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:  # accepting connections now: say where, and how to use it
                if networked:
                    print(f"mas serve: warning: listening on {args.host}: anyone on this network can use this "
                          "server, with any key or none; stop it (Ctrl-C) when the class is over",
                          file=sys.stderr, flush=True)
                print(f"mas serve: {what} on {url} (Ctrl-C stops it); use it with: {_exports(url)}", flush=True)

    config = uvicorn.Config(make_app(transport, log), lifespan="off", log_level="warning", access_log=False,
                            server_header=False, timeout_graceful_shutdown=GRACEFUL_S)
    try:
        with _terminate_as_ctrl_c():
            Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shut down cleanly, then raised the signal again for its caller
        pass
    finally:
        sock.close()
    print(f"mas serve: stopped ({served} request{'' if served == 1 else 's'} served)", flush=True)
    return 0


@contextmanager
def _terminate_as_ctrl_c() -> Iterator[None]:
    """SIGTERM (a notebook's `terminate()`, a supervisor) stops the server as Ctrl-C does: uvicorn shuts down
    gracefully, then raises the signal again, and this turns it into KeyboardInterrupt, so the command exits 0."""
    if not hasattr(signal, "SIGTERM") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _exports(url: str) -> str:
    if os.name == "nt":
        return f'$env:ANTHROPIC_BASE_URL = "{url}"; $env:ANTHROPIC_API_KEY = "any"'
    return f"export ANTHROPIC_BASE_URL={url} ANTHROPIC_API_KEY=any"


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit() and int(text) <= 65535):
        raise argparse.ArgumentTypeError(f"--port takes a port number from 0 to 65535 (0: a free one), got {text!r}")
    return int(text)


def _faults(text: str) -> str:
    """A fault plan, checked exactly as MAS_FAULTS is."""
    from mas.offline.faults import FaultPlan
    from mas.settings import _check_fault_items

    try:
        FaultPlan.parse(text)
        _check_fault_items(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--faults: {err}") from None
    return text.strip()


def _latency(text: str) -> Latency:
    """`BASE[,PER_TOKEN]` in seconds.

    >>> _latency("0.3"), _latency("0.3,0.01")
    (Latency(base=0.3, per_token=0.0), Latency(base=0.3, per_token=0.01))
    """
    parts = text.split(",")
    try:
        values = [float(part) for part in parts]
    except ValueError:
        values = []
    if not 1 <= len(values) <= 2 or not all(math.isfinite(v) and 0 <= v <= HOLD_S for v in values):
        raise argparse.ArgumentTypeError(f"--latency takes BASE[,PER_TOKEN], seconds from 0 (e.g. 0.3 or 0.3,0.01), "
                                         f"got {text!r}")
    return Latency(*values)
