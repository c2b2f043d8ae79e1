"""Test-run set-up: offline always, no live client, no network, and a real Redis server.

Set in `pytest_configure` (before any notebook kernel starts, so kernels inherit it):
- the isolated environment of tests/isolation.py: MAS_OFFLINE=1, MAS_NO_LIVE=1 (the kill switch:
  building a live client raises), no key, no `.env`, no MAS_* switches from a developer's shell;
- the SDK's real HTTP transports refuse to send anything, so no test can reach the API (`loopback_http`
  lets one test reach a server of its own on this machine, such as `mas serve`, and nothing else; `loopback`
  also makes that test's clients live, as a learner's with a key);
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
_loopback_open = False  # `loopback_http`'s: requests to a server of the test's own on this machine


class NetworkForbidden(RuntimeError):
    pass


def _guarded(send):
    """The SDK's real HTTP send (sync or async: the async one's coroutine is returned as it is), refusing every
    request except, inside a test that asked for it (`loopback_http`), one to this machine."""

    def refuse(self, request, *args, **kwargs):
        if _loopback_open and request.url.host in LOOPBACK:
            return send(self, request, *args, **kwargs)
        raise NetworkForbidden(f"the test suite sends nothing over the network (tried {request.method} {request.url})")

    return refuse


def pytest_configure(config):
    global _redis
    isolate()  # offline, kill switch on, no key, no .env, no MAS_* switches (tests/isolation.py)
    httpx2.HTTPTransport.handle_request = _guarded(httpx2.HTTPTransport.handle_request)
    httpx2.AsyncHTTPTransport.handle_async_request = _guarded(httpx2.AsyncHTTPTransport.handle_async_request)
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
def memory(tmp_path):
    """A SQLiteMemory on a file of the test's own, closed afterwards."""
    from mas.memory import SQLiteMemory

    with SQLiteMemory(tmp_path / "memory.db") as mem:
        yield mem


@pytest.fixture
def loopback_http():
    """For this test, the SDK's real HTTP transports reach a server on this machine (one the test started, such
    as `mas serve` or tests/gateway.py), and still nothing else."""
    global _loopback_open
    _loopback_open = True
    yield
    _loopback_open = False


@pytest.fixture
def loopback(monkeypatch, loopback_http):
    """A live client for one test, against a server of the test's own on this machine (tests/gateway.py): the
    kill switch lifted, a fake key, and the SDK's real transport let through to loopback addresses only."""
    monkeypatch.delenv("MAS_NO_LIVE", raising=False)
    monkeypatch.delenv("MAS_OFFLINE", raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-not-a-real-key")


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
