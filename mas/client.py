"""Choosing the client: live Claude or the offline model, behind the same real SDK.

Agents never build a client themselves; they take one. `make_client()` always builds the real
`anthropic.Anthropic` (`anthropic.AsyncAnthropic` with `asynchronous=True`) and only chooses the HTTP transport
under it, so request building, response parsing, retries and streaming are the SDK's own code in every case:

- `ANTHROPIC_API_KEY` set (in the environment, or in a `.env` that python-dotenv finds)
  -> the SDK's own: live Claude, honouring `ANTHROPIC_BASE_URL` exactly as the SDK does;
- no key, or `MAS_OFFLINE=1` -> the offline model (`mas.offline.OfflineTransport`);
- `transport=` -> that one (a scripted transport in tests, a replay, ...).

Without a `transport`, the workshop switches wrap or replace that choice: MAS_RECORD=path puts a
`RecordingTransport` around it (the session is written to the file); MAS_REPLAY=path answers from a recorded
file instead, every client sharing one `ReplayTransport` of it (MAS_REPLAY_FALLBACK=1: the offline model answers
what was not recorded). `record_client()` and `replay_client()` do the same from code. The transports
themselves live in `mas.offline`, below the SDK.

Offline-only options (`faults=`, `latency=`, `min_cache_tokens=`) are the offline model's: a live client refuses
them (`OfflineOnlyOptions`, naming them and how to ask for the offline model: `make_client(offline=True,
faults=...)`), since a fault demo that quietly runs on Claude prints the opposite of what it says. MAS_FAULTS
while live is one warning line on stderr instead (once per plan and process), not an error: it is the room's
switch, exported once for everyone (or left over in a shell), and a learner with a key should still get a working
session from Claude, told in one line why no fault shows; code that passes `faults=` asks for them itself.

Every client built here says each of the SDK's retries on stderr as it happens (`mas.progress.RetryLines`,
an SDK middleware; `MAS_PROGRESS=0` turns the lines off).

Simplified on purpose: one model for every agent (`MAS_MODEL`), and explicit limits (`MAS_TIMEOUT`,
`MAS_MAX_RETRIES`) instead of the SDK's 10-minute default timeout.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import anthropic
import httpx2
from anthropic.types import Message

from mas.contracts import TOKEN_FIELDS
from mas.errors import LiveClientForbidden, OfflineOnlyOptions
from mas.progress import RetryLines
from mas.settings import Settings, settings

API_URL = "https://api.anthropic.com"  # the SDK's default, given explicitly: a blank ANTHROPIC_BASE_URL is unset
OFFLINE_BASE_URL = "https://offline.mas.invalid"  # never resolved: the offline transport answers first
OFFLINE_API_KEY = "offline"  # the SDK wants some key; this one opens nothing
KILL_SWITCH_ENV = "MAS_NO_LIVE"  # set by the test suite: no live client can be built
DEFAULT_TIMEOUT = Settings.model_fields["timeout"].default  # seconds for one request; the SDK's default is 10 min
DEFAULT_MAX_RETRIES = Settings.model_fields["max_retries"].default
Transport = httpx2.BaseTransport | httpx2.AsyncBaseTransport  # mas.offline's transports are both
Client = anthropic.Anthropic | anthropic.AsyncAnthropic
OFFLINE_OPTIONS = ("faults", "latency", "min_cache_tokens")  # the offline model's own (OfflineModel's arguments)

# the one line that says the offline model answers (once a process; in a notebook a note on stdout, see _note)
OFFLINE_NOTE = ("Note: the offline model answers (local and deterministic, no key needed). "
                "To use Claude, set ANTHROPIC_API_KEY in .env or the environment.")
OFFLINE_ON_PURPOSE_NOTE = ("Note: the offline model answers, as MAS_OFFLINE is on. "
                           "To use Claude with your key, unset it.")
_announced_offline: set[str] = set()  # the offline model's announcements already made (each said once)
_warned_faults: set[str] = set()  # the MAS_FAULTS plans already said to be ignored by a live client
_shared_replays: dict[tuple, Any] = {}  # MAS_REPLAY's ReplayTransports: one place in each recording per process


def default_model() -> str:
    """The model from `MAS_MODEL`, or the course's default; warns on an id the SDK does not list."""
    return check_model(settings().model)


