"""The `mas` command: the tutorial's main.py as a command line.

    mas run "TOPIC" [--audience ...] [--db PATH] [--run-id ID] [--max-cycles N] [--model ...] [--out FILE]
    mas hello                     one call through the SDK: the reply, the model, the token usage
    mas doctor                    checks the setup, one line each (ok / warn / fail, with the fix)

`mas run` works offline without a key, shows progress as it goes, prints the final report, and
exits 0 when the report is approved, 1 when the run stopped (failed, or not approved within the
cycle limit) with a one-line reason on stderr, 2 on a usage error. `--run-id` of a crashed run
resumes it without repeating the calls already done.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path

import anthropic

from mas.agents import BaseAgent
from mas.client import check_model, default_model, make_client, usage_of
from mas.errors import AgentReplyError, MemoryUnavailableError, SettingsError, one_line
from mas.memory import SQLiteMemory
from mas.orchestrator import Orchestrator
from mas.prompts import DEFAULT_AUDIENCE
from mas.settings import settings


def run(args: argparse.Namespace) -> int:
    if args.model:
        check_model(args.model)
    try:
        memory = SQLiteMemory(args.db) if args.db else SQLiteMemory()
    except (MemoryUnavailableError, OSError, sqlite3.Error) as err:
        print(f"mas: cannot open the memory database {args.db or settings().db}: {err}", file=sys.stderr)
        return 1
    with memory:
        try:
            client = make_client()
        except ValueError as err:  # switches that contradict each other (MAS_RECORD and MAS_REPLAY, ...)
            print(f"mas: {one_line(err)}", file=sys.stderr)
            return 2
        orchestrator = Orchestrator(memory, client=client, max_revision_cycles=args.max_cycles, model=args.model)
        try:
            result = orchestrator.run(args.topic, audience=args.audience or DEFAULT_AUDIENCE, run_id=args.run_id)
        except ValueError as err:
            print(f"mas: {err}", file=sys.stderr)
            return 2
    print(f"\n{result.report}\n")
    u = result.usage
    print(f"run {result.run_id}: {result.status}, {result.cycles} revision(s), {u.calls} model calls, "
          f"{u.input_tokens} input + {u.output_tokens} output tokens")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(result.report + "\n", encoding="utf-8")
        print(f"report written to {args.out}")
    if result.status != "approved":
        print(f"mas: {result.status}: {result.reason}", file=sys.stderr)
        return 1
    return 0


def hello(args: argparse.Namespace) -> int:
    try:
        agent = BaseAgent("assistant", make_client(), args.model or default_model(), 300, system_prompt="")
        print(agent.run("In one sentence: what does an orchestrator do in a multi-agent system?"))
    except (anthropic.APIError, AgentReplyError, ValueError) as err:
        print(f"mas: {one_line(err)}", file=sys.stderr)
        return 1
    reply = agent.last_message
    usage = usage_of(reply)
    print(f"\nmodel: {reply.model}   input tokens: {usage['input_tokens']}   output tokens: {usage['output_tokens']}")
    return 0


def doctor(args: argparse.Namespace) -> int:
    from mas.doctor import main as doctor_main

    return doctor_main()


def _cycles(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mas", description="A multi-agent system on the Anthropic SDK "
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
    p.set_defaults(func=run)
    p = sub.add_parser("hello", help="one call through the SDK (offline without a key)")
    p.add_argument("--model", help="model id (default: MAS_MODEL or claude-opus-4-6)")
    p.set_defaults(func=hello)
    p = sub.add_parser("doctor", help="check the setup: Python, packages, key, model, Redis, JupyterLab")
    p.set_defaults(func=doctor)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run" and not args.topic and not args.run_id:
        print("mas: give a TOPIC, or --run-id of a run to resume", file=sys.stderr)
        return 2
    try:
        settings()  # a switch with a bad value is one line here, before any work starts
    except SettingsError as err:
        print(f"mas: {err}", file=sys.stderr)
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
