"""The `mas` command: the tutorial's main.py as a command line.

    mas run "TOPIC" [--audience ...] [--db PATH] [--run-id ID] [--max-cycles N] [--model ...] [--out FILE]
            [--docs DIR]          research only from your own documents, each point citing its passage
    mas mcp [--docs DIR]          document search as an MCP server (stdio), for any MCP client
    mas eval EVALSET [--variant NAME=PROMPTFILE ...] [--baseline RESULTS] [--out RESULTS] [--plot PNG]   compare prompts
    mas batch TOPICS_FILE [--name N] [--db PATH]   many topics through the Message Batches API, at half price
    mas worker [--concurrency N] [--rate 50/m]   a Celery worker on REDIS_URL; mas submit TOPICS_FILE
                                  sends it runs and waits; mas status [--redis] shows the runs
    mas hello                     one call through the SDK: the reply, the model, the token usage
    mas doctor                    checks the setup, one line each (ok / warn / fail, with the fix)
    mas serve [--host H] [--port N] [--faults PLAN] [--latency S] [--replay FILE]   the offline model over HTTP

`mas run` works offline without a key, shows progress as it goes, prints the final report, and
exits 0 when the report is approved, 1 when the run stopped (failed, or not approved within the
cycle limit) with a one-line reason on stderr, 2 on a usage error or a problem of the setup.
`--run-id` of a crashed run resumes it without repeating the calls already done. A run that is not
approved never passes a draft off as the report: at the cycle limit the best draft is printed under
a NOT APPROVED banner with its remaining issues (and `--out` writes it with that banner as its first
line); a run that stopped prints no draft, only where the latest one is saved, and `--out` writes nothing.

A user's mistake or a problem of the environment (a switch's value, a path, the kill switch, a
recording, a server) is one line on stderr, with its cause and its fix, never a traceback: a
traceback is left for what is a bug of `mas`. `setup_problem` says that line (`exit_on_setup_problem`).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import sqlite3
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import anthropic

from mas import serve
from mas.agents import BaseAgent
from mas.client import KILL_SWITCH_ENV, check_model, default_model, make_client, usage_of
from mas.contracts import RunResult
from mas.errors import (
    AgentReplyError,
    LiveClientForbidden,
    MemoryUnavailableError,
    MissingExtra,
    RunBusy,
    SettingsError,
    one_line,
)
from mas.hooks import call_hook
from mas.memory import SQLiteMemory
from mas.orchestrator import Orchestrator
from mas.prompts import DEFAULT_AUDIENCE
from mas.settings import settings

USAGE, FAILED = 2, 1  # exit statuses: a usage or environment problem; a run that stopped without approval
# what the command meets anywhere that is the setup's fault, not a bug: each has its one line (setup_problem)
SETUP_ERRORS = (SettingsError, LiveClientForbidden, MemoryUnavailableError, MissingExtra)
KILL_SWITCH_LINE = (f"{KILL_SWITCH_ENV}=1 (the test suite's kill switch) forbids live Claude, and a key is set: "
                    f"unset {KILL_SWITCH_ENV} to use Claude, or set MAS_OFFLINE=1 for the offline model")


def run(args: argparse.Namespace) -> int:
    if args.model:
        check_model(args.model)
    db = Path(args.db) if args.db else settings().db
    # every path is checked before the first model call: a run is never paid for and then not saved
    for problem in (_out_problem(args.out), _record_problem()):
        if problem:
            return _say(problem, USAGE)
    memory = _memory(db)
    if isinstance(memory, str):
        return _say(memory, USAGE)
    with memory:
        try:
            client = make_client()
        except (ValueError, OSError, LiveClientForbidden) as err:  # MAS_RECORD and MAS_REPLAY, a bad recording...
            return _say(setup_problem(err), USAGE)
        researcher = validator = None
        if args.docs:
            index_or_problem = _docs_index(Path(args.docs), db)
            if isinstance(index_or_problem, str):
                return _say(index_or_problem, USAGE)
            from mas.tools import GroundedResearcherAgent, GroundedValidatorAgent

            researcher = GroundedResearcherAgent(index_or_problem, client=client, model=args.model)
            validator = GroundedValidatorAgent(index_or_problem, client=client, model=args.model)
        orchestrator = Orchestrator(memory, client=client, max_revision_cycles=args.max_cycles, model=args.model,
                                    researcher=researcher, validator=validator)
        failures = LastFailure()
        try:
            with call_hook(failures):
                result = orchestrator.run(args.topic, audience=args.audience or DEFAULT_AUDIENCE, run_id=args.run_id)
        except ValueError as err:
            return _say(str(err), USAGE)
        except RunBusy as err:  # another `mas run --run-id` of the same run, a worker, a notebook
            return _say(str(err), FAILED)
        except sqlite3.Error as err:  # a database of another program, or a full disk
            return _say(f"the memory database {db} cannot be used: {err} -> give --db a new file, or one that mas "
                        "wrote (and free some disk space if it is full)", USAGE)
    print(_shown(result, db))
    if args.out:
        text = _written(result)
        if text is None:
            print(f"no report written to {args.out}: the run stopped before the validator approved a draft")
        else:
            try:
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                Path(args.out).write_text(text, encoding="utf-8")
            except OSError as err:  # the folder changed during the run, or the disk is full
                return _say(f"cannot write the report to {args.out}: {_cause(err)}; the run is saved, so "
                            f"`mas run --run-id {result.run_id} --out FILE` writes it without a model call", USAGE)
            print(f"{'report' if result.approved else 'unapproved draft, marked as such,'} written to {args.out}")
    if result.status != "approved":
        fix = fix_of(failures.error) if result.status == "failed" else None
        then = f" -> {fix}, then resume with `mas run --run-id {result.run_id}`" if fix else ""
        return _say(f"{result.status}: {result.reason}{then}", FAILED)
    return 0


def _memory(db: Path) -> SQLiteMemory | str:
    """The memory database at `db`, or the one line that says why it cannot be opened."""
    try:
        return SQLiteMemory(db)
    except (MemoryUnavailableError, OSError, sqlite3.Error) as err:
        return (f"cannot open the memory database {db}: {path_problem(db) or _cause(err)} -> give --db "
                "(or MAS_DB) a SQLite file in a folder you can write, e.g. data/memory.db")


def _topics(path: str) -> list[str] | str:
    """The topics of the file at `path`, or the one line that says why it cannot be read."""
    try:
        return read_topics(path)
    except OSError as err:
        return f"{path}: {_cause(err)}"
    except UnicodeDecodeError:
        return f"{path}: not UTF-8 text"
    except ValueError as err:
        return str(err)


def _name_of(topics: list[str], letter: str) -> str:
    """A job's default name: the same topics, the same name (so the same command resumes the job)."""
    return letter + hashlib.sha256("\n".join(topics).encode()).hexdigest()[:8]


