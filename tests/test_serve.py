"""`mas serve` (mas/serve.py): the offline model, or a recording, as a local HTTP server speaking the Messages API.

Each server is the command itself, started as a subprocess on a free port (as a room runs it), and stopped
with Ctrl-C (SIGINT) at the end of each test, which checks that it stops cleanly. The clients are the real SDK
(over its real HTTP transport, to 127.0.0.1 only: the `loopback_http` fixture), a script in the tutorial's own
style run as a subprocess, and raw HTTP as curl sends it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import anthropic
import pytest

from mas.client import make_client, record_client, text_of
from mas.offline import OfflineTransport

MODEL = "claude-opus-4-6"
TOPIC = "How vector databases enable semantic search"
ASK = dict(model=MODEL, max_tokens=400, system="You are a researcher.",
           messages=[{"role": "user", "content": f"<topic>{TOPIC}</topic>"}])
# built from parts, so that no key-shaped string is in the source; distinctive, so a log can be searched for it
FAKE_KEY = "sk-ant-" + "test-" + "x" * 20
START_LINE = re.compile(r"^mas serve: (?P<what>.+) on (?P<url>http://\S+) \(Ctrl-C stops it\); use it with: "
                        r"export ANTHROPIC_BASE_URL=(?P=url) ANTHROPIC_API_KEY=any$", re.M)
EVENT_ORDER = re.compile(r"message_start (content_block_start (content_block_delta )+content_block_stop )+"
                         r"message_delta message_stop")


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    out: Path
    err: Path

    def logs(self) -> str:
        return self.out.read_text(encoding="utf-8") + self.err.read_text(encoding="utf-8")

    def start_line(self) -> re.Match:
        return START_LINE.search(self.out.read_text(encoding="utf-8"))


def mas_serve(folder: Path, *options: str) -> list[str]:
    return [sys.executable, "-m", "mas.cli", "serve", *options]


@contextmanager
def serving(folder: Path, *options: str, port: str = "0") -> Iterator[Server]:
    """`mas serve --port 0 *options` running, once it says it listens; stopped with Ctrl-C afterwards, checked
    to stop cleanly (exit 0, a last line, no traceback)."""
    folder.mkdir(parents=True, exist_ok=True)
    out, err = folder / "serve.out", folder / "serve.err"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        # output to files, not pipes: a server logging a line a request must never block on a full pipe
        process = subprocess.Popen(mas_serve(folder, "--port", port, *options), cwd=folder, stdout=stdout,
                                   stderr=stderr)
    server = Server("", process, out, err)
    deadline = time.monotonic() + 60
    while (match := server.start_line()) is None:
        assert process.poll() is None, f"mas serve exited with {process.returncode}: {server.logs()}"
        assert time.monotonic() < deadline, f"mas serve did not start: {server.logs()}"
        time.sleep(0.05)
    server.url = match["url"]
    try:
        yield server
    finally:
        if process.poll() is None:  # Windows has no Ctrl-C to send a process: there it is only ended
            process.send_signal(signal.SIGINT) if os.name == "posix" else process.terminate()
        try:
            status = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert "Traceback" not in server.logs(), server.logs()
    if os.name == "posix":
        assert status == 0 and "mas serve: stopped (" in server.logs(), server.logs()


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    """One plain `mas serve` for the tests that need no option of their own."""
    with serving(tmp_path_factory.mktemp("serve")) as running:
        yield running


def eventually(found, count: int, seconds: float = 30.0) -> list:
    """`found()` once it holds `count` items (what a server logs as requests end), polled."""
    deadline = time.monotonic() + seconds
    while len(items := found()) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return items


def sdk(url: str, **options) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key=options.pop("api_key", "anything"),
                               max_retries=options.pop("max_retries", 0), **options)


def http(url: str, data: bytes | None = None, headers: dict | None = None, method: str | None = None):
    """A raw request, as curl sends one (no SDK): (status, headers, body)."""
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def sse_names(text: str) -> list[str]:
    """The event names of an event stream, each checked against its data's type."""
    names = []
    for block in filter(str.strip, text.replace("\r\n", "\n").split("\n\n")):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        assert json.loads(lines["data"])["type"] == lines["event"]
        names.append(lines["event"])
    return names


# ---------------------------------------------------------------------------- the SDK, unchanged

