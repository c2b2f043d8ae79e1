"""A Messages-API gateway of the test's own, on 127.0.0.1: a real HTTP server (the standard library's) in a thread.

    with gateway(missing=("/v1/messages/count_tokens", "/v1/models")) as url:
        ...  # ANTHROPIC_BASE_URL=url: POST /v1/messages answers MESSAGE, the missing paths answer 404

It serves what a thin proxy in front of some model serves: `POST /v1/messages` (one fixed reply), and a 404 in
a gateway's own words (not the API's error shape) for every other path, or for the paths in `missing` only when
`not_found` gives the 404's body (the API's own "model: ..." 404, say). Requests are kept in `requests`.
"""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterator

MESSAGE = {"id": "msg_gw", "type": "message", "role": "assistant", "model": "claude-opus-4-6",
           "content": [{"type": "text", "text": "Hello from the gateway."}], "stop_reason": "end_turn",
           "stop_sequence": None, "usage": {"input_tokens": 7, "output_tokens": 5}}
GATEWAY_404 = json.dumps({"detail": "Not Found"}).encode()  # what a FastAPI proxy says for a route it lacks


Answer = Callable[[str, str, bytes], "tuple[int, dict[str, str], bytes]"]  # (method, path, body) -> the reply


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the names http.server calls
        self._answer()

    def do_POST(self):  # noqa: N802
        self._answer()

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        path = self.path.split("?", 1)[0]
        self.server.requests.append((self.command, path, body))
        status, headers, content = self.server.answer(self.command, path, body)
        self.send_response(status)
        for name, value in {"content-type": "application/json", **headers}.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def log_message(self, *args):
        pass


@contextmanager
def serving(answer: Answer) -> Iterator[ThreadingHTTPServer]:
    """A real HTTP server on 127.0.0.1 that replies with `answer(method, path, body)`; the running server
    (`.url`, `.requests`), shut down afterwards."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.answer, httpd.requests = answer, []
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def gateway(missing: tuple[str, ...] = (), not_found: bytes = GATEWAY_404):
    """The gateway: `POST /v1/messages` answers MESSAGE; the paths in `missing`, and every other, a 404."""
    def answer(method: str, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        if path in missing or (method, path) != ("POST", "/v1/messages"):
            return 404, {}, not_found
        return 200, {}, json.dumps(MESSAGE).encode()

    return serving(answer)