def read_topics(path: str) -> list[str]:
    """A topics file: one topic a line; blank lines and lines starting with # are skipped."""
    text = Path(path).read_text(encoding="utf-8")
    topics = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not topics:
        raise ValueError(f"{path}: no topics in it (one topic a line; # starts a comment)")
    return topics


def batch(args: argparse.Namespace) -> int:
    """`mas batch`: every topic of the file through the Message Batches API, then the table of the runs."""
    from mas.batches import BatchRunner

    if args.model:
        check_model(args.model)
    topics = _topics(args.topics)
    if isinstance(topics, str):
        return _say(topics, USAGE)
    name = args.name or _name_of(topics, "b")
    db = Path(args.db) if args.db else settings().db
    memory = _memory(db)
    if isinstance(memory, str):
        return _say(memory, USAGE)
    with memory:
        try:
            runner = BatchRunner(memory, make_client(), name=name, model=args.model, max_revision_cycles=args.max_cycles)
            done = runner.run(topics, audience=args.audience or DEFAULT_AUDIENCE)
        except ValueError as err:
            return _say(str(err), USAGE)
        except RunBusy as err:
            return _say(f"batch {name} is being run by another process: {err}", FAILED)
        except anthropic.APIError as err:  # the batches themselves refused (a key without access, a gateway)
            return _say(f"the Message Batches API refused: {one_line(err)}; the batch {name} resumes with the same "
                        "command", FAILED)
    print(done.table())
    print(f"batch {name} in {db}, {done.seconds:.1f} s: `mas batch {args.topics}` again resumes it (and sends "
          "failed requests again)")
    stopped = [r for r in done.results if r.status != "approved"]
    return _say(f"{len(stopped)} of {len(done.results)} runs not approved", FAILED) if stopped else 0


