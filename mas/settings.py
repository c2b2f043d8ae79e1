"""Every switch of `mas` in one place: the `MAS_*` variables, the SDK's own, and `.env`, read one way.

    from mas.settings import settings
    settings().model          # MAS_MODEL, or the course's default
    settings().is_offline     # True without a key, or with MAS_OFFLINE=1

A `.env` file (found by python-dotenv, searching up from the working directory) is loaded into
the environment once, at the first read (`make_client()` is one), so every switch honours it, and
so does an `anthropic.Anthropic()` a learner builds by hand after that; variables already set win.
`MAS_NO_DOTENV=1` skips it (the test suite sets it). Each switch is then parsed by pydantic
(pydantic-settings): on/off switches take 1/0, true/false, yes/no, on/off and nothing else; an
invalid value is one line naming the variable and what it accepts (`SettingsError`).

Read once: the parsed settings are kept for as long as the environment's values for these names
stay the same, so a notebook cell that sets `os.environ["MAS_MODEL"]` is seen at the next read.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, TypeAdapter, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mas.errors import SettingsError
from mas.redact import redact_url

DEFAULT_MODEL = "claude-opus-4-6"
DEFAULT_DB_PATH = Path("data") / "memory.db"
DEFAULT_REDIS_URL = "redis://localhost:6379/0"
NO_DOTENV = "MAS_NO_DOTENV"


class Settings(BaseSettings):
    """The switches, by the variable that sets each one. Empty means unset."""

    model_config = SettingsConfigDict(case_sensitive=True, env_ignore_empty=True, extra="ignore", frozen=True)

    api_key: SecretStr | None = Field(None, alias="ANTHROPIC_API_KEY", description="your key (never shown)")
    auth_token: SecretStr | None = Field(None, alias="ANTHROPIC_AUTH_TOKEN", description="a bearer token")
    base_url: str | None = Field(None, alias="ANTHROPIC_BASE_URL", description="a Messages-API server's URL")
    offline: bool = Field(False, alias="MAS_OFFLINE", description="on/off (1/0, true/false, yes/no, on/off)")
    model: str = Field(DEFAULT_MODEL, alias="MAS_MODEL", min_length=1, description="a model id")
    timeout: float = Field(60.0, alias="MAS_TIMEOUT", gt=0, le=3600, allow_inf_nan=False,
                           description="seconds > 0 and at most 3600, e.g. 60")
    max_retries: int = Field(2, alias="MAS_MAX_RETRIES", ge=0, le=10, description="a whole number from 0 to 10, e.g. 2")
    faults: str = Field("", alias="MAS_FAULTS", description="a fault plan, e.g. overloaded@1,fenced_json@validator")
    interactive: bool = Field(False, alias="MAS_INTERACTIVE", description="on/off")
    progress: bool = Field(True, alias="MAS_PROGRESS", description="on/off (each SDK retry and re-ask on stderr)")
    record: Path | None = Field(None, alias="MAS_RECORD", description="a file to record the session to")
    replay: Path | None = Field(None, alias="MAS_REPLAY", description="a recorded session's file")
    replay_fallback: bool = Field(False, alias="MAS_REPLAY_FALLBACK", description="on/off")
    db: Path = Field(DEFAULT_DB_PATH, alias="MAS_DB", description="a SQLite file's path")
    redis_url: str = Field(DEFAULT_REDIS_URL, alias="REDIS_URL", description="a redis:// URL")
    no_live: bool = Field(False, alias="MAS_NO_LIVE", description="on/off (the test suite's kill switch)")

    @field_validator("*", mode="before")
    @classmethod
    def _strip(cls, value: object, info: ValidationInfo) -> object:
        """" 1 " is 1, for every kind of switch; a blank value is no value (the default)."""
        if not isinstance(value, str):
            return value
        return value.strip() or cls.model_fields[info.field_name].default

    @field_validator("faults")
    @classmethod
    def _fault_plan(cls, value: str) -> str:
        from mas.offline.faults import FaultPlan

        FaultPlan.parse(value)  # raises with the fault kinds it knows
        _check_fault_items(value)
        return value

    def __repr_args__(self):  # pydantic's hook behind repr() and str()
        """URLs without their credentials: a repr is printed, logged and pasted into bug reports."""
        for name, value in super().__repr_args__():
            yield name, redact_url(value) if name in ("base_url", "redis_url") and isinstance(value, str) else value

    @property
    def is_offline(self) -> bool:
        """The offline model answers: MAS_OFFLINE is on, or there is no key (nor a gateway's bearer token)."""
        return self.offline or (self.api_key is None and self.auth_token is None)


VARIABLES = tuple(field.alias for field in Settings.model_fields.values())
ON_OFF = Settings.model_fields["offline"].description


def _check_fault_items(spec: str) -> None:
    """What `FaultPlan.parse` lets through but that means no fault, or not the one meant: an empty item
    (",,"), `@` or `*` with nothing after them, call 0 (calls count from 1), `*0`, digits that are not ASCII.

    >>> _check_fault_items("overloaded@1,timeout@writer*2")
    >>> _check_fault_items("overloaded@0")
    Traceback (most recent call last):
    ValueError: fault 'overloaded@0': @ takes a call number from 1 or a role (researcher, writer, validator), got '0'
    """
    from mas.offline.faults import ROLES

    def counts(text: str) -> bool:  # "１" is a digit to str.isdigit, but not to a reader of the plan
        return text.isascii() and text.isdigit() and int(text) >= 1

    if not spec.strip():
        return
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            raise ValueError("an empty fault between two commas (or at either end): remove the extra comma")
        head, star, times = item.partition("*")
        _, at, target = head.partition("@")
        if star and not counts(times.strip()):
            raise ValueError(f"fault {item!r}: *times must be a whole number from 1, got {times.strip()!r}")
        if at and not (counts(target.strip()) or target.strip() in ROLES):
            raise ValueError(f"fault {item!r}: @ takes a call number from 1 or a role ({', '.join(ROLES)}), "
                             f"got {target.strip()!r}")


def settings() -> Settings:
    """The settings for the environment as it is now (parsed once per distinct environment)."""
    load_dotenv()
    return _parse(tuple(os.environ.get(name) for name in VARIABLES))


@lru_cache(maxsize=16)
def _parse(values: tuple[str | None, ...]) -> Settings:
    """`values` (the environment's, for VARIABLES) is the cache key; pydantic-settings reads them."""
    try:
        return Settings()
    except ValidationError as err:
        first = err.errors()[0]
        name = str(first["loc"][0])
        accepts = next(f.description for f in Settings.model_fields.values() if f.alias == name) or "another value"
        if first["type"] == "value_error":  # a check of our own: its message says what is wrong
            accepts += f" ({first['msg'].removeprefix('Value error, ')})"
        raise SettingsError(name, os.environ.get(name, ""), accepts) from None


@lru_cache(maxsize=1)
def load_dotenv() -> str | None:
    """Load the nearest `.env` into the environment, once (variables already set win); its path."""
    if _switch(NO_DOTENV):
        return None
    from dotenv import find_dotenv
    from dotenv import load_dotenv as load

    path = find_dotenv(usecwd=True)
    if path:
        try:
            load(path, override=False, encoding="utf-8")
        except UnicodeDecodeError:  # PowerShell's `>` writes UTF-16, for one
            load_dotenv.cache_clear()
            raise SettingsError(".env", path, "UTF-8 text: save the file as UTF-8 (in PowerShell: "
                                "Set-Content -Encoding utf8)") from None
    return path or None


def _switch(name: str) -> bool:
    """An on/off variable read before the settings (MAS_NO_DOTENV decides whether `.env` is read), parsed
    as every other switch is: one line naming it when its value is neither."""
    value = os.environ.get(name, "").strip()
    try:
        return bool(value) and TypeAdapter(bool).validate_python(value)
    except ValidationError:
        raise SettingsError(name, os.environ[name], ON_OFF) from None
