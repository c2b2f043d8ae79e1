"""Test-run set-up: offline always, no live client, no network, and a real Redis server.

Set in `pytest_configure` (before any notebook kernel starts, so kernels inherit it):
- the isolated environment of tests/isolation.py: MAS_OFFLINE=1, MAS_NO_LIVE=1 (the kill switch:
  building a live client raises), no key, no `.env`, no MAS_* switches from a developer's shell;
- the SDK's real HTTP transports refuse to send anything, so no test can reach the API (a test that talks to
  a server it started on this machine asks for the `loopback_http` fixture);
- a redis-server on 127.0.0.1 (a free port, no persistence), its URL in REDIS_URL.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx2
import pytest

sys.path.insert(0, str(Path(__file__).parent / "tests"))  # test helpers live beside the tests
from isolation import isolate  # noqa: E402
from redis_server import INSTALL_HINT, start_redis  # noqa: E402

_redis = None


LOOPBACK = ("127.0.0.1", "localhost", "::1")
_REAL_HTTP = (httpx2.HTTPTransport.handle_request, httpx2.AsyncHTTPTransport.handle_async_request)


class NetworkForbidden(RuntimeError):
    pass


def _refuse(self, request, *args, **kwargs):
    raise NetworkForbidden(f"the test suite sends nothing over the network (tried {request.method} {request.url})")


def pytest_configure(config):
    global _redis
    isolate()  # offline, kill switch on, no key, no .env, no MAS_* switches (tests/isolation.py)
    httpx2.HTTPTransport.handle_request = _refuse
    httpx2.AsyncHTTPTransport.handle_async_request = _refuse
    if os.environ.get("MAS_TEST_REDIS_URL"):
        os.environ["REDIS_URL"] = os.environ["MAS_TEST_REDIS_URL"]
        return
    _redis = start_redis()
    if _redis is not None:
        os.environ["REDIS_URL"] = _redis.url
    elif os.environ.get("MAS_REQUIRE_REDIS") == "1":
        raise pytest.UsageError(f"MAS_REQUIRE_REDIS=1 but redis-server is not installed: {INSTALL_HINT}")
    else:
        # no server: point Redis users at a port where nothing listens, so they fail fast and clearly
        os.environ["REDIS_URL"] = "redis://127.0.0.1:1/0"


def pytest_unconfigure(config):
    if _redis is not None:
        _redis.stop()


@pytest.fixture
def loopback_http(monkeypatch):
    """For this test, the SDK's real HTTP transports reach a server on this machine (one the test started, such
    as `mas serve`), and still nothing else."""
    real, real_async = _REAL_HTTP

    def handle_request(self, request):
        return real(self, request) if request.url.host in LOOPBACK else _refuse(self, request)

    async def handle_async_request(self, request):
        return await real_async(self, request) if request.url.host in LOOPBACK else _refuse(self, request)

    monkeypatch.setattr(httpx2.HTTPTransport, "handle_request", handle_request)
    monkeypatch.setattr(httpx2.AsyncHTTPTransport, "handle_async_request", handle_async_request)


@pytest.fixture
def memory(tmp_path):
    """A SQLiteMemory on a file of the test's own, closed afterwards."""
    from mas.memory import SQLiteMemory

    with SQLiteMemory(tmp_path / "memory.db") as mem:
        yield mem


@pytest.fixture
def redis_url() -> str:
    """The URL of the test run's real redis-server; skips (with how to install it) when there is none."""
    if _redis is None and not os.environ.get("MAS_TEST_REDIS_URL"):
        pytest.skip(f"redis-server is not installed: {INSTALL_HINT}")
    return os.environ["REDIS_URL"]


@pytest.fixture
def redis_to_stop():
    """A redis-server of the test's own, for a test that stops it; skips where none can be started here."""
    server = start_redis()
    if server is None:
        pytest.skip(f"redis-server is not installed here (the run uses a remote one): {INSTALL_HINT}")
    yield server
    server.stop()  # again, when the test stopped it: a no-op
