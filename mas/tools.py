"""Tool use: the rounds of a conversation in which the model calls tools and reads their results.

    @anthropic.beta_tool
    def search(query: str) -> str:
        "Search the notes; returns passages with their ids."
        ...

    researcher = ResearcherAgent(client=client, tools=[search])   # plain functions are wrapped the same way
    notes = researcher.run(research_task(topic, audience))         # every round goes through BaseAgent._call

The loop is the one the API documents: send the request with `tools`; while the reply's stop reason is
`tool_use`, run each `tool_use` block's tool and send the results back as `tool_result` blocks in the next user
turn; the reply that stops for any other reason is the answer. `BaseAgent` drives it through its one call site,
so hooks, budgets and tracing see every round (the SDK's own `client.beta.messages.tool_runner` runs the same
loop, but inside the SDK, where no hook sees the rounds: notebook 11 shows both).

Limits, each explicit: at most `max_rounds` rounds of tool calls (then `AgentReplyError`, never a silent cut);
a tool result is cut at MAX_RESULT_CHARS. A tool that raises, or a tool the model names that does not exist, is
sent back as a `tool_result` with `is_error` and the error in one line: the model reads it and may try again or
answer without it, as the API intends; the loop itself never dies of a tool's bug.
"""

from __future__ import annotations

import inspect
import json
from typing import Any, Callable, Iterable, Protocol

from anthropic.types import Message

from mas.agents import VALIDATION_ATTEMPTS, ResearcherAgent, ValidatorAgent
from mas.client import usage_of
from mas.contracts import ValidationResult
from mas.errors import AgentReplyError
from mas.prompts import CITATION, GROUNDED_RESEARCHER_PROMPT, NO_RESEARCH, is_no_research
from mas.redact import redact_text

MAX_TOOL_ROUNDS = 6  # rounds of tool calls in one run; a model still calling tools after them is an error
MAX_RESULT_CHARS = 20_000  # what one tool result may send back to the model


class Tool(Protocol):
    """What the SDK's `@anthropic.beta_tool` makes of a function: a name, the API's definition, a call."""

    name: str

    def to_dict(self) -> Any: ...

    def call(self, input: object) -> Any: ...


def as_tools(tools: Iterable[Tool | Callable[..., Any]]) -> list[Tool]:
    """Tools as the SDK defines them: a plain function becomes `anthropic.beta_tool(function)` (its name,
    its docstring as the description, its signature as the input schema); names must be distinct."""
    import anthropic

    made = [t if hasattr(t, "to_dict") and hasattr(t, "call") else anthropic.beta_tool(t) for t in tools]
    names = [t.name for t in made]
    if len(set(names)) != len(names):
        raise ValueError(f"tool names must be distinct, got {names}")
    return made