def test_the_sdk_creates_streams_counts_and_lists_models_as_in_process(server, loopback_http):
    assert server.url.startswith("http://127.0.0.1:") and "warning" not in server.logs()  # this machine only
    client, local = sdk(server.url), make_client(offline=True)
    # what a client gets over HTTP is what make_client() gets in process, byte for byte
    assert client.messages.create(**ASK).to_json() == local.messages.create(**ASK).to_json()

    events = list(client.messages.create(**ASK, stream=True))
    assert EVENT_ORDER.fullmatch(" ".join(event.type for event in events))
    streamed = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    assert streamed == text_of(local.messages.create(**ASK))
    with client.messages.stream(**ASK) as stream:
        assert "".join(stream.text_stream) == streamed
        assert stream.get_final_message().usage.output_tokens == events[-2].usage.output_tokens

    count = dict(model=MODEL, messages=ASK["messages"], system=ASK["system"])
    assert client.messages.count_tokens(**count).input_tokens == local.messages.count_tokens(**count).input_tokens
    assert [m.id for m in client.models.list()] == [m.id for m in local.models.list()]
    assert client.models.retrieve(MODEL).id == MODEL


def test_fifty_concurrent_streams_each_arrive_whole_and_in_order(server, loopback_http):
    asks = [{**ASK, "messages": [{"role": "user", "content": f"<topic>{TOPIC}</topic> (reader {n})"}]}
            for n in range(50)]
    expected = [text_of(make_client(offline=True).messages.create(**ask)) for ask in asks]

    async def one(client: anthropic.AsyncAnthropic, ask: dict) -> tuple[str, str]:
        names, text = [], ""
        async with await client.messages.create(**ask, stream=True) as stream:
            async for event in stream:
                names.append(event.type)
                if event.type == "content_block_delta":
                    text += event.delta.text
        return " ".join(names), text

    async def main() -> list[tuple[str, str]]:
        client = anthropic.AsyncAnthropic(base_url=server.url, api_key="anything", max_retries=0)
        async with client:
            return await asyncio.gather(*(one(client, ask) for ask in asks))

    results = asyncio.run(main())
    assert all(EVENT_ORDER.fullmatch(names) for names, _ in results)
    assert [text for _, text in results] == expected


TUTORIAL_SCRIPT = '''\
"""Research, write, validate: the tutorial's first pipeline, as a learner writes it."""
import json

import anthropic

from mas.prompts import SYSTEM_PROMPTS, research_task, validate_task, write_task

client = anthropic.Anthropic()  # the key and the server from the environment, as the SDK reads them
MODEL = "claude-opus-4-6"


def ask(role, task, max_tokens=1500):
    response = client.messages.create(
        model=MODEL,
        max_tokens=max_tokens,
        system=SYSTEM_PROMPTS[role],
        messages=[{"role": "user", "content": task}],
    )
    return response.content[0].text


if __name__ == "__main__":
    topic, audience = "How vector databases enable semantic search", "senior software engineers"
    research = ask("researcher", research_task(topic, audience))
    draft = ask("writer", write_task(topic, audience, research))
    verdict = json.loads(ask("validator", validate_task(research, draft)))
    print(json.dumps({"research_points": research.count("\\n- ") + 1, "title": draft.splitlines()[0],
                      "verdict": verdict}))
'''


def test_a_script_in_the_tutorials_style_runs_unchanged_against_the_server(server, tmp_path):
    script = tmp_path / "pipeline.py"
    script.write_text(TUTORIAL_SCRIPT, encoding="utf-8")
    env = {**os.environ, "ANTHROPIC_BASE_URL": server.url, "ANTHROPIC_API_KEY": FAKE_KEY}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["research_points"] >= 3 and result["title"].startswith("# ")
    verdict = result["verdict"]
    assert set(verdict) >= {"issues", "approved"} and isinstance(verdict["approved"], bool)
    assert verdict["approved"] is (not verdict["issues"])
    assert FAKE_KEY not in server.logs()


# ---------------------------------------------------------------------------- raw HTTP: curl, any client

