"""`mas doctor`: the first command to run when something is off. One screen, one line a check.

    ok    python    3.11.2 (/work/.venv/bin/python), in a venv
    warn  redis     nothing answers at redis://localhost:6379/0 -> redis-server --port 6379 --save '' --appendonly no

Each line is ok, warn (the course still runs, a part of it will not) or fail (fix this first),
and says the fix; exit 0 when nothing fails. `run_checks` lists the checks, in screen order; the
key is only said to be present or not, never shown, not even a part of it, and every URL and error text
goes through `mas.redact` first.

Model ids retire; a course must tell its learners before the API does, so the model check asks
the Models API (`client.models.retrieve` / `list`), which the offline model answers too. A server
without it (a gateway's 404) is a warning that names the endpoint and the server, and the other checks go on.
"""

from __future__ import annotations

import re
import sys
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Literal

import anthropic
from dotenv import dotenv_values

from mas.client import API_URL, default_model, is_offline, make_client
from mas.errors import MemoryUnavailableError, MissingExtra, not_served, one_line
from mas.extras import install_hint
from mas.redact import redact_text, redact_url
from mas.scaling import START_REDIS, RedisMemory
from mas.settings import load_dotenv, settings

Status = Literal["ok", "warn", "fail"]
NEWEST_SHOWN = 5  # how many of the newest served models the model line names
TIMEOUT_S = 5.0  # a doctor answers quickly: no retries, short waits


@dataclass(frozen=True)
class Check:
    """One line of the screen."""

    status: Status
    what: str  # the thing checked, one word
    detail: str  # what was found
    fix: str = ""  # what to do about it (empty when nothing needs doing)

    def line(self) -> str:
        return f"  {self.status:<5} {self.what:<9} {self.detail}" + (f" -> {self.fix}" if self.fix else "")


def check_python() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info < (3, 11):
        return Check("fail", "python", f"{version}: mas needs 3.11 or newer", "make PYTHON=python3.11 (or newer)")
    if sys.prefix == sys.base_prefix:
        return Check("warn", "python", f"{version} ({sys.executable}), not in a virtual environment",
                     "make demo creates .venv; or python3 -m venv .venv && . .venv/bin/activate")
    return Check("ok", "python", f"{version} ({sys.executable}), in a venv")


def locked_versions(constraints: Path) -> dict[str, str]:
    """Pinned versions from a constraints file (uv export), for this Python and platform.

    >>> import tempfile; path = Path(tempfile.mkdtemp()) / "c.txt"
    >>> _ = path.write_text("anthropic==2.15.0\\n    # via mas\\nappnope==1.0 ; sys_platform == 'nope'\\n")
    >>> locked_versions(path)
    {'anthropic': '2.15.0'}
    """
    pins = {}
    for raw in constraints.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if "==" not in line:
            continue
        spec, _, marker = line.partition(";")
        if marker.strip() and not _marker_holds(marker.strip()):
            continue
        name, _, version = spec.partition("==")
        pins[_normal(name)] = version.strip()
    return pins


def check_packages(project: Path | None) -> Check:
    constraints = project / "constraints.txt" if project else None
    if constraints is None or not constraints.is_file():
        return Check("warn", "packages", "no constraints.txt here (not a checkout of the course): versions not "
                     "compared with the lock", "run mas doctor from the course's folder")
    pins = locked_versions(constraints)
    differ, compared = [], 0
    for name in _requirements():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # an extra that is not installed: its own line says so
        compared += 1
        if name in pins and pins[name] != installed:
            differ.append(f"{name} {installed} (locked {pins[name]})")
    if differ:
        return Check("warn", "packages", "not the locked versions: " + ", ".join(differ),
                     "pip install -c constraints.txt -e '.[test]' (or make test)")
    return Check("ok", "packages", f"{compared} of mas's dependencies at the versions of constraints.txt "
                 f"(anthropic {metadata.version('anthropic')})")