class ToolRounds:
    """The bookkeeping of one run with tools: the request to send next, and what to do with each reply.

    `request` is the next request: each tool round adds the assistant's `tool_use` turn and the user's
    `tool_result` turn to its messages. `take(message)` is True when `message` is the answer."""

    def __init__(self, agent: Any, request: dict[str, Any], tools: list[Tool], max_rounds: int = MAX_TOOL_ROUNDS):
        if max_rounds < 1:
            raise ValueError(f"max_tool_rounds must be >= 1, got {max_rounds}")
        self.agent, self.tools, self.max_rounds = agent, {t.name: t for t in tools}, max_rounds
        self.request = {**request, "tools": [t.to_dict() for t in tools]}
        self.start = len(request["messages"]) - 1  # where this run's turns begin (its task)
        self.rounds = 0

    @property
    def turns(self) -> list[dict[str, Any]]:
        """This run's turns so far: its task, then each tool round's two turns."""
        return self.request["messages"][self.start:]

    def take(self, message: Message) -> bool:
        """True when `message` is the answer; else its tools are run and the next request is ready."""
        uses = self._uses(message)
        if uses is not None:
            self._append(message, [self._result(block, _outcome(lambda: self._tool(block).call(block.input)))
                                   for block in uses])
        return uses is None

    async def atake(self, message: Message) -> bool:
        """`take` for `arun`: an async tool (`@anthropic.beta_async_tool`) is awaited, a sync one called."""
        uses = self._uses(message)
        if uses is not None:
            results = []
            for block in uses:
                try:
                    output = self._tool(block).call(block.input)
                    outcome = await output if inspect.isawaitable(output) else output
                except Exception as err:  # noqa: BLE001 - a tool's failure goes back to the model
                    outcome = err
                results.append(self._result(block, outcome))
            self._append(message, results)
        return uses is None

    def _uses(self, message: Message) -> list[Any] | None:
        """The reply's `tool_use` blocks, None when it is the answer; past the round limit, an error."""
        if message.stop_reason != "tool_use":
            return None
        uses = [block for block in message.content if block.type == "tool_use"]
        if not uses:
            raise AgentReplyError(self.agent.name, "invalid", "the reply stopped for tool_use but holds no "
                                  "tool_use block")
        if self.rounds == self.max_rounds:
            names = ", ".join(sorted({block.name for block in uses}))
            raise AgentReplyError(self.agent.name, "invalid", f"still calling tools ({names}) after {self.rounds} "
                                  f"rounds, the limit (max_tool_rounds={self.max_rounds})")
        return uses

    def _append(self, message: Message, results: list[dict[str, Any]]) -> None:
        self.rounds += 1
        self.agent.usage.add(usage_of(message))
        # a new request each round (a hook or a tracer may hold on to the last one)
        self.request = {**self.request, "messages": [
            *self.request["messages"],
            {"role": "assistant", "content": [b.to_dict(mode="json", exclude_none=True) for b in message.content]},
            {"role": "user", "content": results},
        ]}

    def _tool(self, block: Any) -> Tool:
        if block.name not in self.tools:
            raise LookupError(f"no tool named {block.name!r}; the tools are: {', '.join(self.tools) or 'none'}")
        return self.tools[block.name]

    @staticmethod
    def _result(block: Any, outcome: Any) -> dict[str, Any]:
        """The `tool_result` for one `tool_use` block: the tool's output, or its error in one line, `is_error`."""
        if isinstance(outcome, Exception):
            # the SDK's ToolError carries its own content for the model (an MCP tool's error, say)
            said = _content(outcome.content) if isinstance(getattr(outcome, "content", None), list) else None
            if not isinstance(said, list):
                said = redact_text((f"{type(outcome).__name__}: {outcome}".splitlines() or [""])[0])
            return {"type": "tool_result", "tool_use_id": block.id, "content": said, "is_error": True}
        return {"type": "tool_result", "tool_use_id": block.id, "content": _content(outcome)}


def _outcome(call: Callable[[], Any]) -> Any:
    """What a tool call gave: its output, or the exception it raised (the model is told; the run goes on)."""
    try:
        return call()
    except Exception as err:  # noqa: BLE001 - a tool's bug is the model's information, not the loop's end
        return err


def _content(output: Any) -> str | list[dict[str, Any]]:
    """A tool's output as a result's content: text, or the content blocks the tool gave (what the SDK's MCP
    helpers return), each text cut at MAX_RESULT_CHARS with a note the model can read."""
    if isinstance(output, list) and output and all(isinstance(b, dict) and "type" in b for b in output):
        return [{**b, "text": _cut(b["text"])} if b["type"] == "text" and isinstance(b.get("text"), str) else dict(b)
                for b in output]
    return _cut(output if isinstance(output, str) else json.dumps(output, ensure_ascii=False, default=str))


def _cut(text: str) -> str:
    if len(text) > MAX_RESULT_CHARS:
        text = text[:MAX_RESULT_CHARS] + f"\n[cut: {len(text) - MAX_RESULT_CHARS} more characters]"
    return text


# ---------------------------------------------------------------------------- grounded research

SUPPORTED = 0.6  # the share of a point's content words its cited passage must hold


def search_tools(index: Any, limit: int = 5) -> list[Tool]:
    """`search(query)` and `read(doc_id)` over a `mas.search.DocumentIndex`, as SDK tools. Both answer JSON
    (data, never instructions): {"query", "results": [{"id", "title", "source", "text"}]}, best first."""
    import anthropic

    @anthropic.beta_tool
    def search(query: str) -> str:
        """Search the documents for passages about a query; returns them best first, as JSON. Cite a passage
        by its id, as (source: ID).

        Args:
            query: a few words on what to find
        """
        hits = index.search(query, limit=limit)
        return json.dumps({"query": query, "results": [_passage(p) for p in hits]}, ensure_ascii=False)

    @anthropic.beta_tool
    def read(doc_id: str) -> str:
        """Read a whole document by its id (a passage id without its '#n'); returns its passages as JSON.

        Args:
            doc_id: the document's id
        """
        doc = index.read(doc_id)
        if doc is None:
            raise LookupError(f"no document {doc_id!r}; search first, and use an id it returns")
        return json.dumps({"query": doc_id, "results": [_passage(p) for p in doc.passages]}, ensure_ascii=False)

    return [search, read]


