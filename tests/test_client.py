"""Choosing the client: live or offline, the kill switch, limits, and reading a Message safely."""

from __future__ import annotations

import asyncio
import sys
import types

import anthropic
import pytest
from anthropic.types import Message

import mas
import mas.client
from mas.client import OFFLINE_BASE_URL, OFFLINE_NOTE, OFFLINE_ON_PURPOSE_NOTE, make_client, text_of, usage_of
from mas.errors import LiveClientForbidden, OfflineOnlyOptions
from mas.offline import OfflineTransport, ScriptedTransport
from mas.offline.catalog import listed_models

ASK = dict(model="claude-opus-4-6", max_tokens=50, messages=[{"role": "user", "content": "hi"}])


def ask(client) -> Message:
    """One `messages.create`, on a sync or an async client."""
    reply = client.messages.create(**ASK)
    return asyncio.run(reply) if isinstance(client, anthropic.AsyncAnthropic) else reply


def offline_answers(client) -> bool:
    """The offline model answers `client`: its placeholder base URL, and a reply with no network."""
    return str(client.base_url).startswith(OFFLINE_BASE_URL) and bool(text_of(ask(client)))


@pytest.fixture
def no_key(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("MAS_OFFLINE", raising=False)


@pytest.fixture
def live_allowed(monkeypatch):
    """Lifts the kill switch for one test, with a fake key and base URL; the suite's network
    guard (conftest) still refuses to send anything."""
    monkeypatch.delenv("MAS_NO_LIVE", raising=False)
    monkeypatch.delenv("MAS_OFFLINE", raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-not-a-real-key")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "https://gateway.example.test")


@pytest.mark.parametrize("asynchronous, sdk", [(False, anthropic.Anthropic), (True, anthropic.AsyncAnthropic)])
def test_no_key_gives_the_offline_model(no_key, asynchronous, sdk):
    client = make_client(asynchronous=asynchronous)
    assert type(client) is sdk and offline_answers(client)


def test_mas_offline_wins_over_a_key(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-not-a-real-key")
    monkeypatch.setenv("MAS_OFFLINE", "1")
    assert offline_answers(make_client())


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_transport_goes_under_the_sdk_and_its_options_to_the_offline_model(asynchronous):
    scripted = ScriptedTransport(["scripted reply"])
    assert text_of(ask(make_client(asynchronous=asynchronous, transport=scripted))) == "scripted reply"
    assert scripted.requests[0]["messages"] == ASK["messages"]
    with pytest.raises(anthropic.InternalServerError):
        ask(make_client(asynchronous=asynchronous, offline=True, faults="server_error@1", max_retries=0))


def test_a_key_gives_a_live_client_with_the_sdks_base_url(live_allowed):
    client = make_client()
    assert isinstance(client, anthropic.Anthropic)
    assert client.api_key == "sk-test-not-a-real-key"
    assert str(client.base_url).startswith("https://gateway.example.test")
    aclient = make_client(asynchronous=True)
    assert isinstance(aclient, anthropic.AsyncAnthropic)
    assert str(aclient.base_url).startswith("https://gateway.example.test")


def test_a_live_client_sends_nothing_under_test(live_allowed):
    client = make_client(max_retries=0)
    with pytest.raises(anthropic.APIConnectionError) as info:
        client.messages.create(model="claude-opus-4-6", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    assert "sends nothing over the network" in str(info.value.__cause__)


def test_kill_switch_refuses_a_live_client(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-not-a-real-key")
    monkeypatch.delenv("MAS_OFFLINE", raising=False)
    with pytest.raises(LiveClientForbidden, match="MAS_NO_LIVE"):
        make_client()
    with pytest.raises(LiveClientForbidden):
        make_client(asynchronous=True)


def test_kill_switch_message_does_not_leak_the_key(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-secret-value")
    monkeypatch.delenv("MAS_OFFLINE", raising=False)
    with pytest.raises(LiveClientForbidden) as info:
        make_client()
    assert "secret-value" not in str(info.value)


def test_explicit_limits_never_the_sdk_default(no_key, monkeypatch):
    client = make_client()
    assert client.timeout == mas.client.DEFAULT_TIMEOUT and client.max_retries == mas.client.DEFAULT_MAX_RETRIES
    monkeypatch.setenv("MAS_TIMEOUT", "7.5")
    monkeypatch.setenv("MAS_MAX_RETRIES", "5")
    client = make_client()
    assert (client.timeout, client.max_retries) == (7.5, 5)
    client = make_client(timeout=3, max_retries=0)
    assert (client.timeout, client.max_retries) == (3, 0)
    with pytest.raises(ValueError, match="timeout"):
        make_client(timeout=0)


def test_model_from_env_and_a_warning_for_unknown_ids(monkeypatch):
    monkeypatch.delenv("MAS_MODEL", raising=False)
    assert mas.client.default_model() == mas.settings.DEFAULT_MODEL
    # the SDK's own list, whatever release is installed: no literal of one release here
    listed = listed_models()
    assert listed and all(model.startswith("claude-") for model in listed)
    monkeypatch.setenv("MAS_MODEL", listed[-1])
    assert mas.client.default_model() == listed[-1]
    monkeypatch.setenv("MAS_MODEL", "claude-made-up-9")
    with pytest.warns(UserWarning, match=f"not in this SDK's model list.*{listed[0]}"):
        assert mas.client.default_model() == "claude-made-up-9"


def test_offline_announcement_is_said_once(no_key, monkeypatch, capsys):
    monkeypatch.setattr(mas.client, "_announced_offline", set())
    make_client()
    make_client()
    err = capsys.readouterr().err
    assert err.count(OFFLINE_NOTE) == 1 and "\n" not in OFFLINE_NOTE


def test_with_a_key_and_mas_offline_the_note_says_how_to_use_claude(live_allowed, monkeypatch, capsys):
    monkeypatch.setattr(mas.client, "_announced_offline", set())
    monkeypatch.setenv("MAS_OFFLINE", "1")
    make_client()
    assert capsys.readouterr().err == OFFLINE_ON_PURPOSE_NOTE + "\n"
    assert "unset" in OFFLINE_ON_PURPOSE_NOTE and "set ANTHROPIC_API_KEY" not in OFFLINE_ON_PURPOSE_NOTE


def test_in_a_notebook_the_offline_note_is_a_note_on_stdout(no_key, monkeypatch, capsys):
    """A kernel shows stderr in red: there the note goes to stdout, and it stays one line that reads as a note."""
    kernel_shell = types.SimpleNamespace(kernel=object())
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: kernel_shell))
    monkeypatch.setattr(mas.client, "_announced_offline", set())
    make_client()
    said = capsys.readouterr()
    assert said.out == OFFLINE_NOTE + "\n" and said.err == ""
    assert OFFLINE_NOTE.startswith("Note: the offline model answers") and "ANTHROPIC_API_KEY" in OFFLINE_NOTE
    # a terminal IPython has no kernel: there, as in the CLI, the line stays on stderr
    del kernel_shell.kernel
    monkeypatch.setattr(mas.client, "_announced_offline", set())
    make_client()
    said = capsys.readouterr()
    assert said.out == "" and said.err == OFFLINE_NOTE + "\n"


def _message(content):
    return Message.model_validate({"id": "m", "type": "message", "role": "assistant", "model": "x", "content": content,
                                   "stop_reason": "end_turn", "stop_sequence": None,
                                   "usage": {"input_tokens": 3, "output_tokens": 2, "cache_read_input_tokens": 7}})


def test_text_of_joins_every_text_block_whatever_comes_first():
    msg = _message([{"type": "tool_use", "id": "t", "name": "f", "input": {}},
                    {"type": "text", "text": "Hello"}, {"type": "text", "text": " world"}])
    assert text_of(msg) == "Hello world"
    assert text_of(_message([])) == ""


def test_usage_of_fills_absent_cache_fields_with_zero():
    assert usage_of(_message([])) == {"input_tokens": 3, "output_tokens": 2, "cache_creation_input_tokens": 0,
                                      "cache_read_input_tokens": 7}


def test_a_small_public_surface_and_no_optional_package_at_import():
    import subprocess
    import sys

    code = ("import sys, mas; assert all(getattr(mas, n) is not None for n in mas.__all__); "
            "print(len(mas.__all__), *(m in sys.modules for m in ('redis', 'ipywidgets', 'IPython', 'mas.widgets')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert 15 <= int(out[0]) <= 25 and out[1:] == ["False"] * 4


# ---------------------------------------------------------------------------- offline-only options, live

OFFLINE_ONLY = {"faults": "overloaded@1", "latency": (0.3, 0.0), "min_cache_tokens": 256}


@pytest.mark.parametrize("asynchronous", [False, True])
@pytest.mark.parametrize("names", [["faults"], ["latency"], ["min_cache_tokens"], list(OFFLINE_ONLY)])
def test_a_live_client_refuses_offline_only_options_naming_them(live_allowed, asynchronous, names):
    with pytest.raises(OfflineOnlyOptions) as caught:
        make_client(asynchronous=asynchronous, **{name: OFFLINE_ONLY[name] for name in names})
    said = str(caught.value)
    assert caught.value.options == tuple(names) and "\n" not in said
    assert all(f"{name}=..." in said for name in names) and "ANTHROPIC_API_KEY is set" in said
    assert f"make_client(offline=True, {', '.join(f'{n}=...' for n in names)})" in said
    assert "sk-test" not in said


def test_asked_for_explicitly_the_offline_model_takes_them_with_a_key_set(live_allowed, monkeypatch, capsys):
    monkeypatch.setattr(mas.client, "_announced_offline", set())
    client = make_client(offline=True, faults="server_error@1", max_retries=0)
    assert str(client.base_url).startswith(OFFLINE_BASE_URL)
    with pytest.raises(anthropic.InternalServerError):
        ask(client)
    # a learner with a key is not told to set one; every such client says it, so every such cell does
    make_client(offline=True)
    said = "offline on purpose: a client asked for with offline=True (a key is set: the other clients use Claude)"
    assert [line for line in capsys.readouterr().err.splitlines() if "on purpose" in line] == [said, said]


@pytest.mark.parametrize("transport", [OfflineTransport(), ScriptedTransport(["hi"])], ids=type)
def test_a_client_on_an_offline_transport_says_so_when_a_key_is_set(live_allowed, capsys, transport):
    make_client(transport=transport)
    assert capsys.readouterr().err == (f"offline on purpose: this client's transport is {type(transport).__name__} "
                                       "(a key is set: the other clients use Claude)\n")


def test_without_a_key_an_offline_transport_is_the_usual_case_and_says_nothing(no_key, capsys):
    make_client(transport=OfflineTransport())
    assert capsys.readouterr().err == ""


def test_an_option_given_as_none_is_not_given(live_allowed):
    client = make_client(latency=None, faults=None, min_cache_tokens=None)  # `x if is_offline() else None`
    assert str(client.base_url).startswith("https://gateway.example.test")


def test_offline_false_is_live_and_refuses_them_too(live_allowed):
    with pytest.raises(OfflineOnlyOptions, match=r"\(offline=False\)"):
        make_client(offline=False, latency=(0.1, 0.0))


@pytest.mark.parametrize("env", ["no_key", "live_allowed"])
def test_an_unknown_option_or_options_beside_a_transport_are_a_type_error_in_either_mode(request, env):
    request.getfixturevalue(env)
    with pytest.raises(TypeError, match=r"model=, which it does not take: its offline options are faults="):
        make_client(model="claude-opus-4-6")
    with pytest.raises(TypeError, match=r"OfflineTransport\(faults=\.\.\.\)"):
        make_client(transport=ScriptedTransport(["hi"]), faults="overloaded@1")


def test_mas_faults_with_a_live_client_is_one_warning_line_once(live_allowed, monkeypatch, capsys):
    monkeypatch.setattr(mas.client, "_warned_faults", set())
    monkeypatch.setenv("MAS_FAULTS", "overloaded@1,fenced_json@validator")
    make_client()
    make_client(asynchronous=True)
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["mas: warning: MAS_FAULTS=overloaded@1,fenced_json@validator is not applied: a fault plan is "
                     "the offline model's, and this client is live (Claude answers, with no injected faults) -> set "
                     "MAS_OFFLINE=1 to see the faults, or unset MAS_FAULTS"]


def test_mas_faults_offline_applies_and_says_nothing(no_key, monkeypatch, capsys):
    monkeypatch.setattr(mas.client, "_warned_faults", set())
    monkeypatch.setenv("MAS_FAULTS", "server_error@1")
    with pytest.raises(anthropic.InternalServerError):
        ask(make_client(max_retries=0))
    assert "MAS_FAULTS" not in capsys.readouterr().err
