"""Inputs chosen to make the commands print a traceback: every switch with values it does not accept,
paths that are folders, files, not writable, recordings missing or edited, the kill switch with a
key, a server that answers 401, or 200 with something that is not a Message.

A user's mistake or a problem of the environment is one line on stderr with its cause and its fix,
exit 2 (1 for a run that started and failed, which is then in memory with a status and a reason,
resumable); never a traceback. The commands run as subprocesses, as a user runs them; the servers
are real ones on 127.0.0.1, spoken to by the real SDK.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest
from gateway import serving
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from mas.agents import BaseAgent
from mas.client import OFFLINE_NOTE, make_client
from mas.errors import AgentReplyError, SettingsError, kind_of
from mas.hooks import call_hook
from mas.memory import SQLiteMemory
from mas.offline import OfflineTransport
from mas.offline.faults import FaultPlan
from mas.orchestrator import Orchestrator
from mas.settings import settings
from mas.tracing import Tracer

TOPIC = "How vector databases enable semantic search"
FAKE_KEY = "sk-ant-" + "test-not-a-key"  # built here, so it cannot look like a committed key
ANNOUNCEMENT = OFFLINE_NOTE  # said once, on purpose: not a problem
# every MAS_* switch with values it does not accept, and what its line must say it accepts
BAD_SETTINGS = [
    ("MAS_TIMEOUT", "nan", "seconds > 0"), ("MAS_TIMEOUT", "-1", "seconds > 0"), ("MAS_TIMEOUT", "abc", "seconds > 0"),
    ("MAS_MAX_RETRIES", "1.5", "a whole number"), ("MAS_MAX_RETRIES", "-1", "a whole number"),
    ("MAS_FAULTS", "overloaded@", "a fault plan"), ("MAS_FAULTS", "overloaded@0", "a fault plan"),
    ("MAS_FAULTS", "overloaded*", "a fault plan"), ("MAS_FAULTS", ",,", "a fault plan"),
    ("MAS_FAULTS", "bogus", "a fault plan"), ("MAS_OFFLINE", "maybe", "on/off"), ("MAS_INTERACTIVE", "2", "on/off"),
    ("MAS_REPLAY_FALLBACK", "maybe", "on/off"), ("MAS_NO_LIVE", "maybe", "on/off"),
    ("MAS_NO_DOTENV", "maybe", "on/off"),
]
COMMANDS = {"run": ["-m", "mas.cli", "run", TOPIC], "hello": ["-m", "mas.cli", "hello"],
            "doctor": ["-m", "mas.cli", "doctor"], "worker": ["-m", "mas.cli", "worker"]}


def command(tmp_path: Path, *args: str, **env: str | None) -> subprocess.CompletedProcess:
    """`python *args` in `tmp_path` with the suite's environment changed by `env` (None removes a name)."""
    environ = {**os.environ, "MAS_DB": str(tmp_path / "memory.db")}
    for name, value in env.items():
        environ.pop(name, None) if value is None else environ.__setitem__(name, value)
    return subprocess.run([sys.executable, *args], cwd=tmp_path, env=environ, capture_output=True, text=True,
                          timeout=120)


def mas(tmp_path: Path, *args: str, **env: str | None) -> subprocess.CompletedProcess:
    return command(tmp_path, "-m", "mas.cli", *args, **env)


def problem_line(done: subprocess.CompletedProcess, status: int) -> str:
    """The one line a command said on stderr (besides the offline announcement), checked: no traceback."""
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip() and line != ANNOUNCEMENT]
    assert len(lines) == 1, done.stderr
    assert done.returncode == status, (done.returncode, done.stderr)
    return lines[0]


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder no file can be made in: read-only for a user; for root, which writes anywhere, sysfs."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    if not os.access(folder, os.W_OK):
        return folder
    if Path("/sys/kernel").is_dir() and not _can_create(Path("/sys")):
        return Path("/sys")
    pytest.skip("no folder here that this user cannot write to")


def _can_create(folder: Path) -> bool:
    try:
        (folder / "mas-probe").touch()
    except OSError:
        return False
    (folder / "mas-probe").unlink()
    return True


# ---------------------------------------------------------------------------- settings

