"""A real redis-server on 127.0.0.1 for the test run: a free port, persistence off, stopped afterwards.

Used by tests/conftest.py (for the tests, and for notebook kernels through REDIS_URL) and by
tools/refresh_notebooks.py. Debian's package: `apt-get install redis-server`.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass

INSTALL_HINT = "install it with `sudo apt-get install redis-server` (Debian/Ubuntu) or `brew install redis` (macOS)"


@dataclass
class RedisServer:
    url: str
    process: subprocess.Popen
    workdir: tempfile.TemporaryDirectory

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.workdir.cleanup()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(timeout: float = 10.0) -> RedisServer | None:
    """Start redis-server and wait until it answers PING; None when the binary is not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    port = _free_port()
    workdir = tempfile.TemporaryDirectory(prefix="mas-redis-")
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", workdir.name, "--protected-mode", "yes"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return RedisServer(f"redis://127.0.0.1:{port}/0", process, workdir)
        except OSError:
            time.sleep(0.05)
    process.kill()
    workdir.cleanup()
    raise RuntimeError(f"redis-server did not answer on 127.0.0.1:{port} within {timeout}s")