def worker(args: argparse.Namespace) -> int:
    """`mas worker`: a Celery worker of mas's one task (run or resume a run), on REDIS_URL, until Ctrl-C."""
    from mas.scaling import QUEUE, RedisMemory, celery_app

    # what would fail in every task fails here, once, in one line: a bad switch, the kill switch with a key
    # (the client), a Redis that does not answer (Celery would retry it forever)
    make_client().close()
    app = celery_app(rate=args.rate, latency=args.latency or 0.0)  # --latency: offline only (run_topic)
    RedisMemory(app.conf.mas["url"]).close()
    import logging

    for name in ("httpx", "httpx2"):  # one INFO line a request would drown the runs' own lines
        logging.getLogger(name).setLevel(logging.WARNING)
    app.worker_main(["worker", f"--concurrency={args.concurrency}", f"--queues={args.queue or QUEUE}",
                     "--loglevel=INFO", "--without-gossip", "--without-mingle", f"--pool={args.pool}",
                     # a name of its own, as Celery needs each worker's to be (its default is the host's)
                     f"--hostname={args.name or f'mas-{os.getpid()}@%h'}"])
    return 0


def submit(args: argparse.Namespace) -> int:
    """`mas submit`: a task a topic for the workers, then a progress bar until every run has ended."""
    from mas.scaling import QUEUE, celery_app
    from mas.scaling import submit as send

    topics = _topics(args.topics)
    if isinstance(topics, str):
        return _say(topics, USAGE)
    name = args.name or _name_of(topics, "c")
    app = celery_app()
    tasks = send(app, topics, name, audience=args.audience or DEFAULT_AUDIENCE, max_cycles=args.max_cycles,
                 queue=args.queue or QUEUE)
    print(f"submitted {len(tasks)} run(s) as {name}-001 to {name}-{len(tasks):03d}; `mas worker` runs them",
          file=sys.stderr)
    shown, deadline = -1, (time.monotonic() + args.timeout) if args.timeout else None
    while (done := sum(t.ready() for t in tasks)) < len(tasks):
        if done != shown:
            _bar(done, len(tasks))
            shown = done
        if deadline is not None and time.monotonic() > deadline:
            return _say(f"{len(tasks) - done} of {len(tasks)} runs not done after {args.timeout:g} s (the tasks "
                        f"stay queued; `mas status` shows them, `mas submit` again waits for them)", FAILED)
        time.sleep(0.2)
    _bar(done, len(tasks))
    rows = []
    for topic, t in zip(topics, tasks):
        end = t.result if t.successful() else {"status": "error", "cycles": "", "calls": "",
                                                 "reason": one_line(t.result), "worker": ""}
        rows.append({"run": t.id, "topic": topic[:40], "status": end["status"], "revisions": end["cycles"],
                     "calls": end["calls"], "worker": end.get("worker", "")})
    from mas.tracing import format_table

    print(format_table(rows))
    stopped = [r for r in rows if r["status"] != "approved"]
    return _say(f"{len(stopped)} of {len(rows)} runs not approved", FAILED) if stopped else 0


def _bar(done: int, total: int, width: int = 30) -> None:
    filled = width * done // total
    print(f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} runs done", file=sys.stderr, flush=True)