@pytest.mark.parametrize(("variable", "value", "accepts"), list({v: (v, x, a) for v, x, a in BAD_SETTINGS}.values()))
def test_a_bad_switch_is_one_line_naming_it_in_every_command(tmp_path, variable, value, accepts):
    # the commands of `mas` share one check; a worker (which would otherwise fail in every task) checks first
    # (`mas run` meets every value in-process below: here the other ways in, for one value each)
    names = list(COMMANDS) if variable in ("MAS_TIMEOUT", "MAS_NO_DOTENV") else ["worker"]
    for name in names:
        line = problem_line(command(tmp_path, *COMMANDS[name], **{variable: value}), 2)
        assert line.startswith(f"mas: {variable}={value!r} is not valid: it accepts {accepts}"), (name, line)


@pytest.mark.parametrize(("variable", "value", "accepts"), [c for c in BAD_SETTINGS if c[0] != "MAS_NO_DOTENV"])
def test_every_bad_value_stops_mas_run_in_one_line(monkeypatch, capsys, variable, value, accepts):
    from mas.cli import main

    monkeypatch.setenv(variable, value)
    assert main(["run", TOPIC]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"mas: {variable}={value!r} is not valid: it accepts {accepts}")
    assert line.endswith("(or leave it empty)")


plan_items = st.lists(st.tuples(st.sampled_from(["overloaded", "timeout", "fenced_json", "", "bogus"]),
                                st.sampled_from(["", "@", "@0", "@1", "@12", "@writer", "@writter", "@１", "@-1"]),
                                st.sampled_from(["", "*", "*0", "*2", "*x", "*１"])), max_size=3)


@given(plan_items, st.sampled_from([",", ", ", ",,"]))
def test_a_fault_plan_is_either_exactly_what_it_says_or_one_line(items, comma):
    spec = comma.join(kind + target + times for kind, target, times in items)
    os.environ["MAS_FAULTS"] = spec
    try:
        plan = FaultPlan.parse(settings().faults)
    except SettingsError as err:
        assert err.variable == "MAS_FAULTS" and "\n" not in str(err)
        return
    finally:
        del os.environ["MAS_FAULTS"]
    # accepted: every item names a known kind, a call from 1 or a role, and times from 1 (nothing silently dropped)
    assert len(plan.faults) == len([i for i in items if any(i)]) == (len(items) if spec.strip() else 0)
    assert all((f.call is None or f.call >= 1) and f.times >= 1 for f in plan.faults)


@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.integers().map(str),
                 st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=8)))  # what env takes
def test_limits_are_in_range_or_one_line(text):
    for variable in ("MAS_TIMEOUT", "MAS_MAX_RETRIES"):
        os.environ[variable] = text
        try:
            s = settings()
        except SettingsError as err:
            assert err.variable == variable and "\n" not in str(err)
            continue
        finally:
            del os.environ[variable]
        assert 0 < s.timeout <= 3600 and 0 <= s.max_retries <= 10


def test_a_model_the_sdk_does_not_list_is_a_one_line_warning_and_the_run_goes_on(tmp_path):
    done = mas(tmp_path, "run", TOPIC, MAS_MODEL="claude-nonesuch-9")
    assert problem_line(done, 0).startswith("mas: warning: model 'claude-nonesuch-9' is not in this SDK's model list")


@pytest.mark.parametrize("args", [["run", TOPIC, "--max-cycles", "abc"], ["run", TOPIC, "--max-cycles", "-1"],
                                  ["nonesuch"], ["run", TOPIC, "--bogus"]])
def test_a_mistyped_command_line_is_one_line(tmp_path, args):
    assert "--help" in problem_line(mas(tmp_path, *args), 2)


# ---------------------------------------------------------------------------- paths

def _path_cases(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "notes.txt").write_text("not a database\n", encoding="utf-8")
    (tmp_path / "folder").mkdir()
    return {"a folder": tmp_path / "folder", "a file where a folder should be": tmp_path / "notes.txt" / "x.db",
            "not writable": unwritable_folder(tmp_path) / "x.db"}


@pytest.mark.parametrize("case", ["a folder", "a file where a folder should be", "not writable", "not a database",
                                  "another program's database"])
def test_a_db_that_cannot_be_used_is_one_line(tmp_path, case):
    if case == "not a database":
        path = tmp_path / "notes.txt"
        path.write_text("not a database\n", encoding="utf-8")
    elif case == "another program's database":
        path = tmp_path / "other.db"
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE memory (id INTEGER, note TEXT)")
    else:
        path = _path_cases(tmp_path)[case]
    for how in ({"args": ["--db", str(path)]}, {"env": {"MAS_DB": str(path)}}):
        done = mas(tmp_path, "run", TOPIC, *how.get("args", []), **how.get("env", {}))
        line = problem_line(done, 2)
        assert str(path) in line and "->" in line and "--db" in line, line