def _passage(p: Any) -> dict[str, str]:
    return {"id": p.id, "title": p.title, "source": p.source, "text": p.text}


def unsupported_points(notes: str, index: Any) -> list[tuple[str, str]]:
    """Each research point that is not grounded, with why: it cites no passage, cites one that does not
    exist, or states what its passage does not say (fewer than SUPPORTED of its words are the passage's)."""
    from mas.offline.prose import share, stems

    bad = []
    for line in notes.splitlines():
        point = line.strip()
        if not point.startswith(("- ", "* ")):
            continue
        cited = CITATION.findall(point)
        if not cited:
            bad.append((point, "it cites no passage"))
            continue
        passages = [index.passage(pid) for pid in cited]
        if missing := [pid for pid, p in zip(cited, passages) if p is None]:
            bad.append((point, f"it cites {', '.join(missing)}, which no document has"))
        elif share(CITATION.sub("", point[2:]), stems(" ".join(p.text for p in passages))) < SUPPORTED:
            bad.append((point, f"{', '.join(cited)} does not say this"))
    return bad


def miscited_claims(draft: str, index: Any) -> list[str]:
    """The validator's issues for the claims of a draft that cite passages (`(source: doc#n)`) which do not say
    them, or which no document has: checked in code against the passages themselves, not by a model."""
    from mas.offline.prose import claims, share, short, stems, text_only

    issues = []
    for sentence in claims(draft):
        cited = CITATION.findall(sentence)
        if not cited:
            continue
        passages = [index.passage(pid) for pid in cited]
        if missing := [pid for pid, p in zip(cited, passages) if p is None]:
            issues.append(f'Unknown citation: the draft cites {", ".join(missing)}, which no document has: '
                          f'"{short(sentence)}"')
        elif share(text_only(sentence), stems(" ".join(p.text for p in passages))) < SUPPORTED:
            issues.append(f'Mis-cited claim: "{short(sentence)}" cites {", ".join(cited)}, which does not say it')
    return issues


class GroundedValidatorAgent(ValidatorAgent):
    """A validator that also checks, in code, every claim of a draft that cites a passage against that passage
    (`miscited_claims`): the model's verdict and those issues together, approved only when neither has one. A
    citation is a fact about the index, so no model is trusted to check it alone."""

    def __init__(self, index: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self.index = index

    def review(self, research: str, draft: str, attempts: int = VALIDATION_ATTEMPTS) -> ValidationResult:
        verdict = super().review(research, draft, attempts)
        found = [issue for issue in miscited_claims(draft, self.index) if issue not in verdict.issues]
        if not found:
            return verdict
        return ValidationResult(issues=[*verdict.issues, *found], approved=False, confidence=verdict.confidence)


class GroundedResearcherAgent(ResearcherAgent):
    """A researcher that researches only from `index` (a `mas.search.DocumentIndex`) through its `search` and
    `read` tools, with the grounded system prompt. Its notes keep only the points whose citation resolves to a
    passage that says them (`unsupported_points`; the others are in `left_out`, and a line at the end says how
    many). With none left its notes are one "No research:" line, so no report is approved on ungrounded points."""

    def __init__(self, index: Any, *, search_limit: int = 5, **kwargs: Any):
        kwargs.setdefault("system_prompt", GROUNDED_RESEARCHER_PROMPT)
        super().__init__(tools=search_tools(index, search_limit), **kwargs)
        self.index = index
        self.left_out: list[tuple[str, str]] = []  # the last run's ungrounded points, and why each is

    def run(self, task: str) -> str:
        return self._grounded(super().run(task))

    async def arun(self, task: str) -> str:
        return self._grounded(await super().arun(task))

    def _grounded(self, notes: str) -> str:
        self.left_out = [] if is_no_research(notes) else unsupported_points(notes, self.index)
        if not self.left_out:
            return notes
        dropped = {point for point, _ in self.left_out}
        kept = [line for line in notes.splitlines() if line.strip() not in dropped]
        example = f'"{_short(self.left_out[0][0][2:])}": {self.left_out[0][1]}'
        if not any(line.strip().startswith(("- ", "* ")) for line in kept):
            return f"{NO_RESEARCH} none of the {len(dropped)} points is grounded in a passage (e.g. {example})."
        return "\n".join([*kept, "", f"_Left out {len(dropped)} point(s) not grounded in a passage, e.g. {example}._"])


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + "…"
