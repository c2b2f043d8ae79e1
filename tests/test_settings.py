"""One settings object: every switch parsed one way, `.env` honoured by every command, bad values in one line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mas.errors import SettingsError
from mas.settings import Settings, settings

SWITCHES = [info.alias for info in Settings.model_fields.values() if info.annotation is bool]
ON, OFF = ("1", "true", "True", "yes", "on", " 1 "), ("0", "false", "FALSE", "no", "off")
ACCEPTED = {v.strip().lower() for v in ON + OFF} | {"t", "f", "y", "n"}  # pydantic's own short forms too


@pytest.mark.parametrize("variable", SWITCHES)
def test_every_on_off_switch_reads_the_same_words(monkeypatch, variable):
    field = next(name for name, info in Settings.model_fields.items() if info.alias == variable)
    for word in ON:
        monkeypatch.setenv(variable, word)
        assert getattr(settings(), field) is True, (variable, word)
    for word in OFF:
        monkeypatch.setenv(variable, word)
        assert getattr(settings(), field) is False, (variable, word)
    monkeypatch.setenv(variable, "")  # blank is unset: the switch's default
    assert getattr(settings(), field) is Settings.model_fields[field].default, variable


def test_replay_fallback_no_means_off(monkeypatch):  # it used to turn the fallback on
    for word in ("no", "off", "False"):
        monkeypatch.setenv("MAS_REPLAY_FALLBACK", word)
        assert settings().replay_fallback is False


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=12))
def test_a_word_that_is_not_on_or_off_is_one_clear_error(word):
    if word.strip().lower() in ACCEPTED or not word.strip():
        return
    os.environ["MAS_INTERACTIVE"] = word
    try:
        with pytest.raises(SettingsError) as caught:
            settings()
    finally:
        del os.environ["MAS_INTERACTIVE"]
    assert caught.value.variable == "MAS_INTERACTIVE" and "\n" not in str(caught.value)
    assert "it accepts on/off" in str(caught.value)


@pytest.mark.parametrize(("variable", "value", "accepts"), [
    ("MAS_TIMEOUT", "abc", "seconds > 0"), ("MAS_TIMEOUT", "-1", "seconds > 0"),
    ("MAS_MAX_RETRIES", "2.5", "a whole number from 0 to 10"), ("MAS_OFFLINE", "maybe", "on/off")])
def test_an_invalid_value_names_the_variable_and_what_it_accepts(monkeypatch, variable, value, accepts):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=f"{variable}='{value}' is not valid: it accepts {accepts}"):
        settings()


def test_settings_are_parsed_once_per_environment(monkeypatch):
    monkeypatch.setenv("MAS_MODEL", "claude-sonnet-4-6")
    assert settings() is settings() and settings().model == "claude-sonnet-4-6"
    monkeypatch.setenv("MAS_MODEL", "claude-haiku-4-5")
    assert settings().model == "claude-haiku-4-5"  # a cell that changes a switch is seen at once


def test_the_key_never_shows_in_a_repr(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-" + "Zq8" * 10)
    monkeypatch.delenv("MAS_OFFLINE")
    assert "Zq8" not in repr(settings()) and "Zq8" not in str(settings())
    assert not settings().is_offline


def _cli(tmp_path, *args, env_extra=None):
    env = {k: v for k, v in os.environ.items() if k not in ("MAS_NO_DOTENV", "MAS_DB")}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "mas.cli", *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)


def test_mas_run_reads_mas_db_from_dotenv(tmp_path):  # .env used to be read only once a client setting was
    (tmp_path / ".env").write_text("MAS_DB=from-dotenv/memory.db\n", encoding="utf-8")
    run = _cli(tmp_path, "run", "How vector databases enable semantic search")
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "from-dotenv" / "memory.db").is_file() and not (tmp_path / "data").exists()


def test_a_bad_switch_stops_the_command_in_one_line(tmp_path):
    run = _cli(tmp_path, "run", "x", env_extra={"MAS_TIMEOUT": "soon"})
    assert run.returncode == 2 and run.stderr.strip().splitlines() == [
        "mas: MAS_TIMEOUT='soon' is not valid: it accepts seconds > 0 and at most 3600, e.g. 60 (or leave it empty)"]


def test_a_blank_value_is_no_value(monkeypatch):
    for name in ("ANTHROPIC_API_KEY", "MAS_DB", "MAS_MODEL", "MAS_RECORD", "ANTHROPIC_BASE_URL"):
        monkeypatch.setenv(name, "   ")
    s = settings()
    assert s.api_key is None and s.base_url is None and s.record is None
    assert s.db == Settings.model_fields["db"].default and s.model == Settings.model_fields["model"].default


@pytest.mark.parametrize(("variable", "value", "says"), [
    ("MAS_TIMEOUT", "inf", "at most 3600"), ("MAS_MAX_RETRIES", "11", "from 0 to 10"),
    ("MAS_FAULTS", "bogus", "unknown fault kind 'bogus'"), ("MAS_FAULTS", "overloaded*x", "a whole number"),
    ("MAS_FAULTS", "overloaded@writter", "@writter is neither a call number nor a role")])
def test_limits_and_fault_plans_are_checked_when_read(monkeypatch, variable, value, says):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=f"{variable}=.*{says}") as caught:
        settings()
    assert "\n" not in str(caught.value)


def test_a_gateways_bearer_token_alone_is_live(monkeypatch):
    monkeypatch.delenv("MAS_OFFLINE")
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "gateway-token")
    assert not settings().is_offline


def test_a_live_client_takes_the_key_and_base_url_as_the_settings_read_them(monkeypatch):
    from mas.client import make_client

    monkeypatch.delenv("MAS_NO_LIVE")
    monkeypatch.delenv("MAS_OFFLINE")
    monkeypatch.setenv("ANTHROPIC_API_KEY", " sk-test-not-a-real-key ")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "  ")  # blank, as an uncommented `ANTHROPIC_BASE_URL=` line
    client = make_client()
    assert str(client.base_url).startswith("https://api.anthropic.com") and client.api_key == "sk-test-not-a-real-key"


@pytest.mark.parametrize(("env", "says", "code"), [
    ({"MAS_DB": "/"}, "mas: cannot open the memory database /", 2),  # an environment problem, like the others
    ({"MAS_RECORD": "a.jsonl", "MAS_REPLAY": "b.jsonl"}, "mas: MAS_RECORD and MAS_REPLAY are both set", 2),
    ({"MAS_FAULTS": "overloaded@writter"}, "mas: MAS_FAULTS='overloaded@writter' is not valid", 2)])
def test_the_command_says_a_users_mistake_in_one_line(tmp_path, env, says, code):
    run = _cli(tmp_path, "run", "x", env_extra=env)
    assert run.returncode == code and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert run.stderr.startswith(says)


def test_a_dotenv_that_is_not_utf8_is_one_line(tmp_path):
    (tmp_path / ".env").write_bytes("ANTHROPIC_API_KEY=x\r\n".encode("utf-16"))
    run = _cli(tmp_path, "doctor")
    assert run.returncode == 2 and "it accepts UTF-8 text" in run.stderr and "Traceback" not in run.stderr