@pytest.mark.parametrize("case", ["a folder", "a file where a folder should be", "not writable"])
def test_an_out_that_cannot_be_written_is_one_line(tmp_path, case):
    path = _path_cases(tmp_path)[case]
    line = problem_line(mas(tmp_path, "run", TOPIC, "--out", str(path)), 2)
    assert line.startswith(f"mas: cannot write the report to {path}: ") and "--out" in line, line


# ---------------------------------------------------------------------------- recordings

@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> list[str]:
    """The lines of a recorded offline session of `mas run`."""
    folder = tmp_path_factory.mktemp("recorded")
    path = folder / "session.jsonl"
    assert mas(folder, "run", TOPIC, MAS_RECORD=str(path)).returncode == 0
    return path.read_text(encoding="utf-8").splitlines()


TAMPERED = {
    "not JSON": lambda lines: ["{not json"] + lines,
    "not an exchange": lambda lines: ['{"a": 1}'] + lines,
    "a status that is not a number": lambda lines: [json.dumps({**json.loads(lines[0]), "status": "ok"})] + lines[1:],
    "headers that are not an object": lambda lines: [json.dumps({**json.loads(lines[0]), "headers": "x"})] + lines[1:],
    "a body that is not text": lambda lines: [json.dumps({**json.loads(lines[0]), "body": 5})] + lines[1:],
    "an error without a type": lambda lines: [json.dumps({"method": "POST", "path": "/v1/messages", "error": 1})],
}


@pytest.mark.parametrize("case", ["missing", "a folder", "not UTF-8", *TAMPERED])
def test_a_recording_that_cannot_be_replayed_is_one_line_before_any_call(tmp_path, recorded, case):
    path = tmp_path / "session.jsonl"
    if case == "a folder":
        path.mkdir()
    elif case == "not UTF-8":
        path.write_bytes("\ufeffnot a recording".encode("utf-16"))
    elif case != "missing":
        path.write_text("\n".join(TAMPERED[case](recorded)) + "\n", encoding="utf-8")
    for name in ("run", "hello", "worker") if case in ("missing", "a folder", "not UTF-8") else ("run",):
        line = problem_line(command(tmp_path, *COMMANDS[name], MAS_REPLAY=str(path)), 2)
        assert str(path) in line, (name, line)
    if (tmp_path / "memory.db").exists():  # opened before the recording was read: nothing was run
        with SQLiteMemory(tmp_path / "memory.db") as memory:
            assert memory.get_all() == {}


