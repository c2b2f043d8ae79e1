"""Tracing: one `Span` per model call, for every agent, with no change to agent code.

    with Tracer() as tracer:
        orchestrator.run("How vector databases enable semantic search")
    print(tracer.summary())               # calls, tokens, cost, time of the whole run
    print(tracer.table(by="agent"))       # ... per agent; by="step" per step; no `by`: per call
    tracer.timeline()                     # a Gantt chart: text, or SVG in a notebook
    tracer.to_jsonl("data/trace.jsonl")   # one JSON object per call; Tracer.from_jsonl reads it back

The tracer is a hook of `mas.hooks`, so it sees every call of every agent, sync or async, however
many run at once: the agent (name, role), the exact request (model, messages) and the reply's
`Message` (usage, stop reason), or the error. A span's step is the label of `with step("draft_2"):`
around the call, or else the kind of task its prompt holds (`task_kind`); its cost comes from
`mas.pricing` (None when the model has no price: unknown, never a guess).

Times in charts and tables are cut to whole ticks and seconds to tenths (floored, never rounded),
so they change only when a call moves by a whole unit: notebook outputs stay the same from run
to run.

Simplified on purpose: one span per `messages.create`, so the SDK's own retries are inside
its latency, not spans of their own; spans live in memory until exported; hooks follow
context variables, so threads started inside the `with` need `contextvars.copy_context()`.
A span holds the last user message and the reply (cut to `text_limit` characters), never
request headers, so never the API key.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Iterator, Mapping

from mas.client import last_user_text, text_of, usage_of
from mas.contracts import TOKEN_FIELDS
from mas.errors import kind_of
from mas.hooks import counting, install, installed, uninstall
from mas.pricing import Price, dollars, uncached_cost
from mas.pricing import cost as price_cost
from mas.redact import redact_text

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
    >>> from mas.contracts import ValidationResult
    >>> [task_kind(t) for t in (research_task("t", "a"), write_task("t", "a", "r"),
    ...  validate_task("r", "d"), revise_task("t", "a", "r", "d", ["x"]), reask_task("bad JSON", ValidationResult),
    ...  "Hi")]
    ['research', 'write', 'validate', 'revise', 're-ask', None]
    """
    kinds = (("<issues>", "revise"), ("<draft>", "validate"), ("<research>", "write"), ("<topic>", "research"))
    for tag, kind in kinds:
        if tag in task:
            return kind
    return "re-ask" if task.startswith("Your answer could not be used") else None


def _sends_tool_results(request: dict) -> bool:
    """A round of a tool loop (mas.tools): the last user turn holds the results of the model's tool calls."""
    messages = request.get("messages") or [{}]
    content = messages[-1].get("content") if isinstance(messages[-1], dict) else None
    return isinstance(content, list) and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in content)


def error_kind(err: BaseException) -> str:
    """A failed call's kind (`mas.errors.kind_of`), or the exception's class name (a budget's refusal, a bug)."""
    return kind_of(err) or type(err).__name__