def check_model(model: str) -> str:
    from mas.offline.catalog import listed_models

    known = listed_models()
    if model not in known:
        warnings.warn(f"model {model!r} is not in this SDK's model list; the API may reject it. "
                      f"Known models: {', '.join(known)}", UserWarning, stacklevel=3)
    return model


def is_offline() -> bool:
    """True when `make_client()` would give the offline model."""
    return settings().is_offline


def make_client(*, asynchronous: bool = False, offline: bool | None = None, timeout: float | None = None,
                max_retries: int | None = None, transport: Transport | None = None,
                **offline_options: Any) -> Client:
    """A real `anthropic.Anthropic` (`anthropic.AsyncAnthropic` when `asynchronous`): live with a key, the
    offline model without one (or with `offline=True`). `transport` plugs any httpx2 transport under the SDK
    instead; `offline_options` go to the offline model (`faults=`, `latency=`, `min_cache_tokens=`; None is
    not given), and a live client refuses them (`OfflineOnlyOptions`). Without a `transport`, the workshop
    switches MAS_RECORD and MAS_REPLAY apply (see the module docstring)."""
    timeout, max_retries = limits(timeout, max_retries)
    offline_options = _offline_options(offline_options, transport)
    live = False
    if transport is None:
        transport, live = _chosen_transport(asynchronous, offline, offline_options)
    elif type(transport).__module__.startswith("mas.offline") and _key_set_and_live_wanted():
        _say_offline_on_purpose(f"this client's transport is {type(transport).__name__}")
    return _sdk_client(asynchronous, transport, timeout, max_retries, live=live)


def record_client(path: str | Path, transport: Transport | None = None, *, asynchronous: bool = False,
                  timeout: float | None = None, max_retries: int | None = None) -> Client:
    """A client that records every exchange to `path` (`mas.offline.record`): live Claude with the
    key from the environment (or `.env`) when `transport` is None, else over `transport` (for a
    rehearsal with the offline model). Refused under the test suite's kill switch, like any live client."""
    if transport is None:
        timeout, max_retries = limits(timeout, max_retries)
        return _sdk_client(asynchronous, _live_transport(asynchronous, Path(path)), timeout, max_retries, live=True)
    from mas.offline.record import RecordingTransport

    return make_client(asynchronous=asynchronous, transport=RecordingTransport(transport, path), timeout=timeout,
                       max_retries=max_retries)


def replay_client(path: str | Path, fallback: Any = False, *, asynchronous: bool = False,
                  timeout: float | None = None, max_retries: int | None = None) -> Client:
    """A client answered from the recording at `path` (`mas.offline.replay`), with no key and no
    network. `fallback`: False (an unrecorded request raises `NotInRecording`), True (the offline
    model answers it) or a transport. Each call starts at the beginning of the file."""
    from mas.offline.replay import ReplayTransport

    return make_client(asynchronous=asynchronous, transport=ReplayTransport(path, fallback), timeout=timeout,
                       max_retries=max_retries)


def _chosen_transport(asynchronous: bool, offline: bool | None, offline_options: dict) -> tuple[Transport | None, bool]:
    """The transport the settings ask for, and whether it reaches the live API (None: the SDK's own)."""
    s = settings()
    if s.record is not None and s.replay is not None:
        raise ValueError("MAS_RECORD and MAS_REPLAY are both set: set MAS_RECORD to record a session, "
                         "MAS_REPLAY to replay one")
    if s.replay is not None:
        return _shared_replay(s.replay, s.replay_fallback, offline_options), False
    if not (s.is_offline if offline is None else offline):
        if offline_options:
            raise OfflineOnlyOptions(tuple(offline_options), _live_because(offline))
        return _live_transport(asynchronous, s.record), True
    from mas.offline import OfflineTransport
    from mas.offline.record import RecordingTransport

    if offline and _key_set_and_live_wanted():
        _say_offline_on_purpose("a client asked for with offline=True")
    else:
        _announce_offline(_offline_because(offline))
    transport = OfflineTransport(**offline_options)
    return (transport if s.record is None else RecordingTransport(transport, s.record)), False