def test_a_replay_without_the_request_fails_the_run_in_memory_resumably(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("", encoding="utf-8")
    line = problem_line(mas(tmp_path, "run", TOPIC, "--run-id", "r1", MAS_REPLAY=str(path)), 1)
    assert line.startswith("mas: failed: POST /v1/messages") and "MAS_REPLAY_FALLBACK=1" in line
    with SQLiteMemory(tmp_path / "memory.db") as memory:
        saved = memory.scoped("r1").get_all()
    assert saved["status"] == "failed" and saved["reason"].startswith("POST /v1/messages")
    resumed = mas(tmp_path, "run", "--run-id", "r1", MAS_REPLAY=str(path), MAS_REPLAY_FALLBACK="1")
    assert resumed.returncode == 0, resumed.stderr


def test_a_replay_that_misses_mid_run_is_one_line_and_the_run_failed_in_memory_no_draft_shown(tmp_path, recorded):
    path = tmp_path / "no-verdict.jsonl"  # the session of a whole run without its first verdict (call 3 of 5)
    path.write_text("\n".join(recorded[:2] + recorded[3:]) + "\n", encoding="utf-8")
    done = mas(tmp_path, "run", TOPIC, "--run-id", "r1", "--out", "report.md", MAS_REPLAY=str(path))
    line = problem_line(done, 1)
    assert line.startswith("mas: failed: POST /v1/messages (model 'claude-opus-4-6', last user message '<research>")
    with SQLiteMemory(tmp_path / "memory.db") as memory:
        saved = memory.scoped("r1").get_all()
    assert saved["status"] == "failed" and saved["reason"] == line.removeprefix("mas: failed: ")
    assert "draft_1" in saved and saved["draft_1"] not in done.stdout and not (tmp_path / "report.md").exists()


@pytest.mark.parametrize("case", ["a folder", "a file where a folder should be", "not writable"])
def test_a_recording_that_cannot_be_written_is_one_line_before_any_call(tmp_path, case):
    path = _path_cases(tmp_path)[case]
    for name in ("run", "hello"):
        line = problem_line(command(tmp_path, *COMMANDS[name], MAS_RECORD=str(path)), 2)
        assert line.startswith(f"mas: MAS_RECORD={path} cannot be used: ") and "->" in line, (name, line)
    assert not (tmp_path / "memory.db").exists()


def test_record_and_replay_together_is_one_line(tmp_path):
    for name in ("run", "hello", "worker"):
        line = problem_line(command(tmp_path, *COMMANDS[name], MAS_RECORD="a.jsonl", MAS_REPLAY="b.jsonl"), 2)
        assert "MAS_RECORD and MAS_REPLAY are both set" in line


# ---------------------------------------------------------------------------- the kill switch, servers

def test_the_kill_switch_with_a_key_is_one_line_that_says_how_to_choose(tmp_path):
    for name in ("run", "hello", "worker"):
        done = command(tmp_path, *COMMANDS[name], ANTHROPIC_API_KEY=FAKE_KEY, MAS_OFFLINE=None)
        line = problem_line(done, 2)
        assert "MAS_NO_LIVE=1" in line and "MAS_OFFLINE=1" in line, (name, line)


def test_a_redis_that_does_not_answer_is_one_line_for_a_worker(tmp_path):
    for url in ("redis://127.0.0.1:1/0", "notredis://x", "redis://[::1"):
        line = problem_line(command(tmp_path, *COMMANDS["worker"], REDIS_URL=url), 2)
        assert line.startswith("mas: ")


@contextmanager
def server(status: int, content_type: str, body: bytes):
    """A real HTTP server on 127.0.0.1 that gives every request the same answer; its URL."""
    with serving(lambda method, path, sent: (status, {"content-type": content_type, "request-id": "req_test"},
                                            body)) as httpd:
        yield httpd.url


def live(url: str) -> dict[str, str | None]:
    """The environment of a live client pointed at `url` (the kill switch removed, explicitly)."""
    return {"ANTHROPIC_API_KEY": FAKE_KEY, "ANTHROPIC_BASE_URL": url, "MAS_OFFLINE": None,
            "MAS_NO_LIVE": None, "MAS_MAX_RETRIES": "0"}


UNAUTHORIZED = json.dumps({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"},
                           "request_id": "req_test"}).encode()


def test_a_401_fails_the_run_with_the_fix_and_the_run_resumes(tmp_path):
    with server(401, "application/json", UNAUTHORIZED) as url:
        line = problem_line(mas(tmp_path, "run", TOPIC, "--run-id", "r1", **live(url)), 1)
        hello = problem_line(mas(tmp_path, "hello", **live(url)), 1)
    assert line.startswith("mas: failed: AuthenticationError 401: invalid x-api-key -> check ANTHROPIC_API_KEY")
    assert line.endswith("then resume with `mas run --run-id r1`") and "sk-ant-" + "test" not in line
    assert hello.startswith("mas: AuthenticationError 401: invalid x-api-key -> check ANTHROPIC_API_KEY")
    with SQLiteMemory(tmp_path / "memory.db") as memory:
        saved = memory.scoped("r1").get_all()
    assert saved["status"] == "failed" and saved["reason"] == "AuthenticationError 401: invalid x-api-key"
    assert mas(tmp_path, "run", "--run-id", "r1").returncode == 0  # offline now: the same run goes on


MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-opus-4-6",
           "content": [{"type": "text", "text": "- a point"}], "stop_reason": "end_turn", "stop_sequence": None,
           "usage": {"input_tokens": 3, "output_tokens": 4}}
NOT_A_MESSAGE = {
    "not JSON": ("application/json", b"{not json"),
    "empty": ("application/json", b""),
    "not UTF-8": ("application/json", b'{"id": "\xe9"}'),
    "nested too deep": ("application/json", b"[" * 100_000 + b"]" * 100_000),
    "JSON null": ("application/json", b"null"),
    "a JSON list": ("application/json", b"[1, 2]"),
    "a list of objects": ("application/json", b"[{}]"),
    "another object": ("application/json", b'{"hello": "world"}'),
    "an error object": ("application/json", UNAUTHORIZED),
    "content that is text": ("application/json", json.dumps({**MESSAGE, "content": "hi"}).encode()),
    "a text block without text": ("application/json", json.dumps({**MESSAGE, "content": [{"type": "text"}]}).encode()),
    "no usage": ("application/json", json.dumps({k: v for k, v in MESSAGE.items() if k != "usage"}).encode()),
    "usage in words": ("application/json",
                       json.dumps({**MESSAGE, "usage": {"input_tokens": "many", "output_tokens": 1}}).encode()),
    "an HTML page": ("text/html", b"<html><body>Welcome to the proxy</body></html>"),
    "plain text": ("text/plain", b"hello"),
    "an event stream": ("text/event-stream", b"event: ping\ndata: {}\n\n"),
}


