"""Progress lines: each SDK retry and each re-ask is one line on stderr as it happens (mas.progress).

Everything goes through the real SDK: offline over the offline transport with a fault plan (or a scripted
queue), live as a `mas` command against a real HTTP server on 127.0.0.1. No timings: the lines hold none.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import anthropic
import httpx2
import pytest
from gateway import serving

from mas.agents import ValidatorAgent, WriterAgent
from mas.client import OFFLINE_NOTE, make_client
from mas.contracts import ValidationResult
from mas.errors import AgentReplyError
from mas.offline import Fault, OfflineTransport, ScriptedTransport, error
from mas.progress import RetryLines, reask

TOPIC = "How vector databases enable semantic search"
ASK = dict(model="claude-opus-4-6", max_tokens=100, messages=[{"role": "user", "content": "What is an agent?"}])
VERDICT = '{"issues": [], "approved": true}'
FENCED = ("[mas] Validator: not valid JSON (it starts with '```json'; send the object alone, without code fences "
          "or prose)")
ANNOUNCEMENT = OFFLINE_NOTE


def client_for(faults, max_retries=2, asynchronous=False):
    transport = faults if isinstance(faults, ScriptedTransport) else OfflineTransport(faults=faults)
    return make_client(transport=transport, max_retries=max_retries, asynchronous=asynchronous)


def lines(capsys) -> list[str]:
    return capsys.readouterr().err.splitlines()


# ---------------------------------------------------------------- the SDK's retries


def test_two_529s_are_two_retry_lines_then_the_reply(capsys):
    reply = client_for("overloaded@1,overloaded@2").messages.create(**ASK)
    assert reply.stop_reason == "end_turn"
    assert lines(capsys) == ["[SDK] 529 overloaded: retrying (attempt 2 of 3)",
                             "[SDK] 529 overloaded: retrying (attempt 3 of 3)"]


def test_a_clean_call_says_nothing(capsys):
    client_for("").messages.create(**ASK)
    assert capsys.readouterr().err == ""


def test_a_timeout_is_said_though_no_response_came(capsys):
    client_for("timeout@1").messages.create(**ASK)
    assert lines(capsys) == ["[SDK] timeout: retrying (attempt 2 of 3)"]


def test_exhausted_retries_say_so_before_the_error(capsys):
    with pytest.raises(anthropic.InternalServerError):
        client_for("server_error*9").messages.create(**ASK)
    assert lines(capsys) == ["[SDK] 500 server error: retrying (attempt 2 of 3)",
                             "[SDK] 500 server error: retrying (attempt 3 of 3)",
                             "[SDK] 500 server error: giving up after attempt 3 of 3"]


def test_no_retries_allowed_is_one_line_and_a_400_none(capsys):
    with pytest.raises(anthropic.RateLimitError):
        client_for("rate_limit@1", max_retries=0).messages.create(**ASK)
    assert lines(capsys) == ["[SDK] 429 rate limited: giving up after attempt 1 of 1"]
    with pytest.raises(anthropic.BadRequestError):  # never retried: its exception is all there is to say
        client_for("bad_request@1").messages.create(**ASK)
    assert capsys.readouterr().err == ""


def test_the_sdks_own_rule_decides_a_dropped_connection_and_x_should_retry(capsys):
    refused = error(500)
    refused.headers["x-should-retry"] = "false"
    script = ScriptedTransport([httpx2.ConnectError("connection refused"), refused])
    with pytest.raises(anthropic.InternalServerError):
        client_for(script).messages.create(**ASK)
    assert len(script.requests) == 2  # the SDK retried the connection, and obeyed the header
    assert lines(capsys) == ["[SDK] connection error: retrying (attempt 2 of 3)"]


def test_a_stream_is_retried_visibly_too(capsys):
    with client_for("overloaded@1").messages.stream(**ASK) as stream:
        text = "".join(stream.text_stream)
    assert text and lines(capsys) == ["[SDK] 529 overloaded: retrying (attempt 2 of 3)"]


def test_async_clients_say_the_same_lines(capsys):
    client = client_for("overloaded@1,overloaded@2", asynchronous=True)
    reply = asyncio.run(client.messages.create(**ASK))
    assert reply.stop_reason == "end_turn"
    assert lines(capsys) == ["[SDK] 529 overloaded: retrying (attempt 2 of 3)",
                             "[SDK] 529 overloaded: retrying (attempt 3 of 3)"]


def test_parallel_async_calls_each_say_their_own_retry(capsys):
    client = client_for([Fault("overloaded", times=3)], asynchronous=True)

    async def three():
        return await asyncio.gather(*(client.messages.create(**ASK) for _ in range(3)))

    assert len(asyncio.run(three())) == 3
    assert lines(capsys) == ["[SDK] 529 overloaded: retrying (attempt 2 of 3)"] * 3


def test_threads_never_cut_into_each_others_lines(capfd):
    client = client_for([Fault("rate_limit", times=8)])
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: client.messages.create(**ASK), range(8)))
    said = capfd.readouterr().err.splitlines()
    assert len(said) == 8 and set(said) <= {"[SDK] 429 rate limited: retrying (attempt 2 of 3)",
                                            "[SDK] 429 rate limited: retrying (attempt 3 of 3)"}


def test_every_client_make_client_builds_carries_the_lines(monkeypatch):
    monkeypatch.delenv("MAS_NO_LIVE", raising=False)  # a live client is built, never used
    monkeypatch.delenv("MAS_OFFLINE", raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-not-a-real-key")
    for asynchronous in (False, True):
        live, offline = make_client(asynchronous=asynchronous), make_client(asynchronous=asynchronous, offline=True)
        for client in (live, offline):
            assert [type(m) for m in client._middleware] == [RetryLines]
            assert client._middleware[0].max_retries == client.max_retries


# ---------------------------------------------------------------- the re-asks


def test_a_fenced_verdict_is_one_re_ask_line(capsys):
    transport = OfflineTransport(faults="fenced_json@validator")
    ValidatorAgent(client=make_client(transport=transport)).review("- a point", "# A draft\n\nA point.")
    assert transport.model.calls == 2  # the fenced answer, then the re-ask's valid one
    assert lines(capsys) == [f"{FENCED}: re-asking (attempt 2 of 3)"]


def test_no_valid_verdict_in_three_answers_says_each_and_gives_up(capsys):
    validator = ValidatorAgent(client=client_for([Fault("fenced_json", role="validator", times=3)]))
    with pytest.raises(AgentReplyError):
        validator.review("- a point", "# A draft\n\nA point.")
    assert lines(capsys) == [f"{FENCED}: re-asking (attempt 2 of 3)", f"{FENCED}: re-asking (attempt 3 of 3)",
                             f"{FENCED}: giving up after attempt 3 of 3"]


def test_any_agents_ask_says_its_re_ask_with_the_reason(capsys):
    script = ScriptedTransport(["Sure! Here it is.", VERDICT])
    writer = WriterAgent(client=client_for(script))
    assert writer.ask("Judge this.", ValidationResult).approved is True and len(script.requests) == 2
    assert lines(capsys) == ["[mas] Writer: not valid JSON (it starts with 'Sure! H'; send the object alone, without "
                             "code fences or prose): re-asking (attempt 2 of 3)"]


def test_a_re_ask_line_is_one_short_line_with_no_secret(capsys):
    key = "sk-" + "ant-api03-" + "Zx9q" * 6  # built from parts: no key-shaped literal in the tree
    reask("Validator", f"the reply quoted x-api-key: {key}\nand a second line", 1, 3)
    assert lines(capsys) == ["[mas] Validator: the reply quoted x-api-key: ***: re-asking (attempt 2 of 3)"]


# ---------------------------------------------------------------- the switch


@pytest.mark.parametrize("word", ["0", "off", "false", "no"])
def test_mas_progress_off_silences_every_line(monkeypatch, capsys, word):
    monkeypatch.setenv("MAS_PROGRESS", word)
    client_for("overloaded@1,overloaded@2").messages.create(**ASK)
    ValidatorAgent(client=client_for("fenced_json@validator")).review("- a point", "# A draft")
    with pytest.raises(anthropic.InternalServerError):
        client_for("server_error*9").messages.create(**ASK)
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------- the command, as a room runs it


def mas_run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "MAS_DB": str(tmp_path / "memory.db"), **env}
    return subprocess.run([sys.executable, "-m", "mas.cli", *args], cwd=tmp_path, env=environ, capture_output=True,
                          text=True, timeout=120)


def said(done: subprocess.CompletedProcess) -> list[str]:
    return [line for line in done.stderr.splitlines() if line != ANNOUNCEMENT]


def test_mas_run_shows_each_retry_and_re_ask_on_stderr(tmp_path):
    retried = mas_run(tmp_path, "run", TOPIC, MAS_FAULTS="overloaded@1,overloaded@2")
    assert retried.returncode == 0, retried.stderr
    assert said(retried) == ["[SDK] 529 overloaded: retrying (attempt 2 of 3)",
                             "[SDK] 529 overloaded: retrying (attempt 3 of 3)"]
    assert "[SDK]" not in retried.stdout  # the report stays clean: the lines are stderr's
    reasked = mas_run(tmp_path, "run", TOPIC, MAS_FAULTS="fenced_json@validator")
    assert reasked.returncode == 0 and said(reasked) == [f"{FENCED}: re-asking (attempt 2 of 3)"]
    failed = mas_run(tmp_path, "run", TOPIC, MAS_FAULTS="server_error*9")
    assert failed.returncode == 1 and said(failed)[:3] == [
        "[SDK] 500 server error: retrying (attempt 2 of 3)", "[SDK] 500 server error: retrying (attempt 3 of 3)",
        "[SDK] 500 server error: giving up after attempt 3 of 3"]
    assert said(failed)[3].startswith("mas: failed: InternalServerError 500") and len(said(failed)) == 4
    quiet = mas_run(tmp_path, "run", TOPIC, MAS_FAULTS="overloaded@1,fenced_json@validator", MAS_PROGRESS="off")
    assert quiet.returncode == 0 and said(quiet) == []


def test_the_lines_stand_where_they_happened_among_the_runs_own(tmp_path):
    # stdout is a pipe here, so block-buffered: only the flush before each line keeps the order
    environ = {**os.environ, "MAS_DB": str(tmp_path / "memory.db"), "MAS_FAULTS": "overloaded@2"}
    environ.pop("PYTHONUNBUFFERED", None)
    done = subprocess.run([sys.executable, "-m", "mas.cli", "run", TOPIC], cwd=tmp_path, env=environ,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    out = done.stdout.splitlines()
    at = out.index("[SDK] 529 overloaded: retrying (attempt 2 of 3)")
    assert out[at - 2].startswith("[Researcher] Research complete")  # call 2 is the writer's
    assert out[at - 1] == "[Orchestrator] Dispatching to Writer..."
    assert out[at + 1].startswith("[Writer] Draft 1 complete")


@contextmanager
def overloaded_server(busy: int):
    """A Messages-API server that is overloaded for the first `busy` requests, then answers; its URL."""
    left, lock = [busy], threading.Lock()

    def answer(method: str, path: str, body: bytes):
        with lock:
            left[0] -= 1
            overloaded = left[0] >= 0
        reply = ({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}} if overloaded
                 else {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-opus-4-6",
                       "content": [{"type": "text", "text": "It coordinates agents."}],
                       "stop_reason": "end_turn", "stop_sequence": None,
                       "usage": {"input_tokens": 3, "output_tokens": 4}})
        return 529 if overloaded else 200, {"retry-after-ms": "1"}, json.dumps(reply).encode()

    with serving(answer) as httpd:
        yield httpd.url


def test_a_live_client_over_the_sdks_own_http_client_shows_its_retries(tmp_path):
    key = "sk-" + "ant-" + "test-not-a-key"
    with overloaded_server(busy=1) as url:
        environ = {k: v for k, v in os.environ.items() if k not in ("MAS_OFFLINE", "MAS_NO_LIVE")}
        done = subprocess.run([sys.executable, "-m", "mas.cli", "hello"], cwd=tmp_path, text=True, timeout=120,
                              capture_output=True, env={**environ, "ANTHROPIC_API_KEY": key,
                                                        "ANTHROPIC_BASE_URL": url, "MAS_MAX_RETRIES": "2"})
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == ["[SDK] 529 overloaded: retrying (attempt 2 of 3)"]
    assert "It coordinates agents." in done.stdout