def status(args: argparse.Namespace) -> int:
    """`mas status`: the runs in the memory (SQLite by default, Redis with --redis), one line each."""
    from mas.scaling import RedisMemory, runs
    from mas.tracing import format_table

    memory = RedisMemory(args.redis or None) if args.redis is not None else _memory(
        Path(args.db) if args.db else settings().db)
    if isinstance(memory, str):
        return _say(memory, USAGE)
    with memory:
        found = [r for r in runs(memory) if not args.runs or r["run"] in args.runs]
    if not found:
        print("no runs in this memory" if not args.runs else "none of these runs is in this memory")
        return 0 if not args.runs else FAILED
    print(format_table([{"run": r["run"], "topic": r["topic"][:40], "status": r.get("status", ""),
                         "drafts": r.get("drafts", "0"), "worker": r.get("worker", "")} for r in found]))
    return 0


def _shown(result: RunResult, db: Path) -> str:
    """What `mas run` prints when a run ends: the report (approved); the best draft under a NOT APPROVED banner,
    with its remaining issues (max_cycles); or no draft at all, only where the latest one is saved (a run that
    stopped); then the run's line: status, revisions, calls and tokens. The reason follows on stderr."""
    u = result.usage
    summary = (f"run {result.run_id}: {result.status}, {result.cycles} revision(s), {u.calls} model calls, "
               f"{u.input_tokens} input + {u.output_tokens} output tokens")
    if result.approved:
        return f"\n{result.report}\n\n{summary}"
    if result.report:  # max_cycles: the best draft, said to be what it is
        return f"\n{_banner(result)}\n\n{result.report}\n\n{_issues(result)}\n\n{summary}"
    if result.draft:
        n = result.cycles + 1
        return (f"{summary}\nno report: draft {n}, not approved, is saved in {db} (run {result.run_id}, key "
                f"draft_{n}); `mas run --run-id {result.run_id}` resumes the run")
    return summary


def _written(result: RunResult) -> str | None:
    """What `--out` writes: the approved report as it is; the best draft of a max_cycles run with a first line
    that marks it unapproved and its remaining issues at the end; for a run that stopped, nothing (None)."""
    if result.approved:
        return result.report + "\n"
    if result.report:
        return f"> {_banner(result)}\n\n{result.report}\n\n{_issues(result)}\n"
    return None


def _banner(result: RunResult) -> str:
    return (f"NOT APPROVED: draft {result.report_draft}, with its {len(result.issues)} remaining issue(s) listed "
            f"at the end (run {result.run_id}: {result.reason})")


def _issues(result: RunResult) -> str:
    listed = "\n".join(f"- {issue}" for issue in result.issues) or "- (the validator named none, and did not approve)"
    return f"Remaining issues of draft {result.report_draft}:\n{listed}"


def hello(args: argparse.Namespace) -> int:
    if problem := _record_problem():
        return _say(problem, USAGE)
    try:
        agent = BaseAgent("assistant", make_client(), args.model or default_model(), 300, system_prompt="")
        print(agent.run("In one sentence: what does an orchestrator do in a multi-agent system?"))
    except (anthropic.AnthropicError, AgentReplyError) as err:
        fix = fix_of(err)
        return _say(one_line(err) + (f" -> {fix}" if fix else ""), FAILED)
    except (ValueError, OSError, LiveClientForbidden) as err:
        return _say(setup_problem(err), USAGE)
    reply = agent.last_message
    usage = usage_of(reply)
    print(f"\nmodel: {reply.model}   input tokens: {usage['input_tokens']}   output tokens: {usage['output_tokens']}")
    return 0


def doctor(args: argparse.Namespace) -> int:
    from mas.doctor import main as doctor_main

    return doctor_main()


# ---------------------------------------------------------------------------- one line for each problem

def setup_problem(err: BaseException) -> str:
    """The one line for an error of the setup, with its fix: a switch's value, the kill switch with a
    key, a recording that cannot be read or written (MAS_REPLAY, MAS_RECORD), a server away."""
    if isinstance(err, LiveClientForbidden):
        return KILL_SWITCH_LINE
    if isinstance(err, MemoryUnavailableError):  # its fix spans lines (a command to copy): one line here
        return " ".join(str(err).split())
    if not isinstance(err, (OSError, UnicodeDecodeError)):
        return one_line(err)
    s = settings()  # a file error: of the recording a switch names, when one does
    switch, path = ("MAS_REPLAY", s.replay) if s.replay is not None else ("MAS_RECORD", s.record)
    if isinstance(err, UnicodeDecodeError) and switch == "MAS_REPLAY":
        return f"{switch}={path} is not a recording: it is not UTF-8 text -> set {switch} to a file MAS_RECORD wrote"
    if isinstance(err, OSError) and path is not None and err.errno is not None:  # no errno: a message of mas's own
        wanted = "a file MAS_RECORD wrote" if switch == "MAS_REPLAY" else "a file in a folder you can write"
        return f"{switch}={path} cannot be used: {path_problem(path) or _cause(err)} -> set {switch} to {wanted}"
    return one_line(err)


