"""The `mas` command: the tutorial's main.py as a command line.

    mas hello                     one call through the SDK: the reply, the model, the token usage
"""

from __future__ import annotations

import argparse
import sys

from mas.llm import default_model, make_client, text_of, usage_of


def hello(args: argparse.Namespace) -> int:
    client = make_client()
    model = args.model or default_model()
    reply = client.messages.create(model=model, max_tokens=300, messages=[
        {"role": "user", "content": "In one sentence: what does an orchestrator do in a multi-agent system?"}])
    print(text_of(reply))
    usage = usage_of(reply)
    print(f"\nmodel: {reply.model}   input tokens: {usage['input_tokens']}   output tokens: {usage['output_tokens']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mas", description="A multi-agent system on the Anthropic SDK.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("hello", help="one call through the SDK (offline without a key)")
    p.add_argument("--model", help="model id (default: MAS_MODEL or claude-opus-4-6)")
    p.set_defaults(func=hello)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