def _sdk_client(asynchronous: bool, transport: Transport | None, timeout: float, max_retries: int, *,
                live: bool = False) -> Client:
    """The SDK's client over `transport`: with the key and base URL from the settings when `live`
    (transport None: the SDK's own), else with the offline placeholders, which reach nothing. Every
    one says each retry of the SDK's as it happens (`mas.progress.RetryLines`, an SDK middleware)."""
    sdk = anthropic.AsyncAnthropic if asynchronous else anthropic.Anthropic
    middleware = [RetryLines(max_retries)]
    if live:
        s = settings()  # the key, token and base URL as the settings read them: a blank value is unset
        http = anthropic.DefaultAsyncHttpxClient if asynchronous else anthropic.DefaultHttpxClient
        return sdk(api_key=s.api_key.get_secret_value() if s.api_key else None,
                   auth_token=s.auth_token.get_secret_value() if s.auth_token else None,
                   base_url=s.base_url or API_URL, timeout=timeout, max_retries=max_retries, middleware=middleware,
                   http_client=None if transport is None else http(transport=transport))
    http = httpx2.AsyncClient if asynchronous else httpx2.Client
    return sdk(api_key=OFFLINE_API_KEY, base_url=OFFLINE_BASE_URL, timeout=timeout, max_retries=max_retries,
               middleware=middleware, http_client=http(transport=transport))


def _live_transport(asynchronous: bool, record: Path | None) -> Transport | None:
    """What a live client goes over: the SDK's own transport (None), or with `record` a RecordingTransport
    around a real HTTP one. Refused under the kill switch, before anything is built."""
    check_kill_switch()
    _warn_faults_ignored()
    if record is None:
        return None
    if settings().api_key is None and settings().auth_token is None:
        raise ValueError("recording a live session needs ANTHROPIC_API_KEY (in the environment or .env); "
                         "to record the offline model instead, pass transport=OfflineTransport()")
    from mas.offline.record import RecordingTransport

    http = httpx2.AsyncHTTPTransport if asynchronous else httpx2.HTTPTransport
    return RecordingTransport(http(limits=anthropic.DEFAULT_CONNECTION_LIMITS), record)


def _offline_options(options: dict[str, Any], transport: Transport | None) -> dict[str, Any]:
    """The offline options given (None is not given); a name the offline model does not take, or options
    beside a `transport` (which would never see them), is a TypeError with the fix."""
    given = {name: value for name, value in options.items() if value is not None}
    unknown = [name for name in given if name not in OFFLINE_OPTIONS]
    if unknown:
        raise TypeError(f"make_client() got {', '.join(f'{n}=' for n in unknown)}, which it does not take: its "
                        f"offline options are {', '.join(f'{n}=' for n in OFFLINE_OPTIONS)} (a model id goes to "
                        "the agents, model=..., or to MAS_MODEL)")
    if given and transport is not None:
        raise TypeError(f"make_client(transport=..., {', '.join(f'{n}=...' for n in given)}): the transport answers, "
                        "so the offline model's options go to it: make_client(transport=OfflineTransport("
                        f"{', '.join(f'{n}=...' for n in given)}))")
    return given


def _live_because(offline: bool | None) -> str:
    """What made a client live, in a few words (never the key)."""
    s = settings()
    if offline is False:
        return "offline=False"
    which = "ANTHROPIC_API_KEY" if s.api_key is not None else "ANTHROPIC_AUTH_TOKEN"
    return f"{which} is set and MAS_OFFLINE is not"


def _warn_faults_ignored() -> None:
    """One line on stderr when MAS_FAULTS is set and a live client is built (once per plan): see the module
    docstring for why this is a warning, not an error."""
    plan = settings().faults
    if plan.strip() and plan not in _warned_faults:
        _warned_faults.add(plan)
        print(f"mas: warning: MAS_FAULTS={plan} is not applied: a fault plan is the offline model's, and this "
              "client is live (Claude answers, with no injected faults) -> set MAS_OFFLINE=1 to see the faults, "
              "or unset MAS_FAULTS", file=sys.stderr)
        sys.stderr.flush()


def _shared_replay(path: Path, fallback: bool, offline_options: dict) -> Any:
    """The ReplayTransport every client built from MAS_REPLAY shares, as every client of a live
    session shares the API: a notebook that makes a new client per cell still gets the recorded
    order. A re-recorded file (changed on disk) starts afresh."""
    from mas.offline import OfflineTransport
    from mas.offline.replay import ReplayTransport

    stat = path.stat() if path.exists() else None
    key = (str(path.resolve()), stat and (stat.st_mtime_ns, stat.st_size), fallback)
    if key not in _shared_replays:
        _shared_replays[key] = ReplayTransport(path, OfflineTransport(**offline_options) if fallback else None)
    return _shared_replays[key]