def test_raw_http_without_the_sdk_or_a_key(server):
    body = json.dumps(ASK).encode()
    status, headers, raw = http(server.url + "/v1/messages", body, {"content-type": "application/json"})
    assert status == 200 and headers["content-type"] == "application/json"
    assert raw == make_client(offline=True).messages.with_raw_response.create(**ASK).http_response.content

    streamed = json.dumps({**ASK, "stream": True}).encode()
    status, headers, raw = http(server.url + "/v1/messages", streamed, {"content-type": "application/json"})
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    assert EVENT_ORDER.fullmatch(" ".join(sse_names(raw.decode())))

    status, _, raw = http(server.url + "/v1/messages/count_tokens", json.dumps(
        {"model": MODEL, "messages": ASK["messages"]}).encode(), {"content-type": "application/json"})
    assert status == 200 and json.loads(raw)["input_tokens"] > 0
    status, _, raw = http(server.url + "/v1/models?limit=2")
    assert status == 200 and len(json.loads(raw)["data"]) == 2


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_streams_a_reply(server):
    done = subprocess.run(["curl", "-sSN", server.url + "/v1/messages", "-H", "content-type: application/json",
                           "-H", "anthropic-version: 2023-06-01", "-H", "x-api-key: any",
                           "-d", json.dumps({**ASK, "stream": True})], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert EVENT_ORDER.fullmatch(" ".join(sse_names(done.stdout)))


@pytest.mark.parametrize("method, path", [("GET", "/"), ("GET", "/v1/nothing"), ("POST", "/v1/complete"),
                                          ("DELETE", "/v1/messages"), ("GET", "/v1/models/claude-none-1")])
def test_an_unknown_path_is_a_404_in_the_apis_error_shape(server, method, path):
    status, headers, raw = http(server.url + path, b"{}" if method == "POST" else None, method=method)
    body = json.loads(raw)
    assert status == 404 and headers["content-type"] == "application/json"
    assert body["type"] == "error" and body["error"]["type"] == "not_found_error" and body["request_id"]


def test_bad_requests_are_the_apis_400s_and_a_huge_body_a_413(server):
    for data in (b"{not json", b"[]", json.dumps({"model": MODEL, "messages": []}).encode()):
        status, _, raw = http(server.url + "/v1/messages", data, {"content-type": "application/json"})
        assert status == 400 and json.loads(raw)["error"]["type"] == "invalid_request_error"
    status, _, raw = http(server.url + "/v1/messages", b" " * (32 * 2**20 + 1), {"content-type": "application/json"})
    assert status == 413 and json.loads(raw)["error"]["type"] == "request_too_large"


def test_the_key_is_accepted_never_echoed_and_never_logged(server, loopback_http):
    """Any key, a bearer token or none is accepted; no reply (error replies included) and no log line holds it."""
    seen = []
    for client in (sdk(server.url, api_key=FAKE_KEY),
                   anthropic.Anthropic(base_url=server.url, auth_token=FAKE_KEY, max_retries=0)):
        raw = client.messages.with_raw_response.create(**ASK)
        seen.append(raw.http_response.text + str(raw.http_response.headers))
        with pytest.raises(anthropic.BadRequestError) as caught:
            client.messages.create(model=MODEL, max_tokens=0, messages=ASK["messages"])
        seen.append(caught.value.response.text + str(caught.value.response.headers))
        with pytest.raises(anthropic.NotFoundError) as caught:
            client.models.retrieve("claude-none-1")
        seen.append(caught.value.response.text)
    secret = {"x-api-key": FAKE_KEY, "authorization": f"Bearer {FAKE_KEY}", "cookie": f"session={FAKE_KEY}"}
    for path, data in (("/v1/messages", b"{not json"), ("/v1/nothing", None), (f"/v1/models?api_key={FAKE_KEY}", None)):
        status, headers, raw = http(server.url + path, data, {**secret, "content-type": "application/json"})
        seen.append(raw.decode() + str(headers))
    status, _, _ = http(server.url + "/v1/messages", json.dumps(ASK).encode(), {"content-type": "application/json"})
    assert status == 200  # no key at all: accepted too, as a local gateway does
    assert all(FAKE_KEY not in text for text in seen)
    logs = server.logs()
    assert "/v1/models?api_key=***" in logs  # the request was logged, its credential hidden
    assert FAKE_KEY not in logs and "test-" + "x" * 20 not in logs


# ---------------------------------------------------------------------------- options

def test_a_fault_plan_fails_calls_and_the_sdk_retries_through_them(tmp_path, loopback_http):
    with serving(tmp_path, "--faults", "overloaded@1,timeout@3") as running:
        client, expected = sdk(running.url, max_retries=2, timeout=2.0), make_client(offline=True).messages.create(**ASK)
        assert client.messages.create(**ASK).to_json() == expected.to_json()
        # a timeout: no answer; the client's own timeout fires, and its retry is answered
        assert client.messages.create(**ASK).to_json() == expected.to_json()
        assert "faults overloaded@1,timeout@3" in running.start_line()["what"]
        # the held request's line comes once the server has seen the client give up
        statuses = eventually(lambda: re.findall(r"POST /v1/messages -> (\d+)", running.logs()), count=4)
    assert statuses[:2] == ["529", "200"] and sorted(statuses[2:]) == ["200", "504"]


def test_the_fault_plan_and_latency_are_said_on_the_start_line(tmp_path, loopback_http):
    with serving(tmp_path, "--latency", "0.05,0.001") as running:
        assert running.start_line()["what"] == "the offline model (latency 0.05 s + 0.001 s a token)"
        assert sdk(running.url).messages.create(**ASK).content[0].text


def test_a_recorded_session_is_served_and_what_it_lacks_is_refused_or_falls_back(tmp_path, loopback_http):
    path = tmp_path / "session.jsonl"
    recorder = record_client(path, OfflineTransport())
    recorded = recorder.messages.create(**ASK)
    with recorder.messages.stream(**{**ASK, "max_tokens": 300}) as stream:
        recorded_stream = "".join(stream.text_stream)
    other = {**ASK, "max_tokens": 123}

    with serving(tmp_path / "replay", "--replay", str(path)) as running:
        client = sdk(running.url)
        assert running.start_line()["what"] == f"the recording {path} (2 exchanges)"
        assert client.messages.create(**ASK).to_json() == recorded.to_json()
        with client.messages.stream(**{**ASK, "max_tokens": 300}) as stream:
            assert "".join(stream.text_stream) == recorded_stream
        events = list(client.messages.create(**ASK, stream=True))  # recorded whole, served as a stream
        assert EVENT_ORDER.fullmatch(" ".join(e.type for e in events))
        with pytest.raises(anthropic.BadRequestError, match="differs in: max_tokens"):
            client.messages.create(**other)
        with pytest.raises(anthropic.NotFoundError, match="holds no GET /v1/models"):
            client.models.list()

    with serving(tmp_path / "fallback", "--replay", str(path), "--fallback") as running:
        client = sdk(running.url)
        assert client.messages.create(**ASK).to_json() == recorded.to_json()
        assert text_of(client.messages.create(**other)) == text_of(make_client(offline=True).messages.create(**other))


def test_a_classroom_host_warns_once_that_the_whole_network_can_use_it(tmp_path, loopback_http):
    with serving(tmp_path, "--host", "0.0.0.0") as running:
        warnings = [line for line in running.err.read_text().splitlines() if "warning" in line]
        port = running.url.rsplit(":", 1)[1]
        assert sdk(f"http://127.0.0.1:{port}").messages.create(**ASK).content[0].text
    assert len(warnings) == 1 and "anyone on this network can use this server" in warnings[0]


def problem_line(done: subprocess.CompletedProcess) -> str:
    """The one line a command that refused to start said on stderr; exit 2, no traceback."""
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and done.returncode == 2 and not done.stdout, (done.returncode, done.stdout, done.stderr)
    return lines[0]


def test_a_port_already_taken_is_one_line_and_exit_2(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(mas_serve(tmp_path, "--port", str(port)), cwd=tmp_path, capture_output=True, text=True,
                              timeout=60)
    line = problem_line(done)
    assert line.startswith(f"mas: port {port} on 127.0.0.1 is taken") and "--port 0 picks a free one" in line


@pytest.mark.parametrize("options, said", [
    (["--faults", "bogus"], "unknown fault kind 'bogus'"),
    (["--faults", "overloaded@0"], "@ takes a call number from 1"),
    (["--latency", "fast"], "--latency takes BASE[,PER_TOKEN]"),
    (["--latency", "-1"], "--latency takes BASE[,PER_TOKEN]"),
    (["--port", "70000"], "--port takes a port number"),
    (["--fallback"], "--fallback is for --replay FILE"),
    (["--replay", "missing.jsonl"], "--replay missing.jsonl cannot be served: no recording at missing.jsonl"),
    (["--replay", "."], "--replay . cannot be served: is a directory"),
    (["--replay", "session.jsonl", "--faults", "overloaded@1"], "add --fallback"),
    (["--host", "no-such-host.invalid"], "--host no-such-host.invalid is not an address or a name"),
])
def test_a_bad_option_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, options, said):
    # in process: the options are checked before any server starts (the command as a process is tested above)
    from mas.cli import main

    (tmp_path / "session.jsonl").write_text("")
    monkeypatch.chdir(tmp_path)
    try:
        status = main(["serve", "--port", "0", *options])
    except SystemExit as stop:  # argparse's own refusals
        status = stop.code
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert status == 2 and len(lines) == 1, lines
    assert lines[0].startswith("mas") and said in lines[0], lines[0]


def test_without_the_serve_extra_it_says_how_to_install_it(tmp_path):
    code = ("import sys; sys.modules['starlette'] = None  # what Python does for a package that is not installed\n"
            "from mas.cli import main; sys.exit(main(['serve', '--port', '0']))")
    line = problem_line(subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                                       timeout=60))
    assert line.startswith("mas: mas serve needs starlette, which is not installed") and "pip install 'mas[serve]'" in line


def test_neither_import_mas_nor_the_command_line_loads_the_server_packages():
    code = ("import sys, mas, mas.cli, mas.serve; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'starlette', 'uvicorn'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"
