"""How the offline model uses tools: which one to call, with what input, and what to make of the results.

It reads what Claude reads: each tool's name, description and input schema, and the task. A tool is called
when its name is asked for ("use get_weather"), or when the task needs what the tool says it does: research
(a task with a `<topic>`) needs a tool that searches. The query is the task's topic. What comes back is read:
search results (`{"results": [{"id", "text", ...}]}`, what `mas.tools.search_tools` returns) become research
notes whose every point cites the passage it came from, `(source: ID)`; no results get one more, shorter
query, then an honest "No research:" line; a result with `is_error` is said, never papered over. Each step
is a pure function of the request, so the same conversation gets the same bytes.
"""

from __future__ import annotations

import json
import re
from typing import Any

from mas.offline import knowledge, prose, structured, wire
from mas.offline.instructions import read
from mas.prompts import NO_RESEARCH

SEARCH_WORDS = {"search", "find", "lookup", "look", "query", "retrieve", "retrieves", "searches", "finds"}
QUERY_FIELDS = ("query", "q", "search", "text", "term", "terms", "topic", "question")
MAX_ROUNDS = 2  # searches before the researcher answers from what it has (the agent's own limit is mas.tools')
DEFAULT_POINTS = 6  # research points from search results, unless the prompt asks for a number


def step(body: dict, system: str, task: str, role: str | None) -> tuple[list[dict], str] | None:
    """The reply to a request that offers tools: a `tool_use` turn, an answer from tool results, or None
    (answer as if there were no tools)."""
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and "input_schema" in t]
    if not tools:
        return None
    calls, results = _rounds(body["messages"])
    if not calls:
        tool = _chosen(tools, body.get("tool_choice") or {"type": "auto"}, system, task, role)
        return None if tool is None else _call(body, tool, task, _query(task, 0))
    last = results[-1] if results else {"tool": calls[-1]["tool"], "text": "", "error": False, "passages": []}
    found = last["passages"]
    if role == "researcher":
        if last["error"]:
            return _text(f"{NO_RESEARCH} the {last['tool']} tool failed: {last['text'][:300]}")
        if not found and len(calls) < MAX_ROUNDS and (tool := _by_name(tools, last["tool"])) is not None:
            shorter = _query(task, len(calls))
            if shorter not in (c["query"] for c in calls):
                return _call(body, tool, task, shorter)
        passages = [p for r in results for p in r["passages"] if _relevant(p, calls)]
        if not passages:
            tried = "; ".join(f'"{c["query"]}"' for c in calls)
            return _text(f'{NO_RESEARCH} the search found nothing on "{_topic(task)}" (queries tried: {tried}).')
        return _text(_notes(task, system, passages, calls))
    if last["error"]:
        return _text(f"The tool {last['tool']} failed: {last['text'][:300]}. I cannot answer from it.")
    return _text(f"Based on the tool result: {last['text'].strip()[:2000]}")


# ---------------------------------------------------------------------------- choosing and calling

def _chosen(tools: list[dict], choice: dict, system: str, task: str, role: str | None) -> dict | None:
    if choice.get("type") == "none":
        return None
    if choice.get("type") == "tool":
        return _by_name(tools, choice.get("name"))
    asked = set(re.findall(r"[a-z0-9]+", (task + " " + system).lower().replace("_", " ")))
    named = [t for t in tools if set(t["name"].lower().replace("-", "_").split("_")) <= asked]
    if named:
        return named[0]
    if role == "researcher" or asked & {"search", "look", "find"}:
        searching = [t for t in tools if SEARCH_WORDS & _words(t)]
        if searching:
            return searching[0]
    return tools[0] if choice.get("type") == "any" else None


def _words(tool: dict) -> set[str]:
    return set(re.findall(r"[a-z]+", f"{tool['name'].replace('_', ' ')} {tool.get('description', '')}".lower()))


def _by_name(tools: list[dict], name: Any) -> dict | None:
    return next((t for t in tools if t["name"] == name), None)


