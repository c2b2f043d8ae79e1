"""Tracing: one `Span` per model call, for every agent, with no change to agent code.

    with Tracer() as tracer:
        orchestrator.run("How vector databases enable semantic search")
    print(tracer.summary())               # calls, tokens, cost, time of the whole run
    print(tracer.table(by="agent"))       # ... per agent; by="step" per step; no `by`: per call
    tracer.timeline()                     # a Gantt chart: text, or SVG in a notebook
    tracer.to_jsonl("data/trace.jsonl")   # one JSON object per call; Tracer.from_jsonl reads it back

The tracer is a hook of `mas.hooks`: `BaseAgent.run` and `arun`, the one place agents call the
model, run it before each call and its `after` with the reply (or the error). So it sees the
agent (its name and role), the exact request (model, messages) and the `Message` (usage, stop
reason): everything a span needs, for every agent, sync or async, however many run at once.

A span's step is the label set with `with step("draft_2"):` around the call, or else the kind
of task the prompt holds (research, write, validate, revise, re-ask: `task_kind`). Its cost
comes from `mas.pricing` (None when the model has no price: unknown, never a guess). The
tables and the Gantt chart are drawn by `mas.timeline`.

Simplified on purpose: one span per `messages.create`, so the SDK's own retries are inside
its latency, not spans of their own; spans live in memory until exported; hooks follow
context variables, so threads started inside the `with` need `contextvars.copy_context()`.
A span holds the last user message and the reply (cut to `text_limit` characters), never
request headers, so never the API key.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Iterator, Mapping

from mas.client import last_user_text, text_of, usage_of
from mas.hooks import call_hook
from mas.pricing import Price, uncached_cost
from mas.pricing import cost as price_cost
# the chart and the tables are drawn in mas.timeline; these names stay importable from here too
from mas.timeline import Timeline, dollars, format_table, nice_tick, stopwatch  # noqa: F401

TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
TEXT_LIMIT = 2000  # characters of prompt and reply kept per span (None keeps all)
_step: ContextVar[str | None] = ContextVar("mas_trace_step", default=None)


@dataclass(frozen=True)
class Span:
    """One model call."""

    index: int  # 1, 2, ... in the order the calls started
    agent: str  # the agent's name ("Writer")
    role: str  # its role ("writer")
    model: str  # the model the request asked for
    step: str | None  # the step label, or the kind of task (see task_kind)
    start: float  # seconds from the tracer's start to the call's start
    latency: float  # seconds the call took, the SDK's retries included
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    stop_reason: str | None = None
    cost: float | None = None  # dollars; None when the model has no known price
    error: str | None = None  # the error's kind when the call failed ("overloaded_error", "timeout", ...)
    error_message: str = ""
    prompt: str = ""  # the request's last user message
    reply: str = ""  # the reply's text

    @property
    def end(self) -> float:
        return self.start + self.latency


@contextmanager
def step(label: str) -> Iterator[str]:
    """Label the calls made inside the `with` (in this context and the tasks it starts)."""
    token = _step.set(label)
    try:
        yield label
    finally:
        _step.reset(token)


def task_kind(task: str) -> str | None:
    """The kind of task a prompt from `mas.prompts` is, by its XML tags; None for other prompts.

    >>> from mas.prompts import research_task, write_task, revise_task, validate_task, reask_task
    >>> [task_kind(t) for t in (research_task("t", "a"), write_task("t", "a", "r"),
    ...  validate_task("r", "d"), revise_task("t", "a", "r", "d", ["x"]), reask_task("bad JSON"), "Hi")]
    ['research', 'write', 'validate', 'revise', 're-ask', None]
    """
    kinds = (("<issues>", "revise"), ("<draft>", "validate"), ("<research>", "write"), ("<topic>", "research"))
    for tag, kind in kinds:
        if tag in task:
            return kind
    return "re-ask" if task.startswith("Your answer could not be used") else None


def error_kind(err: BaseException) -> str:
    """The API's error type ("overloaded_error", "rate_limit_error", ...), "timeout",
    "connection_error", or the exception's class name."""
    import anthropic

    if isinstance(err, anthropic.APIStatusError):
        body = err.body if isinstance(err.body, dict) else {}
        detail = body.get("error") if isinstance(body.get("error"), dict) else {}
        return detail.get("type") or f"http_{err.status_code}"
    if isinstance(err, anthropic.APITimeoutError):
        return "timeout"
    if isinstance(err, anthropic.APIConnectionError):
        return "connection_error"
    return type(err).__name__