def path_problem(path: Path) -> str | None:
    """Why no file can be written at `path`, in a few words, or None when nothing is in the way
    (the folders that are missing will be made).

    >>> import tempfile; folder = Path(tempfile.mkdtemp()); _ = (folder / "notes.txt").write_text("x")
    >>> path_problem(folder), path_problem(folder / "new" / "memory.db")
    ('it is a folder', None)
    >>> path_problem(folder / "notes.txt" / "memory.db") == f"{folder / 'notes.txt'} is a file, not a folder"
    True
    """
    if path.is_dir():
        return "it is a folder"
    for folder in path.parents:
        if folder.exists() or folder.is_symlink():
            if not folder.is_dir():
                return f"{folder} is a file, not a folder"
            if not path.exists() and not os.access(folder, os.W_OK):
                return f"the folder {folder} is not writable"
            break
    if path.is_file() and not os.access(path, os.W_OK):
        return "the file is not writable"
    return None


def fix_of(err: BaseException | None) -> str | None:
    """What to do about a failed call whose cause is the setup (the key, the model, the server), or None."""
    if isinstance(err, anthropic.AuthenticationError):
        return "check ANTHROPIC_API_KEY (in .env or the environment), or unset it for the offline model"
    if isinstance(err, anthropic.PermissionDeniedError):
        return "check that ANTHROPIC_API_KEY may use this model and endpoint"
    if isinstance(err, anthropic.NotFoundError):
        return "check --model (or MAS_MODEL) and ANTHROPIC_BASE_URL"
    if isinstance(err, anthropic.APIConnectionError) and not isinstance(err, anthropic.APITimeoutError):
        return "check the network and ANTHROPIC_BASE_URL, or set MAS_OFFLINE=1 for the offline model"
    return None


class LastFailure:
    """A call hook (`mas.hooks`) that keeps the error of the last model call that failed: the run's
    reason says what happened, this says which error it was, so the command can add its fix."""

    error: BaseException | None = None

    def __call__(self, agent: Any, request: dict) -> Callable[[Any, BaseException | None], None]:
        return self._after

    def _after(self, message: Any, error: BaseException | None) -> None:
        if error is not None:
            self.error = error


def exit_on_setup_problem(main: Callable[[], int], prog: str) -> int:
    """`main()`, or status 2 and one line on stderr for a problem of the setup (`setup_problem`), or for
    a `ValueError` (in mas, a misuse: its message says the fix)."""
    try:
        return main()
    except (*SETUP_ERRORS, OSError, ValueError) as err:
        print(f"{prog}: {setup_problem(err)}", file=sys.stderr)
        return USAGE


def _docs_index(folder: Path, db: Path, out: Any = None) -> Any:
    """The search index of the user's documents in `folder` (a SQLite file beside the memory, one per folder,
    brought up to date: only files that changed are indexed again), after one line saying what it holds; or
    the one line that says why it cannot be used."""
    import hashlib

    from mas.search import DocumentIndex

    if not folder.is_dir():
        return f"--docs {folder}: not a folder -> give --docs a folder of .md or .txt files"
    key = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:12]
    path = db.parent / "docs-index" / f"{folder.resolve().name or 'root'}-{key}.db"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        index = DocumentIndex(path)
        report = index.add_folder(folder)
    except (OSError, ValueError, sqlite3.Error) as err:
        return f"--docs {folder}: cannot index it: {_cause(err)}"
    for skipped in report.skipped:
        print(f"mas: note: --docs {skipped.line()}", file=sys.stderr)
    if not len(index):
        return f"--docs {folder}: no text in it (.md and .txt files are read) -> put your documents there"
    print(f"docs: {len(index.document_ids())} document(s), {len(index)} passage(s) from {folder} ({report})",
          file=out or sys.stdout)
    return index