def check_key() -> Check:
    where = _key_source()
    if where is None and settings().auth_token is not None:
        return Check("ok", "key", "ANTHROPIC_AUTH_TOKEN set (a gateway's bearer token; never shown)")
    if where is None:
        return Check("ok", "key", "ANTHROPIC_API_KEY not set: the offline model answers",
                     "put ANTHROPIC_API_KEY=... in .env to use Claude")
    return Check("ok", "key", f"ANTHROPIC_API_KEY set ({where}; never shown)")


def check_base_url() -> Check:
    url = settings().base_url
    if not url:
        return Check("ok", "base url", "ANTHROPIC_BASE_URL not set: the SDK's default (Anthropic's API)")
    if not re.match(r"https?://[^/\s]+", url) or redact_url(url).startswith("("):
        return Check("fail", "base url", f"ANTHROPIC_BASE_URL={redact_url(url)!r} is not an http(s) URL",
                     "set it to e.g. http://127.0.0.1:8000, or unset it")
    return Check("ok", "base url", redact_url(url))


def check_mode() -> tuple[Check, bool]:
    if is_offline():
        s = settings()
        why = "MAS_OFFLINE is on" if s.api_key is not None or s.auth_token is not None else "no key"
        return Check("ok", "mode", f"offline ({why}): deterministic, no network"), True
    return Check("ok", "mode", "live: requests go to the API"), False


def check_model(client: anthropic.Anthropic, model: str, offline: bool) -> list[Check]:
    """Does the server still serve `model`, and what is newest there? Through the Models API."""
    sdk = f"anthropic {metadata.version('anthropic')}"
    try:
        newest = [m.id for m in client.models.list(limit=NEWEST_SHOWN).data]
    except anthropic.NotFoundError as err:  # a gateway without the Models API: a note, and the checks go on
        return [Check("warn", "model", not_served(err, f"{model} was not checked"), "try a request: mas hello")]
    except anthropic.APIError as err:
        return [_api_failure(err)]
    except Exception as err:  # noqa: BLE001 - a replay without these requests, a malformed URL...: one line
        return [Check("fail", "model", f"{model} not checked: {one_line(err)}", "see the lines above")]
    newest_line = Check("ok", "newest", ", ".join(newest) if newest else "the server lists no models")
    try:
        info = client.models.retrieve(model)
    except anthropic.NotFoundError:
        where = f"in {sdk}'s list" if offline else "served by the API"
        return [Check("fail", "model", f"{model} is not {where}",
                      f"set MAS_MODEL to one it lists, e.g. {newest[0]}" if newest else "set MAS_MODEL"),
                newest_line]
    except anthropic.APIError as err:
        return [_api_failure(err)]
    except Exception as err:  # noqa: BLE001
        return [Check("fail", "model", f"{model} not checked: {one_line(err)}", "see the lines above"), newest_line]
    if info.lifecycle == "retired":
        return [Check("fail", "model", f"{model} is retired: requests naming it fail",
                      f"set MAS_MODEL to e.g. {newest[0]}" if newest else "set MAS_MODEL"), newest_line]
    if info.lifecycle == "deprecated":
        when = f", retires {info.retires_at:%Y-%m-%d}" if info.retires_at else ""
        return [Check("warn", "model", f"{model} is deprecated{when}",
                      f"move MAS_MODEL to e.g. {newest[0]}" if newest else "move MAS_MODEL to a newer model"),
                newest_line]
    how = f"listed by {sdk}" if offline else "served by the API"
    return [Check("ok", "model", f"{model} ({info.display_name}), {how}, {info.lifecycle}"), newest_line]


