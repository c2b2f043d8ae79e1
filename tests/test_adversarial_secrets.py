"""Credentials placed everywhere a URL, a config or an error can carry one, and every place `mas` could let one
out: a printed line, an exception, a repr, memory, a trace, a recording. And a recording that cannot be written:
one clear line, never "Connection error." and a billed call sent again.

The API errors here come from a real SDK client holding a key, over an in-process server that echoes the
request's headers back in its error body (as some proxies and gateways do)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import anthropic
import httpx2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mas import doctor
from mas.agents import WriterAgent
from mas.client import OFFLINE_NOTE, OFFLINE_ON_PURPOSE_NOTE, make_client, record_client, text_of
from mas.errors import AgentFailed, SettingsError, failure_of, one_line, reason_of
from mas.failures import Resilient, Retry
from mas.memory import SQLiteMemory
from mas.offline import OfflineTransport, ScriptedTransport
from mas.offline.record import RecordingTransport, load_recording
from mas.orchestrator import Orchestrator
from mas.settings import settings
from mas.tracing import Tracer

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-ant-api03-" + "Zq8Wv3" * 6 + "-XyZ09"  # the shape of a real key
TOKEN = "gw7Tok3nQ9rR2sS5tT8uU"  # a gateway's bearer token: no shape to know it by
PASSWORD = "Hunter2Redis77"
ASK = {"model": "claude-opus-4-6", "max_tokens": 64, "messages": [{"role": "user", "content": "Say hi."}]}
TOPIC = "How vector databases enable semantic search"


def shown(text: str, *secrets: str) -> list[str]:
    """The secrets of which any 6 characters in a row appear in `text` (a partial leak is a leak); a key's
    prefix, the same for every key, is no secret."""
    secrets = tuple(s.removeprefix("sk-ant-api03-") for s in secrets)
    return [s for s in secrets if any(s[i:i + 6] in text for i in range(max(1, len(s) - 5)))]


# ---------------------------------------------------------------------------- every place in a URL

URL_PLACEMENTS = {  # where a credential sits in a URL -> a URL with {s} there
    "password": "https://user:{s}@gateway.example/anthropic",
    "user only (a token)": "https://{s}@gateway.example/anthropic",
    "redis password": "redis://:{s}@cache.example:6379/0",
    "redis user and password": "redis://default:{s}@cache.example:6379/0",
    "query key": "https://gateway.example/v1?key={s}",
    "query api_key among others": "https://gateway.example/v1?beta=true&api_key={s}&x=1",
    "query token": "https://gateway.example/v1?token={s}",
    "fragment": "https://gateway.example/v1#access_token={s}",
    "password with /": "redis://user:ab/{s}@cache.example:6379/0",
    "password with ?": "https://user:ab?{s}@gateway.example/",
    "password with #": "https://user:ab#{s}@gateway.example/",
    "password with @": "https://user:ab@{s}@gateway.example/",
    "percent-encoded password": "https://user:ab%40{s}@gateway.example/",
    "no scheme": "user:{s}@cache.example:6379",
    "upper-case scheme": "HTTPS://user:{s}@gateway.example/",
    "IPv6 host": "http://user:{s}@[::1]:8080/v1",
    "malformed IPv6 host": "http://user:{s}@[::1/v1",
    "query with an @ in it": "https://gateway.example/v1?key={s}@x",
}


@pytest.mark.parametrize("placement", URL_PLACEMENTS)
def test_no_part_of_a_credential_shows_wherever_it_sits_in_a_url(placement, monkeypatch):
    url = URL_PLACEMENTS[placement].format(s=PASSWORD)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", url)
    monkeypatch.setenv("REDIS_URL", url)
    lines = [doctor.check_base_url().line(), repr(settings()), str(settings()),
             one_line(ValueError(f"cannot reach {url}")), one_line(SettingsError("REDIS_URL", url, "a redis:// URL"))]
    assert not shown("\n".join(lines), PASSWORD), lines


def test_a_redis_url_that_redis_cannot_read_is_a_line_without_its_password(monkeypatch):
    monkeypatch.setenv("REDIS_URL", f"redis://user:{PASSWORD}/x@127.0.0.1:1/0")  # redis-py quotes a piece back
    check = doctor.check_redis()
    assert check.status == "warn" and not shown(check.line(), PASSWORD), check.line()


def test_redacted_urls_still_say_where_they_point():
    from mas.redact import redact_url

    assert redact_url("https://user:pw@gateway.example:8443/anthropic?key=k") == \
        "https://***@gateway.example:8443/anthropic?***"
    assert redact_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000"
    assert redact_url("redis://localhost:6379/0") == "redis://localhost:6379/0"


secret_chars = st.text(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/?#:@%!$&'()*+,;=._~-[]"),
                       min_size=1, max_size=30)


@given(scheme=st.sampled_from(["https", "http", "redis", "rediss", "HTTPS", ""]),
       user=st.one_of(st.none(), st.sampled_from(["", "user", "default"])), password=secret_chars,
       host=st.sampled_from(["gateway.example", "cache.example", "[::a]"]),
       path=st.sampled_from(["", "/", "/v/anthropic"]),
       name=st.sampled_from(["key", "api_key", "token", "password", "sig", "x"]), value=secret_chars,
       fragment=st.one_of(st.none(), secret_chars))
def test_a_redacted_url_holds_no_character_of_any_credential(scheme, user, password, host, path, name, value,
                                                              fragment):
    """Credentials in upper case and digits, the rest of the URL in lower case: the redacted URL must hold
    no upper-case letter and no digit at all, so not even one character of a credential shows."""
    from mas.redact import redact_text, redact_url

    url = (f"{scheme}://" if scheme else "") + (f"{user}:{password}@" if user is not None else f"{password}@")
    url += host + path + f"?{name}={value}" + (f"#{fragment}" if fragment is not None else "")
    # in a text, a URL ends at a quote or a space (as in a repr), so a credential holding one is not wholly a URL
    in_text = redact_text(f"at {url} now") if scheme and not set("'\"") & set(password + value + (fragment or "")) \
        else ""
    for out in (redact_url(url), in_text):
        assert not any(c.isdigit() or c.isupper() for c in out.replace("HTTPS", "")), (url, out)


# ---------------------------------------------------------------------------- every place in an error's text

ECHOES = [  # how an error body that echoes the request looks, and its text with {key} and {token}
    ("python dict of headers", "invalid credentials in {{'x-api-key': '{key}', 'authorization': 'Bearer {token}'}}"),
    ("JSON of headers", '{{"X-Api-Key": "{key}", "Authorization": "Bearer {token}"}}'),
    ("header lines", "x-api-key: {key}\r\nAuthorization: Bearer {token}"),
    ("escaped JSON in JSON", '{{\\"x-api-key\\": \\"{key}\\", \\"authorization\\": \\"Bearer {token}\\"}}'),
    ("query of a request line", "POST /v1/messages?api_key={key}&access_token={token} HTTP/1.1"),
    ("URL with user-info", "upstream https://gw:{key}@upstream.example/v1 refused {token}@auth"),
    ("proxy and cookie headers", "proxy-authorization: Basic {token}; cookie: session={key}"),
    ("the key in prose", "the key {key} is not valid"),
]


@pytest.mark.parametrize("echo", [text for _, text in ECHOES], ids=[how for how, _ in ECHOES])
def test_an_error_text_carries_no_credential_into_any_formatter(echo, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", TOKEN)  # a token is known by its value, wherever it stands
    text = echo.format(key=KEY, token=TOKEN)
    req = httpx2.Request("POST", "https://proxy.example/v1/messages")
    body = {"type": "error", "error": {"type": "authentication_error", "message": text}}
    api_error = anthropic.AuthenticationError(f"Error code: 401 - {body}", response=httpx2.Response(401, request=req),
                                              body=body)
    lines = [one_line(api_error), reason_of(api_error), one_line(ValueError(text)),
             str(AgentFailed(failure_of("Writer", api_error, "bad_request")))]
    assert not shown("\n".join(lines), KEY, TOKEN), lines


NAMES = ["x-api-key", "X-Api-Key", "api_key", "apikey", "authorization", "Authorization", "auth_token",
         "access_token", "token", "password", "client_secret", "x-goog-api-key", "cookie"]
FORMS = [("", ": ", ""), ("", "=", ""), ("'", "': '", "'"), ('"', '": "', '"'), ('\\"', '\\": \\"', '\\"'),
         ("", " = ", ""), ("", ":", "")]  # (before the name, between name and value, after the value)
token_values = st.text(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~+/="), min_size=6, max_size=60)
prose = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz ,.;{}[]()'\"\n"), max_size=40)


@given(before=prose, name=st.sampled_from(NAMES), form=st.sampled_from(FORMS),
       bearer=st.sampled_from(["", "Bearer ", "bearer  "]), value=token_values, after=prose)
def test_a_credential_after_its_name_is_hidden_in_any_form(before, name, form, bearer, value, after):
    from mas.redact import redact_text

    opening, sep, closing = form
    out = redact_text(f"{before} {opening}{name}{sep}{bearer}{value}{closing} {after}")
    assert not any(c.isdigit() or c.isupper() for c in out.replace(name, "").replace("Bearer", "")), out


UNTOUCHED = [
    "OverloadedError 529: Overloaded",
    "max_tokens: 1024 is more than this model allows; input_tokens=5, output_tokens: 7",
    OFFLINE_NOTE,
    OFFLINE_ON_PURPOSE_NOTE,
    "run 'run-1' is about 'AI', not 'ML': use a new run_id for a new topic",
    "Writer: max_tokens after 1 attempt(s): the reply was cut at max_tokens (512)",
    "MAS_TIMEOUT='abc' is not valid: it accepts seconds > 0 and at most 3600, e.g. 60 (or leave it empty)",
    "no recording at data/session.jsonl: record one first with record_client('data/session.jsonl')",
    "Bearer tokens and API keys are two ways to authenticate; a key is secret.",
]


@pytest.mark.parametrize("text", UNTOUCHED)
def test_text_without_a_credential_is_left_as_it_was(text):
    from mas.redact import redact_text

    assert redact_text(text) == text


def test_the_credentials_of_the_environment_are_found_by_their_value(monkeypatch):
    from mas.redact import redact_text

    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("REDIS_URL", f"redis://default:{PASSWORD}@cache.example:6379/0")
    monkeypatch.setenv("MAS_BROKER_URL", "amqp://guest:Rabbit5ecret@broker.example//")
    text = f"denied for {TOKEN}; AUTH {PASSWORD} failed; login Rabbit5ecret refused"
    assert redact_text(text) == "denied for ***; AUTH *** failed; login *** refused"
    assert redact_text(f"{PASSWORD}0 is another word") == f"{PASSWORD}0 is another word"  # whole words only


N = 200_000  # a quadratic pattern takes minutes here; a linear one milliseconds


@pytest.mark.parametrize("text", ["a." * N, "a" * N + "://", "x-api-key" + " " * N + "x", "key=" * N,
                                  "bearer " * N, "sk-ant-" * N, "https://" + "@" * N, "https://a?" * N,
                                  ("x_" * 30 + "key") * (N // 60), "bearer " + "a" * N])
def test_redaction_is_linear_on_adversarial_sizes(text):
    from mas.redact import redact_text

    assert len(redact_text(text)) < 2 * len(text)  # it ends: a quadratic pattern would not, at this size


# ---------------------------------------------------------------------------- end to end: an echoing proxy

def echoing_proxy(shape: str) -> httpx2.MockTransport:
    """A server that refuses every request, echoing the headers it got (the SDK's own, key included)."""

    def answer(request: httpx2.Request) -> httpx2.Response:
        headers = dict(request.headers)
        if shape == "text":
            lines = "\n".join(f"{k}: {v}" for k, v in request.headers.items())
            return httpx2.Response(502, text=f"bad gateway\n{lines}", headers={"content-type": "text/plain"})
        message = f"invalid credentials: {headers}" if shape == "in the message" else "forbidden"
        body = {"type": "error", "error": {"type": "permission_error", "message": message}, "echo": headers}
        return httpx2.Response(403, json=body)

    return httpx2.MockTransport(answer)


@pytest.mark.parametrize("known", [True, False], ids=["key in the environment", "key only in the client"])
@pytest.mark.parametrize("shape", ["in the message", "beside the message", "text"])
@pytest.mark.parametrize("credential", ["api_key", "auth_token"])
def test_an_echoed_key_reaches_no_memory_trace_recording_or_output(tmp_path, monkeypatch, capsys, shape, known,
                                                                   credential):
    secret = KEY if credential == "api_key" else TOKEN
    if known:
        monkeypatch.setenv("ANTHROPIC_API_KEY" if credential == "api_key" else "ANTHROPIC_AUTH_TOKEN", secret)
    recording = tmp_path / "session.jsonl"
    http = httpx2.Client(transport=RecordingTransport(echoing_proxy(shape), recording))
    client = anthropic.Anthropic(**{credential: secret}, base_url="https://proxy.example", max_retries=0,
                                 http_client=http)  # a live client, as make_client builds one with a key
    memory = SQLiteMemory(tmp_path / "memory.db")
    with Tracer() as tracer:
        result = Orchestrator(memory, client=client).run(TOPIC, run_id="echo")
    assert result.status == "failed"
    traces = tmp_path / "trace.jsonl"
    tracer.to_jsonl(traces)
    with pytest.raises(AgentFailed) as failed:  # a failure policy's record of the same error
        Resilient(WriterAgent(client=client), [Retry(1)]).run("Write.")
    places = {"memory": json.dumps(memory.scoped("echo").get_all()), "output": "".join(capsys.readouterr()),
              "trace": traces.read_text(), "spans": repr(tracer.spans), "recording": recording.read_text(),
              "policy": str(failed.value) + repr(failed.value.failures)}
    memory.close()
    assert load_recording(recording)  # the exchanges were recorded, redacted
    assert {place: shown(text, secret) for place, text in places.items() if shown(text, secret)} == {}


def test_a_transport_error_and_a_query_credential_are_recorded_without_them(tmp_path):
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError(f"cannot reach proxy http://gw:{KEY}@proxy.example:3128", request=request)

    path = tmp_path / "session.jsonl"
    client = make_client(transport=RecordingTransport(httpx2.MockTransport(refuse), path), max_retries=0)
    with pytest.raises(anthropic.APIConnectionError):
        client.messages.create(**ASK, extra_query={"api_key": KEY})
    assert not shown(path.read_text(), KEY)
    # what is recorded with a credential in its query still replays: both sides are redacted alike
    record_client(path, ScriptedTransport(["recorded"])).messages.create(**ASK, extra_query={"api_key": KEY})
    assert not shown(path.read_text(), KEY)
    from mas.client import replay_client

    assert text_of(replay_client(path).messages.create(**ASK, extra_query={"api_key": KEY})) == "recorded"


def test_a_key_in_the_environment_never_reaches_a_recording_even_inside_a_reply(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    path = tmp_path / "session.jsonl"
    ask = {**ASK, "messages": [{"role": "user", "content": f"my key is {KEY}"}]}
    record_client(path, ScriptedTransport([f"your key is {KEY}"])).messages.create(**ask)
    assert not shown(path.read_text(), KEY)
    from mas.client import replay_client

    assert text_of(replay_client(path).messages.create(**ask)) == "your key is ***"  # the same request matches


# ---------------------------------------------------------------------------- a recording that cannot be written

@pytest.fixture
def read_only_dir(tmp_path):
    """A folder nothing can be written in: a chmod'ed one, or for root (who ignores modes) sysfs."""
    if os.geteuid() != 0:
        tmp_path.chmod(0o500)
        yield tmp_path
        tmp_path.chmod(0o700)
    elif Path("/sys/kernel").is_dir():
        yield Path("/sys")
    else:
        pytest.skip("no folder here is read-only for root")


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("streamed", [False, True], ids=["create", "stream"])
def test_a_full_disk_is_one_line_and_the_call_that_succeeded_is_not_sent_again(asynchronous, streamed):
    server = ScriptedTransport(["first", "second", "third"])
    client = record_client("/dev/full", server, asynchronous=asynchronous, max_retries=3)

    async def ask() -> None:
        if streamed:
            async with client.messages.stream(**ASK) as stream:
                await stream.get_final_text()
        else:
            await client.messages.create(**ASK)

    def ask_sync() -> None:
        if streamed:
            with client.messages.stream(**ASK) as stream:
                stream.get_final_text()
        else:
            client.messages.create(**ASK)

    for _ in range(2):  # the second is refused before it is sent: its reply could not be recorded either
        with pytest.raises(anthropic.APIError) as err:
            asyncio.run(ask()) if asynchronous else ask_sync()
        line = one_line(err.value)
        assert "/dev/full" in line and "No space left on device" in line and "\n" not in line, line
        assert not isinstance(err.value, anthropic.APIConnectionError) and "Connection error" not in line
    assert len(server.requests) == 1  # no SDK retry, no re-send: the one billed call was made once


def test_a_run_recording_to_a_full_disk_stops_failed_with_the_cause_and_resumes(tmp_path, monkeypatch, capsys):
    server = ScriptedTransport(["- a research note [1]"])
    memory = SQLiteMemory(tmp_path / "memory.db")
    result = Orchestrator(memory, client=record_client("/dev/full", server, max_retries=2)).run(TOPIC, run_id="r")
    assert result.status == "failed" and "/dev/full" in result.reason and "No space left" in result.reason
    assert len(server.requests) == 1
    resumed = Orchestrator(memory, client=make_client(transport=OfflineTransport()), progress=None).run(run_id="r")
    assert resumed.status == "approved"
    memory.close()


@pytest.mark.parametrize("where", ["a directory", "a folder that is a file", "a read-only folder"])
def test_a_recording_path_that_cannot_be_written_is_refused_before_any_request(where, tmp_path, monkeypatch,
                                                                                request):
    if where == "a directory":
        path, cause = tmp_path, "Is a directory"
    elif where == "a folder that is a file":
        path, cause = Path(__file__) / "session.jsonl", "Not a directory"
    else:
        path, cause = request.getfixturevalue("read_only_dir") / "session.jsonl", "Permission denied"
    server = ScriptedTransport(["never sent"])
    with pytest.raises(ValueError) as err:
        record_client(path, server)
    assert str(path) in str(err.value) and cause in str(err.value) and "MAS_RECORD" in str(err.value)
    monkeypatch.setenv("MAS_RECORD", str(path))
    with pytest.raises(ValueError, match=cause):
        make_client()
    assert server.requests == []


@pytest.mark.parametrize("where", ["/dev/full", "directory"])
def test_mas_run_with_an_unwritable_recording_is_one_line_no_traceback_no_retry(where, tmp_path):
    record = "/dev/full" if where == "/dev/full" else str(tmp_path)
    env = {**os.environ, "MAS_RECORD": record}
    run = subprocess.run([sys.executable, "-m", "mas.cli", "run", TOPIC, "--db", str(tmp_path / "m.db")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    errors = [line for line in run.stderr.splitlines() if line.startswith("mas:")]
    assert "Traceback" not in run.stderr and "Connection error" not in run.stdout + run.stderr, run.stderr
    assert len(errors) == 1 and record in errors[0], run.stderr
    assert run.returncode == (1 if where == "/dev/full" else 2)
    if where == "/dev/full":
        assert "No space left on device" in errors[0]
        with SQLiteMemory(tmp_path / "m.db") as memory:
            (run_id,) = {key.split("/")[0] for key in memory.get_all()}
            assert memory.scoped(run_id).get("status") == "failed"