def _out_problem(out: str | None) -> str | None:
    problem = path_problem(Path(out)) if out else None
    return problem and f"cannot write the report to {out}: {problem} -> give --out a file in a folder you can write"


def _record_problem() -> str | None:
    """Why MAS_RECORD's file cannot be appended to, tried as the recorder opens it (nothing is written)."""
    path = settings().record
    if path is None or settings().replay is not None:  # both set: make_client says so
        return None
    problem = path_problem(path)
    if problem is None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600))
        except OSError as err:
            problem = _cause(err)
    return problem and f"MAS_RECORD={path} cannot be used: {problem} -> set MAS_RECORD to a file in a folder you can " \
                       "write"


def _cause(err: BaseException) -> str:
    """An OS error's cause without its errno and path (the line names the path itself)."""
    return (err.strerror or str(err)).lower() if isinstance(err, OSError) else one_line(err)


def _say(line: str, status: int) -> int:
    print(f"mas: {line}", file=sys.stderr)
    return status


def _warning_line(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    print(f"mas: warning: {message}", file=sys.stderr)  # the text alone, not the source line it came from


# ---------------------------------------------------------------------------- the command line

class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line (not the usage first), with where to read more
        self.exit(USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _cycles(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"--max-cycles takes a whole number, 0 or more, got {text!r}")
    return int(text)


def _positive(text: str) -> int:
    if not (text.isascii() and text.isdigit() and int(text) >= 1):
        raise argparse.ArgumentTypeError(f"takes a whole number, 1 or more, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mas", description="A multi-agent system on the Anthropic SDK "
                     "(offline model without ANTHROPIC_API_KEY).")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="research -> write -> validate -> revise on a topic")
    p.add_argument("topic", nargs="?", help="what to write about (optional when resuming with --run-id)")
    p.add_argument("--audience", help="who the report is for")
    p.add_argument("--db", help="the SQLite memory file (default: MAS_DB or data/memory.db)")
    p.add_argument("--run-id", help="a run id: resumes that run if it is in memory")
    p.add_argument("--max-cycles", type=_cycles, default=3, help="most revisions before giving up (default 3)")
    p.add_argument("--model", help="model id (default: MAS_MODEL or claude-opus-4-6)")
    p.add_argument("--out", help="also write the report to this file")
    p.add_argument("--docs", help="research only from the .md/.txt files of this folder, citing them (mas.tools)")
    p.set_defaults(func=run)
    p = sub.add_parser("hello", help="one call through the SDK (offline without a key)")
    p.add_argument("--model", help="model id (default: MAS_MODEL or claude-opus-4-6)")
    p.set_defaults(func=hello)
    p = sub.add_parser("doctor", help="check the setup: Python, packages, key, model, Redis, JupyterLab")
    p.set_defaults(func=doctor)
    p = sub.add_parser("serve", help="the offline model (or a recorded session) as a local Messages-API server")
    serve.add_arguments(p)
    p.set_defaults(func=serve.main)
    p = sub.add_parser("topics", help="the topics the offline model has notes on (and which note a topic finds)")
    p.add_argument("topic", nargs="?", help="a topic: says which note it finds, or the nearest notes")
    p.set_defaults(func=topics)
    p = sub.add_parser("eval", help="run prompt variants over an eval set, grade them, and gate on a baseline")
    p.add_argument("evalset", help="the cases, one JSON object a line (see evals/writer.jsonl)")
    p.add_argument("--variant", action="append", default=[], metavar="NAME=PROMPTFILE",
                   help="a variant whose --role prompt is the text of PROMPTFILE (repeatable); the course's own "
                        "prompts run as 'baseline' unless --no-baseline")
    p.add_argument("--role", choices=("researcher", "writer", "validator"), default="writer",
                   help="the role the variants' prompts are for (default: writer)")
    p.add_argument("--no-baseline", action="store_true", help="run only the --variant's")
    p.add_argument("--max-cycles", type=_cycles, default=3, help="most revisions a run (default 3)")
    p.add_argument("--concurrency", type=int, default=4, help="runs at a time (default 4)")
    p.add_argument("--max-cost", type=float, help="a budget in dollars for the whole eval: runs past it stop as "
                   "budget_exceeded (and fail)")
    p.add_argument("--out", help="save the results (JSON Lines) to this file")
    p.add_argument("--plot", metavar="FILE.png", help="draw each variant's pass rate against its cost to this image "
                   "(needs the plot extra: matplotlib)")
    p.add_argument("--baseline", help="results saved earlier: exit 1 when a variant's pass rate fell below them "
                   "beyond noise, naming the cases that regressed")
    p.set_defaults(func=evaluate)
    p = sub.add_parser("batch", help="many topics through the Message Batches API, at half the price")
    p.add_argument("topics", help="a file of topics, one a line (# starts a comment)")
    p.add_argument("--name", help="the job's name: the same name resumes it (default: from the topics)")
    p.add_argument("--audience", help=f"who the reports are for (default: {DEFAULT_AUDIENCE})")
    p.add_argument("--db", help="the SQLite memory (default: MAS_DB, or data/memory.db)")
    p.add_argument("--max-cycles", type=_cycles, default=3, help="most revisions a run (default 3)")
    p.add_argument("--model", help="the model (default: MAS_MODEL)")
    p.set_defaults(func=batch)
    p = sub.add_parser("worker", help="a Celery worker that runs (or resumes) submitted runs, on REDIS_URL")
    p.add_argument("--concurrency", type=_positive, default=2, help="runs at a time in this worker (default 2)")
    p.add_argument("--queue", help="the queue to take runs from (default: mas)")
    p.add_argument("--rate", help="a requests limit every worker shares, N/s, N/m or N/h (e.g. 50/m)")
    p.add_argument("--pool", choices=("prefork", "threads", "solo"), default="prefork",
                   help="Celery's pool: processes (default), threads, or one run at a time in this process")
    p.add_argument("--name", help="this worker's Celery node name (default: mas-<pid>@<host>)")
    p.add_argument("--latency", type=float, help="offline model only: simulated seconds a reply")
    p.set_defaults(func=worker)
    p = sub.add_parser("submit", help="a run a topic for the workers (`mas worker`); waits with a progress bar")
    p.add_argument("topics", help="a file of topics, one a line (# starts a comment)")
    p.add_argument("--name", help="the runs' name: runs are NAME-001, ... (default: from the topics)")
    p.add_argument("--audience", help=f"who the reports are for (default: {DEFAULT_AUDIENCE})")
    p.add_argument("--max-cycles", type=_cycles, default=3, help="most revisions a run (default 3)")
    p.add_argument("--queue", help="the workers' queue (default: mas)")
    p.add_argument("--timeout", type=float, help="stop waiting after this many seconds (the runs go on)")
    p.set_defaults(func=submit)
    p = sub.add_parser("status", help="the runs in the memory: topic, status, drafts, worker")
    p.add_argument("runs", nargs="*", help="only these run ids")
    p.add_argument("--db", help="the SQLite memory (default: MAS_DB, or data/memory.db)")
    p.add_argument("--redis", nargs="?", const="", help="the Redis memory instead (default URL: REDIS_URL)")
    p.set_defaults(func=status)
    p = sub.add_parser("mcp", help="document search (search, read) as an MCP server on stdin/stdout")
    p.add_argument("--docs", help="serve the .md/.txt files of this folder (default: the bundled notes)")
    p.add_argument("--db", help="where the memory lives: the folder's index is kept beside it (default: MAS_DB)")
    p.set_defaults(func=mcp)
    return parser


def evaluate(args: argparse.Namespace) -> int:
    """`mas eval`: the table of the variants, the failed cases of each, and the gate when --baseline is given."""
    from mas.evals import Variant, load_cases, load_results, regressions, run_eval

    try:
        cases = load_cases(args.evalset)
        variants = [] if args.no_baseline else [Variant("baseline", max_cycles=args.max_cycles)]
        for spec in args.variant:
            name, sep, path = spec.partition("=")
            if not (sep and name and path):
                raise ValueError(f"--variant {spec!r}: give it as NAME=PROMPTFILE")
            variants.append(Variant(name, prompts={args.role: Path(path).read_text(encoding="utf-8").strip()},
                                    max_cycles=args.max_cycles))
        if not variants:
            raise ValueError("nothing to run: --no-baseline needs at least one --variant")
        baseline = load_results(args.baseline) if args.baseline else None
        for given, what in ((args.out, "the results"), (args.plot, "the plot")):
            if given and (problem := path_problem(Path(given))):
                raise ValueError(f"cannot write {what} to {given}: {problem}")
        if args.plot:
            from mas.extras import require

            require("matplotlib", "mas eval --plot")  # before the runs, not after them
        from mas.budget import Budget

        with Budget(max_cost=args.max_cost) if args.max_cost is not None else contextlib.nullcontext():
            results = run_eval(cases, variants, client=make_client(), concurrency=args.concurrency)
    except OSError as err:  # an eval set, a prompt file or a baseline that cannot be read
        return _say(f"{err.filename or args.evalset}: {_cause(err)}", USAGE)
    except ValueError as err:  # a file that is not what it should be: the message names it and the line
        return _say(str(err), USAGE)
    except LiveClientForbidden as err:
        return _say(setup_problem(err), USAGE)
    print(results.table())
    for v in variants:
        for line in results.failures(v.name):
            print(f"  {v.name} failed {line}")
    print(f"{len(results.records)} runs in {results.seconds:.1f} s (concurrency {args.concurrency})")
    if args.out:
        print(f"results saved to {results.save(args.out)}")
    if args.plot:
        results.plot().savefig(args.plot, dpi=120)
        print(f"plot saved to {args.plot}")
    problems = regressions(results, baseline) if baseline else []
    for line in problems:
        print(f"mas: regression: {line}", file=sys.stderr)
    return FAILED if problems else 0


def mcp(args: argparse.Namespace) -> int:
    """`mas mcp`: stdout is the protocol's, so every line of ours goes to stderr."""
    try:
        from mas.docs_mcp import server
    except ImportError as err:
        return _say(f"mas mcp needs the mcp package ({err.name or err}): pip install -e '.[mcp]'", USAGE)
    from mas.search import DocumentIndex

    if args.docs:
        index = _docs_index(Path(args.docs), Path(args.db) if args.db else settings().db, out=sys.stderr)
        if isinstance(index, str):
            return _say(index, USAGE)
    else:
        index = DocumentIndex()
        index.add_knowledge_base()
    server(index).run("stdio")
    return 0


def topics(args: argparse.Namespace) -> int:
    """`mas topics`: the offline model's notes, one a line; `mas topics TOPIC`: which note a topic finds."""
    from mas.offline import knowledge

    if args.topic:
        match = knowledge.find(args.topic)
        if match is None:
            near, close = knowledge.nearest(args.topic)
            print(f"no note on {args.topic!r}; {'the nearest' if close else 'some'} notes: "
                  + "; ".join(note.topic for note in near))
            return FAILED
        print(f"{match.note.topic} (matched by {match.by}; {len(match.note.facts)} facts)")
        return 0
    for note in knowledge.notes():
        print(f"{note.topic}  [{'; '.join(note.aliases[:4])}]")
    print(f"{len(knowledge.notes())} topics: the offline model researches these only (Claude knows far more)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run" and not args.topic and not args.run_id:
        print("mas: give a TOPIC, or --run-id of a run to resume", file=sys.stderr)
        return USAGE
    try:
        settings()  # a switch with a bad value is one line here, before any work starts
    except SettingsError as err:
        print(f"mas: {err}", file=sys.stderr)
        return USAGE
    with warnings.catch_warnings():  # restores the usual format when main() is called from Python
        warnings.showwarning = _warning_line
        return exit_on_setup_problem(lambda: args.func(args), "mas")


if __name__ == "__main__":
    sys.exit(main())
