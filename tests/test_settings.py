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
    for word in OFF + ("",):
        monkeypatch.setenv(variable, word)
        assert getattr(settings(), field) is False, (variable, word)


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
    ("MAS_MAX_RETRIES", "2.5", "a whole number >= 0"), ("MAS_OFFLINE", "maybe", "on/off")])
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
        "mas: MAS_TIMEOUT='soon' is not valid: it accepts seconds > 0, e.g. 60 (or leave it empty)"]