class Tracer:
    """Records a `Span` per model call made inside `with tracer:`; `prices` overrides `mas.pricing`."""

    def __init__(self, prices: Mapping[str, Price] | None = None, *, text_limit: int | None = TEXT_LIMIT):
        self.prices: dict[str, Price] = dict(prices or {})
        self.text_limit = text_limit
        self._spans: list[Span] = []
        self._lock = threading.Lock()
        self._count = itertools.count(1)
        self._t0: float | None = None  # when tracing started: span starts count from here
        self._active: Any = None  # the call_hook context while inside `with`

    # ------------------------------------------------------------------ recording

    def __enter__(self) -> Tracer:
        if self._active is not None:
            raise RuntimeError("this tracer is already active; use one `with tracer:` at a time")
        if self._t0 is None:
            self._t0 = time.perf_counter()  # from the first `with`: a second one adds to the same timeline
        self._active = call_hook(self.hook)
        self._active.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        active, self._active = self._active, None
        if active is not None:
            active.__exit__(*exc)

    def hook(self, agent: Any, request: dict) -> Any:
        """The `mas.hooks` hook: called before a call, returns what to run after it."""
        prompt = last_user_text(request)
        label = _step.get() or task_kind(prompt)
        with self._lock:
            index = next(self._count)
        start = time.perf_counter()
        if self._t0 is None:  # used as a plain hook, `call_hook(tracer.hook)`, without `with tracer:`
            self._t0 = start

        def after(message: Any, error: BaseException | None) -> None:
            latency = time.perf_counter() - start
            model = str(request.get("model", ""))
            tokens = usage_of(message) if message is not None else dict.fromkeys(TOKEN_FIELDS, 0)
            span = Span(
                index=index, agent=str(getattr(agent, "name", type(agent).__name__)),
                role=str(getattr(agent, "role", "")), model=model, step=label, start=start - self._t0,
                latency=latency, **tokens, stop_reason=getattr(message, "stop_reason", None),
                cost=price_cost(model, tokens, self.prices),
                error=error_kind(error) if error is not None else None,
                error_message=_cut((str(error).splitlines() or [""])[0], 300) if error is not None else "",
                prompt=_cut(prompt, self.text_limit),
                reply=_cut(text_of(message), self.text_limit) if message is not None else "")
            with self._lock:
                self._spans.append(span)

        return after

    @property
    def spans(self) -> list[Span]:
        """The spans so far, in the order their calls started."""
        with self._lock:
            return sorted(self._spans, key=lambda s: s.index)

    def __len__(self) -> int:
        return len(self._spans)

    def __repr__(self) -> str:
        return f"Tracer({len(self)} calls)"

    def reprice(self, prices: Mapping[str, Price] | None = None) -> Tracer:
        """Recompute every span's cost from its tokens, with `prices` added to this tracer's overrides."""
        self.prices.update(prices or {})
        with self._lock:
            self._spans = [replace(s, cost=price_cost(s.model, _tokens(s), self.prices)) for s in self._spans]
        return self

    # ------------------------------------------------------------------ summaries

    def summary(self) -> Summary:
        """Calls, tokens, cost and time of everything traced."""
        return Summary.of(self.spans, self.prices)

    def by(self, key: str = "agent") -> dict[str, Summary]:
        """A `Summary` per agent (`key="agent"`), per step, per model or per role, in order of first call."""
        if key not in ("agent", "step", "model", "role"):
            raise ValueError(f"group by agent, step, model or role, not {key!r}")
        groups: dict[str, list[Span]] = {}
        for s in self.spans:
            groups.setdefault(getattr(s, key) or "-", []).append(s)
        return {name: Summary.of(spans, self.prices) for name, spans in groups.items()}

    def to_rows(self) -> list[dict[str, Any]]:
        """One plain dict per call (every field of its span)."""
        return [asdict(s) for s in self.spans]

    def table(self, by: str | None = None, *, times: bool = True) -> str:
        """A plain-text table: one row per call, or per agent / step / model / role with `by=`;
        `times=False` leaves out the time column."""
        if by is None:
            rows = [{"#": s.index, "agent": s.agent, "step": s.step or "-", "model": s.model,
                     "in": s.input_tokens, "out": s.output_tokens, "cache write": s.cache_creation_input_tokens,
                     "cache read": s.cache_read_input_tokens, "stop": s.stop_reason or "-",
                     "cost": dollars(s.cost), "time (s)": stopwatch(s.latency), "error": s.error or ""}
                    for s in self.spans]
            if not any(r["error"] for r in rows):
                rows = [{k: v for k, v in r.items() if k != "error"} for r in rows]
        else:
            rows = [{by: name, **g.row()} for name, g in self.by(by).items()]
            rows.append({by: "total", **self.summary().row()})
        if not times:
            rows = [{k: v for k, v in r.items() if k != "time (s)"} for r in rows]
        return format_table(rows)

    # ------------------------------------------------------------------ timeline and export

    def timeline(self, tick: float | None = None, width: int = 60) -> Timeline:
        """A Gantt chart of the calls: text when printed, SVG in a notebook. `tick` is the seconds
        one character (one step of the SVG) stands for; by default the run fits in `width` characters."""
        return Timeline(self.spans, tick=tick, width=width)

    def to_jsonl(self, path: str | Path) -> Path:
        """Write one JSON object per span (JSON Lines); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as f:
            for row in self.to_rows():
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        return path

    @classmethod
    def from_jsonl(cls, path: str | Path, prices: Mapping[str, Price] | None = None) -> Tracer:
        """A tracer holding the spans of a JSON Lines export, for summaries and charts."""
        tracer = cls(prices)
        tracer._spans = load_jsonl(path)
        tracer._count = itertools.count(max((s.index for s in tracer._spans), default=0) + 1)
        return tracer


def load_jsonl(path: str | Path) -> list[Span]:
    """The spans of a file written by `Tracer.to_jsonl`."""
    names = {f.name for f in fields(Span)}
    spans = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            unknown = set(row) - names
            if unknown:
                raise ValueError(f"unknown fields {sorted(unknown)}")
            spans.append(Span(**row))
        except (ValueError, TypeError) as err:
            raise ValueError(f"{path}, line {n}: not a span ({err})") from None
    return spans


@dataclass
class Summary:
    """Totals over some spans."""

    calls: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost: float | None = 0.0  # None when any call's model has no price
    priced_cost: float = 0.0  # the cost of the calls that do have a price
    unpriced: tuple[str, ...] = ()  # the models with no price
    uncached_cost: float | None = 0.0  # what the same tokens would cost with no prompt caching
    model_time: float = 0.0  # seconds spent in calls, added up
    wall_time: float = 0.0  # first call's start to last call's end

    @classmethod
    def of(cls, spans: list[Span], prices: Mapping[str, Price] | None = None) -> Summary:
        s = cls(calls=len(spans), errors=sum(1 for x in spans if x.error))
        for name in TOKEN_FIELDS:
            setattr(s, name, sum(getattr(x, name) for x in spans))
        s.priced_cost = sum(x.cost for x in spans if x.cost is not None)
        s.unpriced = tuple(sorted({x.model for x in spans if x.cost is None}))
        s.cost = None if s.unpriced else s.priced_cost
        uncached = [uncached_cost(x.model, x, prices) for x in spans]
        s.uncached_cost = None if None in uncached else sum(uncached)
        s.model_time = sum(x.latency for x in spans)
        s.wall_time = max((x.end for x in spans), default=0.0) - min((x.start for x in spans), default=0.0)
        return s

    def row(self) -> dict[str, Any]:
        return {"calls": self.calls, "errors": self.errors, "in": self.input_tokens, "out": self.output_tokens,
                "cache write": self.cache_creation_input_tokens, "cache read": self.cache_read_input_tokens,
                "cost": dollars(self.cost), "time (s)": stopwatch(self.model_time)}

    def __str__(self) -> str:
        return self.describe()

    def describe(self, *, times: bool = True) -> str:
        """The summary as a few lines of text; `times=False` leaves out the time line."""
        if self.cost is not None:
            money = dollars(self.cost)
            if self.cache_creation_input_tokens or self.cache_read_input_tokens:
                money += f" (without prompt caching: {dollars(self.uncached_cost)})"
        else:
            unpriced_calls = "" if self.priced_cost == 0 else f"; the priced calls cost {dollars(self.priced_cost)}"
            money = (f"unknown (no price for {', '.join(self.unpriced)}{unpriced_calls}; "
                     "add one with mas.pricing.set_price)")
        lines = [f"calls: {self.calls} ({self.errors} failed)",
                 f"tokens: {self.input_tokens:,} in, {self.output_tokens:,} out, "
                 f"{self.cache_creation_input_tokens:,} cache write, {self.cache_read_input_tokens:,} cache read",
                 f"cost: {money}"]
        if times:
            lines.append(f"time: {stopwatch(self.model_time)} s in calls, "
                         f"{stopwatch(self.wall_time)} s from first call to last")
        return "\n".join(lines)


# ---------------------------------------------------------------------- helpers

def _cut(text: str, limit: int | None) -> str:
    if limit is None or len(text) <= limit:
        return text
    return text[:limit] + f"…[+{len(text) - limit} chars]"


def _tokens(span: Span) -> dict[str, int]:
    return {name: getattr(span, name) for name in TOKEN_FIELDS}