def check_redis() -> Check:
    """Reachable the way notebook 08 reaches it: a `RedisMemory` (connect, ping)."""
    url = settings().redis_url
    try:
        RedisMemory(url).close()
    except MissingExtra as err:
        return Check("warn", "redis", "the redis package is not installed (notebook 08 needs it)", err.fix)
    except MemoryUnavailableError:
        return Check("warn", "redis", f"nothing answers at {redact_url(url)} (notebook 08 needs a server)",
                     f"{START_REDIS} (and REDIS_URL if it runs elsewhere)")
    except ValueError as err:
        return Check("warn", "redis", f"REDIS_URL {redact_url(url)} cannot be used: {redact_text(str(err))}",
                     "set it to e.g. redis://localhost:6379/0")
    return Check("ok", "redis", f"Redis answers at {redact_url(url)}")


def check_lab() -> Check:
    found, missing = [], []
    for name in ("jupyterlab", "ipywidgets"):
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            missing.append(name)
    if missing:
        return Check("warn", "lab", f"{' and '.join(missing)} not installed: the notebooks need them",
                     install_hint("lab"))
    return Check("ok", "lab", ", ".join(found))


def run_checks(project: Path | None = None, client: anthropic.Anthropic | None = None) -> list[Check]:
    """Every check, in screen order. `client` replaces the one `make_client()` would build."""
    checks = [check_python(), check_packages(project), check_key(), check_base_url()]
    mode, offline = check_mode()
    checks.append(mode)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the model line says it better than the warning
        model = default_model()
    try:
        client = client or make_client(timeout=TIMEOUT_S, max_retries=0)
    except Exception as err:  # noqa: BLE001 - any reason a client cannot be built is a line of the screen
        checks.append(Check("fail", "client", f"{type(err).__name__}: {redact_text(str(err))}", "see the line above"))
    else:
        checks += check_model(client, model, offline)
    return checks + [check_redis(), check_lab()]


def main(project: Path | None = None) -> int:
    checks = run_checks(project if project is not None else _project())
    print("mas doctor")
    for check in checks:
        print(check.line())
    failed = sum(c.status == "fail" for c in checks)
    print(f"{failed} failed" if failed else "nothing failed")
    return 1 if failed else 0


def _api_failure(err: anthropic.APIError) -> Check:
    if isinstance(err, anthropic.AuthenticationError):
        return Check("fail", "api", "the API refused the key (401)", "check ANTHROPIC_API_KEY (in .env or the "
                     "environment)")
    if isinstance(err, anthropic.APIConnectionError):
        return Check("fail", "api", f"cannot reach {_server()} ({type(err).__name__})",
                     "check the network and ANTHROPIC_BASE_URL; or MAS_OFFLINE=1 for the offline model")
    status = getattr(err, "status_code", "?")
    return Check("fail", "api", f"{_server()} answered GET /v1/models with {status} ({type(err).__name__})",
                 "check ANTHROPIC_BASE_URL and the key's permissions")


def _server() -> str:
    return redact_url(settings().base_url or API_URL)


def _key_source() -> str | None:
    """Where the key came from (never the key): a `.env` file, or the environment (which wins over it)."""
    secret = settings().api_key
    if secret is None:
        return None
    dotenv = load_dotenv()
    in_file = (dotenv_values(dotenv).get("ANTHROPIC_API_KEY") or "").strip() if dotenv else ""
    return f"from {dotenv}" if in_file == secret.get_secret_value() else "from the environment"


def _requirements() -> list[str]:
    """The names of mas's dependencies, every extra included, each once."""
    names = (_normal(re.split(r"[\s\[<>=!~;]", spec, maxsplit=1)[0]) for spec in metadata.requires("mas") or [])
    return [name for name in dict.fromkeys(names) if name != "mas"]


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _marker_holds(marker: str) -> bool:
    try:
        from packaging.markers import Marker
    except ImportError:
        return False  # cannot tell: leave that pin out rather than compare against the wrong one
    return Marker(marker).evaluate()


def _project() -> Path | None:
    """The course's folder: the working directory, or the checkout an editable install points at."""
    for folder in (Path.cwd(), Path(__file__).resolve().parent.parent):
        if (folder / "pyproject.toml").is_file() and (folder / "mas").is_dir():
            return folder
    return None