class Tracer:
    """Records a `Span` per model call made inside `with tracer:`; `prices` overrides `mas.pricing`."""

    def __init__(self, prices: Mapping[str, Price] | None = None, *, text_limit: int | None = TEXT_LIMIT):
        self.prices: dict[str, Price] = dict(prices or {})
        self.text_limit = text_limit
        self._spans: list[Span] = []
        self._lock = threading.Lock()
        self._count = itertools.count(1)
        self._t0: float | None = None  # when tracing started: span starts count from here

    def __enter__(self) -> Tracer:
        if self.hook in installed():
            raise RuntimeError("this tracer is already active; use one `with tracer:` at a time")
        if self._t0 is None:
            self._t0 = time.perf_counter()  # from the first `with`: a second one adds to the same timeline
        install(self.hook)
        return self

    def __exit__(self, *exc: Any) -> None:
        uninstall(self.hook)

    def hook(self, agent: Any, request: dict) -> Any:
        """The `mas.hooks` hook: a span per model call; none for a `count_tokens` request (it generates nothing)."""
        if counting(request):
            return None
        prompt = last_user_text(request)
        label = _step.get() or ("tool results" if _sends_tool_results(request) else task_kind(prompt))
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
                error_message=(_cut(redact_text((str(error).splitlines() or [""])[0]), 300)
                               if error is not None else ""),
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
            self._spans = [replace(s, cost=price_cost(s.model, s, self.prices)) for s in self._spans]
        return self

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
        """A text table: a row per call, or per agent / step / model / role (`by=`); `times=False` drops the times."""
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

    def timeline(self, tick: float | None = None, width: int = 60) -> Timeline:
        """A Gantt chart of the calls: text when printed, SVG in a notebook. `tick` is the seconds
        one character (one step of the SVG) stands for; by default the run fits in `width` characters."""
        return Timeline(self.spans, tick=tick, width=width)

    def to_jsonl(self, path: str | Path) -> Path:
        """Write one JSON object per span (JSON Lines); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in self.to_rows()), encoding="utf-8")
        return path

    @classmethod
    def from_jsonl(cls, path: str | Path, prices: Mapping[str, Price] | None = None) -> Tracer:
        """A tracer holding the spans of a JSON Lines export, for summaries and charts."""
        tracer = cls(prices)
        tracer._spans = load_jsonl(path)
        tracer._count = itertools.count(max((s.index for s in tracer._spans), default=0) + 1)
        return tracer


def load_jsonl(path: str | Path) -> list[Span]:
    """The spans of a file written by `Tracer.to_jsonl`; a line that is not one (bad JSON, nested too
    deep, an unknown field, a field of the wrong type) is a `ValueError` naming the file and the line."""
    names = {f.name for f in fields(Span)}
    spans = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("not a JSON object")
            if unknown := set(row) - names:
                raise ValueError(f"unknown fields {sorted(unknown)}")
            if wrong := [name for name, value in row.items() if not isinstance(value, _SPAN_TYPES[name])]:
                raise ValueError(f"wrong type for {', '.join(wrong)}")
            spans.append(Span(**row))
        except (ValueError, TypeError, RecursionError) as err:
            raise ValueError(f"{path}, line {n}: not a span ({err})") from None
    return spans


# what each field of a span may hold in a trace file (views format them as numbers or escape them as text)
_NUMBER, _TEXT = (int, float), (str, type(None))
_SPAN_TYPES = {"index": int, "agent": str, "role": str, "model": str, "step": _TEXT, "start": _NUMBER,
               "latency": _NUMBER, "input_tokens": int, "output_tokens": int, "cache_creation_input_tokens": int,
               "cache_read_input_tokens": int, "stop_reason": _TEXT, "cost": (*_NUMBER, type(None)), "error": _TEXT,
               "error_message": str, "prompt": str, "reply": str}


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
    # the same with each call cut to tenths first, as its row shows it: what tables and summaries print, so a
    # total is the sum of the rows above it and a few milliseconds of overhead a call do not add up to a tenth
    model_time_shown: float = 0.0
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
        s.model_time_shown = round(sum(float(stopwatch(x.latency)) for x in spans), 1)
        s.wall_time = max((x.end for x in spans), default=0.0) - min((x.start for x in spans), default=0.0)
        return s

    def row(self) -> dict[str, Any]:
        return {"calls": self.calls, "errors": self.errors, "in": self.input_tokens, "out": self.output_tokens,
                "cache write": self.cache_creation_input_tokens, "cache read": self.cache_read_input_tokens,
                "cost": dollars(self.cost), "time (s)": stopwatch(self.model_time_shown)}

    def __str__(self) -> str:
        return self.describe()

    def describe(self, *, times: bool = True) -> str:
        """The summary as a few lines of text; `times=False` leaves out the time line."""
        if self.cost is not None:
            money = dollars(self.cost)
            if self.cache_creation_input_tokens or self.cache_read_input_tokens:
                money += f" (without prompt caching: {dollars(self.uncached_cost)})"
        else:
            priced = "" if self.priced_cost == 0 else f"; the priced calls cost {dollars(self.priced_cost)}"
            money = (f"unknown (no price for {', '.join(self.unpriced)}{priced}; "
                     "add one with mas.pricing.set_price)")
        lines = [f"calls: {self.calls} ({self.errors} failed)",
                 f"tokens: {self.input_tokens:,} in, {self.output_tokens:,} out, "
                 f"{self.cache_creation_input_tokens:,} cache write, {self.cache_read_input_tokens:,} cache read",
                 f"cost: {money}"]
        if times:
            lines.append(f"time: {stopwatch(self.model_time_shown)} s in calls, "
                         f"{stopwatch(self.wall_time)} s from first call to last")
        return "\n".join(lines)


def _cut(text: str, limit: int | None) -> str:
    if limit is None or len(text) <= limit:
        return text
    return text[:limit] + f"…[+{len(text) - limit} chars]"


# ---------------------------------------------------------------------------- drawing: the chart and the tables

# The text chart's cells are ASCII on purpose: a block character (U+2588) is missing from some code fonts, and the
# glyph a browser falls back to is wider than one column, so in JupyterLab the bars drifted off the axis.
CALL_CELL, FAILED_CELL = "#", "x"


class Timeline:
    """A Gantt chart of spans, its times cut to whole ticks. `str()` is text; `_repr_html_` is SVG
    for notebooks (a few hand-written elements, no plotting library)."""

    LABEL_PX, ROW_PX, CHART_PX = 230, 22, 480  # the bars' area is about CHART_PX wide
    COLOURS = ("#4C78A8", "#F58518", "#54A24B", "#B279A2", "#72B7B2", "#EECA3B", "#9D755D")
    FAILED = "#D62728"

    def __init__(self, spans: list[Span], tick: float | None = None, width: int = 60):
        if tick is not None and tick <= 0:
            raise ValueError(f"tick must be > 0 seconds, got {tick}")
        self.spans = spans
        self.origin = min((s.start for s in spans), default=0.0)
        total = max((s.end for s in spans), default=0.0) - self.origin
        self.tick = tick or nice_tick(total / max(1, width))
        # the axis: whole tens of ticks, enough for the last bar
        self.ticks = -(-max((self.cells(s)[1] for s in spans), default=1) // 10) * 10

    def cells(self, span: Span) -> tuple[int, int]:
        """(first, last + 1) tick cells of a span's bar; at least one cell."""
        a = math.floor((span.start - self.origin) / self.tick + 1e-9)
        b = math.floor((span.end - self.origin) / self.tick + 1e-9)
        return a, max(a + 1, b)

    def __str__(self) -> str:
        if not self.spans:
            return "(no calls traced)"
        rows = [(str(s.index), s.agent, s.step or "-") for s in self.spans]
        w = [max(len(r[i]) for r in [("#", "agent", "step"), *rows]) for i in range(3)]
        axis = "".join(f"{_secs(i * self.tick):<10}" for i in range(0, self.ticks + 1, 10)).rstrip()
        lines = [f"{'#':>{w[0]}}  {'agent':<{w[1]}}  {'step':<{w[2]}}  {axis}"]
        for (index, agent, label), s in zip(rows, self.spans):
            a, b = self.cells(s)
            bar = " " * a + (FAILED_CELL if s.error else CALL_CELL) * (b - a) + (f" {s.error}" if s.error else "")
            lines.append(f"{index:>{w[0]}}  {agent:<{w[1]}}  {label:<{w[2]}}  {bar}")
        failed = f"; {FAILED_CELL} = failed call" if any(s.error for s in self.spans) else ""
        return "\n".join([*lines, f"one character = {_secs(self.tick)}{failed}"])

    __repr__ = __str__

    def _repr_html_(self) -> str:
        import html  # only notebooks draw SVG: keep `import mas` light

        if not self.spans:
            return "<p>(no calls traced)</p>"
        cell = max(2, min(48, self.CHART_PX // self.ticks))  # whole pixels per tick: a stable picture
        width, height = self.LABEL_PX + self.ticks * cell + 40, (len(self.spans) + 1) * self.ROW_PX + 10
        agents = dict.fromkeys(s.agent for s in self.spans)
        colour = {a: self.COLOURS[i % len(self.COLOURS)] for i, a in enumerate(agents)}
        out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
               'font-family="sans-serif" font-size="12">']
        for i in range(0, self.ticks + 1, 10):
            x = self.LABEL_PX + i * cell
            out.append(f'<line x1="{x}" y1="14" x2="{x}" y2="{height}" stroke="#ddd"/>'
                       f'<text x="{x}" y="12" fill="#555">{_secs(i * self.tick)}</text>')
        for row, s in enumerate(self.spans, 1):
            (a, b), y = self.cells(s), row * self.ROW_PX
            tip = (f"{s.agent} · {s.step or '-'} · {s.model} · {s.input_tokens:,} in / {s.output_tokens:,} out"
                   f" · {dollars(s.cost)}" + (f" · failed: {s.error}" if s.error else ""))
            label = html.escape(f"{s.index}. {s.agent} · {s.step or '-'}")
            out.append(f'<text x="4" y="{y + 15}">{label}</text>'
                       f'<rect x="{self.LABEL_PX + a * cell}" y="{y + 3}" width="{(b - a) * cell}" '
                       f'height="{self.ROW_PX - 6}" rx="3" fill="{self.FAILED if s.error else colour[s.agent]}">'
                       f'<title>{html.escape(tip)}</title></rect>')
        return "".join([*out, "</svg>"])


def format_table(rows: list[dict[str, Any]]) -> str:
    """Rows of dicts as aligned plain text: numbers right-aligned, text left-aligned.

    >>> print(format_table([{"agent": "Writer", "calls": 2}, {"agent": "Validator", "calls": 10}]))
    agent      calls
    Writer         2
    Validator     10
    """
    if not rows:
        return "(no rows)"
    cols = list(dict.fromkeys(k for r in rows for k in r))
    cells = [[_cell(r.get(c, "")) for c in cols] for r in rows]
    columns = list(zip(*cells))
    # a column of numbers (and placeholders such as "unknown") is right-aligned
    right = [all(_numeric(v) or v in ("unknown", "-", "") for v in col) and any(map(_numeric, col)) for col in columns]
    w = [max(len(name), *map(len, col)) for name, col in zip(cols, columns)]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w[i]) if right[i] else v.ljust(w[i]) for i, v in enumerate(values)).rstrip()

    return "\n".join([line(cols), *(line(row) for row in cells)])


def nice_tick(seconds: float) -> float:
    """The smallest of 1, 2, 5 x 10^k that is at least `seconds` (a readable chart unit).

    >>> nice_tick(0.03), nice_tick(0.2), nice_tick(7)
    (0.05, 0.2, 10.0)
    """
    if seconds <= 0:
        return 0.1
    exp = math.floor(math.log10(seconds))
    steps = [round(base * 10.0 ** exp, 12) for base in (1, 2, 5, 10)]
    return next((step for step in steps if step >= seconds * (1 - 1e-9)), steps[-1])


def _cell(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _numeric(text: str) -> bool:
    return text.lstrip("$").replace(",", "").replace(".", "", 1).isdigit()


def stopwatch(seconds: float) -> str:
    """Seconds cut (not rounded) to tenths, as a stopwatch shows them, and as the timeline cuts to ticks.

    >>> stopwatch(0.2), stopwatch(0.2999), stopwatch(1.04)
    ('0.2', '0.2', '1.0')
    """
    return f"{math.floor(seconds * 10 + 1e-9) / 10:.1f}"


def _secs(seconds: float) -> str:
    return f"{round(seconds, 6):g}s"