@pytest.mark.parametrize("case", ["not JSON", "an error object", "no usage", "an HTML page"])
def test_a_200_that_is_not_a_message_fails_the_run_in_memory(tmp_path, case):
    with server(200, *NOT_A_MESSAGE[case]) as url:
        line = problem_line(mas(tmp_path, "run", TOPIC, "--run-id", "r1", **live(url)), 1)
    assert line.startswith("mas: failed: Researcher: the server's reply is not a Message: "), line
    with SQLiteMemory(tmp_path / "memory.db") as memory:
        saved = memory.scoped("r1").get_all()
    assert saved["status"] == "failed" and "is not a Message" in saved["reason"]


class _Reply(httpx2.BaseTransport, httpx2.AsyncBaseTransport):
    """The same 200 answer to every request, under the real SDK."""

    def __init__(self, content_type: str, body: bytes):
        self.content_type, self.body = content_type, body

    def handle_request(self, request):
        return httpx2.Response(200, headers={"content-type": self.content_type}, content=self.body)

    async def handle_async_request(self, request):
        return self.handle_request(request)


def _agent(content_type: str, body: bytes) -> BaseAgent:
    transport = _Reply(content_type, body)
    return BaseAgent("researcher", make_client(transport=transport, max_retries=0),
                     async_client=make_client(transport=transport, max_retries=0, asynchronous=True))


@pytest.mark.parametrize("case", list(NOT_A_MESSAGE))
def test_every_call_of_an_agent_reads_a_reply_that_is_not_a_message_as_an_invalid_failure(case):
    agent = _agent(*NOT_A_MESSAGE[case])
    with Tracer() as tracer:
        for call in (lambda: agent.run("a task"), lambda: asyncio.run(agent.arun("a task")),
                     lambda: agent.count_tokens("a task")):
            with pytest.raises(AgentReplyError) as caught:
                call()
            assert kind_of(caught.value) == "invalid" and "is not a" in caught.value.reason
    assert [span.error is not None for span in tracer.spans] == [True, True]  # a span per message, each failed
    assert agent.history == [] and agent.usage.calls == 0


def test_a_reply_that_is_not_a_message_stops_the_orchestrator_as_failed_not_researching(memory):
    agent = _agent(*NOT_A_MESSAGE["another object"])
    result = Orchestrator(memory, researcher=agent, client=make_client(transport=OfflineTransport()),
                          progress=None).run(TOPIC, run_id="r")
    assert result.status == "failed" and memory.scoped("r").get("status") == "failed"
    assert "is not a Message" in result.reason


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                               st.sampled_from(list(MESSAGE) + ["text", "input_tokens", "x"]), inner, max_size=4),
                           max_leaves=12)


@hypothesis_settings(suppress_health_check=[HealthCheck.too_slow], max_examples=60)
@given(st.one_of(json_values.map(json.dumps).map(str.encode), st.binary(max_size=20),
                 st.dictionaries(st.sampled_from(list(MESSAGE)), json_values).map(
                     lambda part: json.dumps({**MESSAGE, **part}).encode())))
def test_any_200_body_is_a_reply_or_an_invalid_failure_never_another_error(body):
    agent = _agent("application/json", body)
    try:
        text = agent.run("a task")
    except AgentReplyError as err:
        assert err.kind in ("invalid", "empty", "refusal", "max_tokens")
    else:
        assert isinstance(text, str) and text.strip()


def test_the_hooks_see_the_invalid_failure_with_its_error():
    seen = []
    agent = _agent(*NOT_A_MESSAGE["an HTML page"])
    with call_hook(lambda a, request: lambda message, error: seen.append((message, error))):
        with pytest.raises(AgentReplyError):
            agent.run("a task")
    assert len(seen) == 1 and seen[0][0] is None and isinstance(seen[0][1], AgentReplyError)


# ---------------------------------------------------------------------------- what a run prints and writes

def _saved(tmp_path: Path, run_id: str) -> dict[str, str]:
    with SQLiteMemory(tmp_path / "memory.db") as memory:
        return memory.scoped(run_id).get_all()


