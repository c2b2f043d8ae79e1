"""One token estimate for everything the offline model counts.

Claude's real tokenizer is not public; English text averages roughly four characters a
token, so that is the estimate. What matters for the course is that it is *consistent*:
`usage.input_tokens` of a reply equals what `count_tokens` says for the same request, output
tokens grow with the reply, and `max_tokens` cuts a reply where the estimate says it should.

>>> estimate("Hello, world!")
4
>>> estimate("")
0
"""

from __future__ import annotations

import json
from typing import Any

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD = 3  # role markers and separators around each message
TOOL_OVERHEAD = 10  # the tool-use preamble the API adds when tools are present


def estimate(text: str) -> int:
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def cut(text: str, tokens: int) -> str:
    """The longest prefix of `text` that fits in `tokens` by the same estimate."""
    return text[: max(0, tokens) * CHARS_PER_TOKEN]


def block_text(block: Any) -> str:
    """The countable text of one content block (or a plain string)."""
    if isinstance(block, str):
        return block
    kind = block.get("type")
    if kind == "text":
        return block.get("text", "")
    if kind == "tool_use":
        return block.get("name", "") + json.dumps(block.get("input", {}), sort_keys=True)
    if kind == "tool_result":
        content = block.get("content", "")
        return "".join(map(block_text, content)) if isinstance(content, list) else str(content)
    return json.dumps(block, sort_keys=True)


def request_pieces(body: dict[str, Any]) -> list[tuple[int, bool, str]]:
    """The request as the API reads it (tools, then system, then messages), one entry per block:
    (tokens, marked with cache_control, the block as JSON). Prompt caching caches a prefix of
    this sequence."""
    pieces: list[tuple[int, bool, str]] = []

    def add(tokens: int, block: Any, role: str = "") -> None:
        marked = isinstance(block, dict) and "cache_control" in block
        pieces.append((tokens, marked, role + json.dumps(block, sort_keys=True, ensure_ascii=False)))

    for i, tool in enumerate(body.get("tools") or []):
        add((TOOL_OVERHEAD if i == 0 else 0) + estimate(json.dumps(tool, sort_keys=True)), tool)
    system = body.get("system")
    for block in [system] if isinstance(system, str) else system or []:
        add(estimate(block_text(block)), block, "system:")
    for message in body.get("messages") or []:
        content = message.get("content", "")
        for j, block in enumerate([content] if isinstance(content, str) else list(content)):
            add((MESSAGE_OVERHEAD if j == 0 else 0) + estimate(block_text(block)), block, message.get("role", "") + ":")
    return pieces


def count_request(body: dict[str, Any]) -> int:
    """Input tokens of a Messages request: what `count_tokens` answers."""
    return sum(tokens for tokens, _, _ in request_pieces(body))