def _call(body: dict, tool: dict, task: str, query: str) -> tuple[list[dict], str]:
    schema = tool.get("input_schema") or {}
    props = schema.get("properties") or {}
    field = next((f for f in QUERY_FIELDS if props.get(f, {}).get("type") == "string"),
                 next((f for f in schema.get("required", []) if props.get(f, {}).get("type") == "string"), None))
    given = {field: query} if field else None
    tool_input = structured.fill(schema, [query], topic=query, given=given) if props else {}
    block = {"type": "tool_use", "id": "toolu_" + wire.digest([body["messages"], tool["name"], tool_input]),
             "name": tool["name"], "input": tool_input}
    return [block], "tool_use"


def _topic(task: str) -> str:
    from mas.offline.roles import topic_of

    return topic_of(task)


def _query(task: str, attempt: int) -> str:
    """The first query is the topic as given; the next, its note's shortest alias or its main words."""
    topic = _topic(task).partition(": ")[0] if attempt else _topic(task)
    if attempt == 0:
        return topic
    match = knowledge.find(topic)
    if match is not None:
        return min(match.note.aliases, key=len)
    content = [w for w in knowledge.words(topic) if len(w) > 3]
    return " ".join(content[:3]) or topic


# ---------------------------------------------------------------------------- reading results

def _rounds(messages: list[dict]) -> tuple[list[dict], list[dict]]:
    """The tool calls of this task (after its last plain user turn) and, for each round, what came back."""
    calls: list[dict] = []
    results: list[dict] = []
    names: dict[str, str] = {}
    for message in messages:
        content = message.get("content")
        answering = isinstance(content, list) and any(isinstance(b, dict) and b.get("type") == "tool_result"
                                                      for b in content)
        if message.get("role") == "user" and not answering:
            calls, results, names = [], [], {}  # a new task: earlier rounds were for another one
        if not isinstance(content, list):
            continue
        for block in content:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "tool_use":
                names[block.get("id", "")] = block.get("name", "")
                value = block.get("input") if isinstance(block.get("input"), dict) else {}
                calls.append({"tool": block.get("name", ""), "query": next(
                    (str(value[f]) for f in QUERY_FIELDS if isinstance(value.get(f), str)), "")})
            elif block.get("type") == "tool_result":
                text = wire.content_text(block.get("content", ""))
                results.append({"tool": names.get(block.get("tool_use_id", ""), "tool"), "text": text,
                                "error": bool(block.get("is_error")),
                                "passages": [] if block.get("is_error") else _passages(text)})
    return calls, results


def _passages(text: str) -> list[dict]:
    """Search results in the shape `mas.tools` sends: {"results": [{"id", "text", "title"?, "source"?}]}."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return []
    items = data.get("results") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return []
    return [item for item in items if isinstance(item, dict) and isinstance(item.get("id"), str)
            and isinstance(item.get("text"), str) and item["text"].strip()]


def _relevant(passage: dict, calls: list[dict]) -> bool:
    """A passage is on the topic when it (title and text) holds at least two of a query's content words, or all
    of a shorter query's: a search engine ranks what matches any word, and a researcher reads before citing."""
    said = {prose.stem(w) for w in prose.words(f"{passage.get('title', '')} {passage['text']}")}
    for call in calls:
        asked = {prose.stem(w) for w in prose.content(call["query"])}
        if asked and len(asked & said) >= min(2, len(asked)):
            return True
    return False


def _notes(task: str, system: str, passages: list[dict], calls: list[dict]) -> str:
    """Research notes from search results: one point a passage, in rank order, each citing its passage."""
    ins = read(system, task)
    count = ins.count("item") or ins.count("sentence")
    unique = [p for p in {p["id"]: p for p in passages}.values() if _sentence(p["text"])]
    n = count.limit(len(unique)) if count else min(DEFAULT_POINTS, len(unique))
    points = [f"- {_sentence(p['text'])} (source: {p['id']})" for p in unique[:n]]
    queries = "; ".join(f'"{c["query"]}"' for c in calls)
    return "\n".join([f"## Research: {_topic(task)}", "", *points, "",
                      f"_Offline model: from {len(unique)} search result(s) for {queries}._"])


def _sentence(text: str) -> str:
    """A passage as one point: its text on one line, without the headings a document's passage may carry
    and without a source note of its own (the citation says where it comes from)."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    return prose.SOURCE.sub("", " ".join(" ".join(lines).split())).strip()


def _text(text: str) -> tuple[list[dict], str]:
    return [{"type": "text", "text": text}], "end_turn"