def test_an_approved_run_prints_and_writes_the_report(tmp_path):
    done = mas(tmp_path, "run", TOPIC, "--run-id", "r1", "--out", "report.md")
    assert done.returncode == 0 and "Traceback" not in done.stderr
    report = _saved(tmp_path, "r1")["report"]
    assert f"\n{report}\n\nrun r1: approved, 1 revision(s), 5 model calls, " in done.stdout
    assert done.stdout.endswith(" output tokens\nreport written to report.md\n")
    assert (tmp_path / "report.md").read_text(encoding="utf-8") == report + "\n" and "NOT APPROVED" not in done.stdout


def test_at_the_cycle_limit_the_best_draft_is_shown_and_written_marked_not_approved(tmp_path):
    done = mas(tmp_path, "run", TOPIC, "--run-id", "r1", "--max-cycles", "0", "--out", "report.md")
    line = problem_line(done, 1)
    assert line.startswith("mas: max_cycles: not approved after 0 revision(s) (the limit); returning draft 1 of 1")
    saved = _saved(tmp_path, "r1")
    issues = json.loads(saved["issues"])
    banner = f"NOT APPROVED: draft 1, with its {len(issues)} remaining issue(s) listed at the end (run r1: "
    listed = "Remaining issues of draft 1:\n" + "\n".join(f"- {issue}" for issue in issues)
    assert issues and saved["report"] == saved["draft_1"]
    assert done.stdout.index(banner) < done.stdout.index(saved["draft_1"]) < done.stdout.index(listed)
    written = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert written.splitlines()[0].startswith(f"> {banner}")
    assert written == f"{written.splitlines()[0]}\n\n{saved['draft_1']}\n\n{listed}\n"
    assert "unapproved draft, marked as such, written to report.md" in done.stdout


STOPS = {  # how to make `mas run` stop, and what then is in memory
    "failed": ([TOPIC], {"MAS_FAULTS": "server_error@validator*9", "MAS_MAX_RETRIES": "0", "MAS_PROGRESS": "0"}),
    "no_research": (["Solar panel recycling"], {}),
}


@pytest.mark.parametrize("status", list(STOPS))
def test_a_run_that_stopped_prints_no_draft_and_writes_no_report(tmp_path, status):
    args, env = STOPS[status]
    (tmp_path / "report.md").write_text("an earlier report\n", encoding="utf-8")
    done = mas(tmp_path, "run", *args, "--run-id", "r1", "--out", "report.md", **env)
    line = problem_line(done, 1)
    saved = _saved(tmp_path, "r1")
    assert saved["status"] == status and line == f"mas: {status}: {saved['reason']}"
    assert "report" not in saved and (tmp_path / "report.md").read_text(encoding="utf-8") == "an earlier report\n"
    said = done.stdout.split("\n[Orchestrator] Stopped: ", 1)[1].splitlines()[1:]  # after the run's progress
    assert said[0].startswith(f"run r1: {status}, 0 revision(s), ")
    if status == "failed":  # a draft was written, then the validator failed: where it is, never the draft itself
        assert saved["draft_1"] not in done.stdout
        assert said[1] == (f"no report: draft 1, not approved, is saved in {tmp_path / 'memory.db'} (run r1, key "
                           "draft_1); `mas run --run-id r1` resumes the run")
    else:
        assert "draft_1" not in saved
    assert said[-1] == "no report written to report.md: the run stopped before the validator approved a draft"


def test_mas_faults_with_a_live_client_is_one_warning_line_and_the_call_goes_to_claude(tmp_path):
    with server(200, "application/json", json.dumps(MESSAGE).encode()) as url:
        done = mas(tmp_path, "hello", MAS_FAULTS="overloaded@1", **live(url))
    line = problem_line(done, 0)
    assert line.startswith("mas: warning: MAS_FAULTS=overloaded@1 is not applied: a fault plan is the offline model's")
    assert done.stdout.startswith("- a point\n")


def test_a_live_worker_builds_its_client_without_the_offline_models_latency(tmp_path):
    # --latency stands in for Claude's own: a live worker passes none, so its client is built (and its next
    # problem, a Redis that does not answer, is the line), never refused for an offline-only option
    with server(200, "application/json", json.dumps(MESSAGE).encode()) as url:
        done = command(tmp_path, *COMMANDS["worker"], "--latency", "0.2", REDIS_URL="redis://127.0.0.1:1/0",
                       **live(url))
    line = problem_line(done, 2)
    assert line.startswith("mas: ") and "latency" not in line and "Redis" in line, line
