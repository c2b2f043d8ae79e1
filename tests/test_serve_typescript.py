"""The official TypeScript SDK against `mas serve`: tests/ts_client/client.mjs, a script as a JS user writes it,
pointed at the server by ANTHROPIC_BASE_URL alone.

The script creates, streams, counts tokens and lists models; what it got is compared with what the Python SDK
gets from the same server for the same request (the offline model is deterministic). It needs Node.js and the
SDK pinned in tests/ts_client/package-lock.json (`npm ci --prefix tests/ts_client`): without them the test skips
with that hint, unless MAS_REQUIRE_NODE=1 (CI), where it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import anthropic
import pytest
from test_serve import Server, serving

from mas.client import text_of
from mas.prompts import SYSTEM_PROMPTS, research_task

CLIENT_DIR = Path(__file__).parent / "ts_client"
SDK_DIR = CLIENT_DIR / "node_modules" / "@anthropic-ai" / "sdk"
INSTALL_HINT = "npm ci --prefix tests/ts_client"
MODEL = "claude-opus-4-6"  # as client.mjs asks
SYSTEM = SYSTEM_PROMPTS["researcher"]
TASK = research_task("How vector databases enable semantic search", "engineers")
# built from parts, so that no key-shaped string is in the source; distinctive, so a log can be searched for it
FAKE_KEY = "sk-ant-" + "ts-" + "x" * 16


@pytest.fixture(scope="module")
def node() -> str:
    """The `node` binary, with the pinned SDK installed beside client.mjs; when either is missing, a skip with the
    hint (a failure under MAS_REQUIRE_NODE=1)."""
    binary = shutil.which("node")
    if binary is None:
        missing = "node is not installed (Node.js 18 or newer, with npm)"
    elif not SDK_DIR.is_dir():
        missing = "tests/ts_client/node_modules is missing"
    else:
        return binary
    if os.environ.get("MAS_REQUIRE_NODE") == "1":
        pytest.fail(f"MAS_REQUIRE_NODE=1 but {missing}: {INSTALL_HINT}", pytrace=False)
    pytest.skip(f"{missing}: {INSTALL_HINT}")


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    with serving(tmp_path_factory.mktemp("serve")) as running:
        yield running


def run_client(node: str, url: str) -> dict:
    """client.mjs's one JSON line, run as a user runs it: the key and the server from the environment."""
    env = {**os.environ, "ANTHROPIC_BASE_URL": url, "ANTHROPIC_API_KEY": FAKE_KEY}
    env.pop("ANTHROPIC_AUTH_TOKEN", None)
    done = subprocess.run([node, str(CLIENT_DIR / "client.mjs"), SYSTEM, TASK], cwd=CLIENT_DIR, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_typescript_sdk_gets_what_the_python_sdk_gets(node, server, loopback_http):
    got = run_client(node, server.url)
    python = anthropic.Anthropic(base_url=server.url, api_key=FAKE_KEY, max_retries=0)
    ask = dict(model=MODEL, max_tokens=1500, system=SYSTEM, messages=[{"role": "user", "content": TASK}])

    research = text_of(python.messages.create(**ask))
    assert research.startswith("## Research: How vector databases enable semantic search\n\n- ")  # a real reply
    assert got["create_text"] == research and got["stop_reason"] == "end_turn"
    assert got["create_first_line"] == research.splitlines()[0]

    with python.messages.stream(**ask) as stream:
        streamed = "".join(stream.text_stream)
        output_tokens = stream.get_final_message().usage.output_tokens
    assert got["stream_text_equals_final"] is True
    assert got["stream_text"] == streamed == research and got["stream_output_tokens"] == output_tokens

    count = python.messages.count_tokens(model=MODEL, system=SYSTEM, messages=ask["messages"]).input_tokens
    assert got["count_tokens"] == count > 0

    models = [model.id for model in python.models.list()]
    assert got["models"] == models and MODEL in models and all(id.startswith("claude-") for id in models)

    logs = server.logs()
    assert "GET /v1/models -> 200" in logs  # the requests were logged, and their key never was
    assert FAKE_KEY not in logs and "ts-" + "x" * 16 not in logs