def text_of(message: Message) -> str:
    """The text of a reply: all its text blocks joined, whatever other blocks come first.

    >>> from anthropic.types import Message
    >>> m = Message.model_validate({"id": "m", "type": "message", "role": "assistant", "model": "x",
    ...     "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}},
    ...                 {"type": "text", "text": "Hello"}, {"type": "text", "text": " world"}],
    ...     "stop_reason": "end_turn", "stop_sequence": None,
    ...     "usage": {"input_tokens": 3, "output_tokens": 2}})
    >>> text_of(m)
    'Hello world'
    """
    return "".join(block.text for block in message.content if block.type == "text")


def last_user_text(request: dict) -> str:
    """The text of a request's last user message (its text blocks joined), "" when there is none.

    >>> last_user_text({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
    ...                               {"role": "user", "content": [{"type": "text", "text": "c"}]}]})
    'c'
    """
    for message in reversed(request.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content", "")
            if isinstance(content, str):
                return content
            return "\n".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return ""


def usage_of(message: Message) -> dict[str, int]:
    """The token usage of a reply as plain numbers (cache fields are 0 when absent)."""
    return {key: getattr(message.usage, key) or 0 for key in TOKEN_FIELDS}


def limits(timeout: float | None, max_retries: int | None) -> tuple[float, int]:
    """The timeout and retry count a client gets: the arguments, else MAS_TIMEOUT / MAS_MAX_RETRIES, else defaults."""
    s = settings()
    timeout = s.timeout if timeout is None else timeout
    max_retries = s.max_retries if max_retries is None else max_retries
    if timeout <= 0 or max_retries < 0:
        raise ValueError(f"timeout must be > 0 and max_retries >= 0, got timeout={timeout}, max_retries={max_retries}")
    return timeout, max_retries


def check_kill_switch() -> None:
    """Raise `LiveClientForbidden` when MAS_NO_LIVE is on: every way of building a live client calls this."""
    if settings().no_live:
        raise LiveClientForbidden(f"a live Anthropic client was requested while {KILL_SWITCH_ENV}=1 (the test "
                                  "suite's kill switch). Use make_client(offline=True) or a transport; a test that "
                                  f"must build a live client removes {KILL_SWITCH_ENV} from the environment "
                                  "explicitly.")


def _offline_because(offline: bool | None) -> str:
    """The note that says the offline model answers, and why: no key (the usual case, and the committed
    notebooks' line), or, with a key set, MAS_OFFLINE."""
    s = settings()
    if s.api_key is None and s.auth_token is None:
        return OFFLINE_NOTE
    return OFFLINE_ON_PURPOSE_NOTE


def _key_set_and_live_wanted() -> bool:
    s = settings()
    return (s.api_key is not None or s.auth_token is not None) and not s.offline


def _say_offline_on_purpose(what: str) -> None:
    """With a key set, a client that is offline anyway (a fault plan, scripted replies, a timing demo) says so
    each time one is made, so every such cell of a live notebook says it in its own output."""
    _note(f"offline on purpose: {what} (a key is set: the other clients use Claude)")


def _announce_offline(line: str) -> None:
    """Say once (per kind of line) which model answers: a cell that is offline on purpose, in a notebook
    that is live, must not tell a learner with a key to set one."""
    if line not in _announced_offline:
        _announced_offline.add(line)
        _note(line)


def _note(line: str) -> None:
    """One line of information, not of trouble: in a notebook on stdout, since a kernel's stderr shows in red
    and a note must not read like an error; elsewhere on stderr, so a command's stdout stays its result alone."""
    stream = sys.stdout if _in_notebook() else sys.stderr
    print(line, file=stream)
    stream.flush()  # out at once, so it always comes before the cell's (or the command's) own lines


def _in_notebook() -> bool:
    """True in a Jupyter kernel. IPython is looked up, never imported: `import mas` loads no optional package."""
    get_ipython = getattr(sys.modules.get("IPython"), "get_ipython", None)
    shell = get_ipython() if get_ipython is not None else None
    return shell is not None and hasattr(shell, "kernel")  # a terminal IPython has no kernel: a shell, like the CLI
