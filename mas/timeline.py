"""Charts and tables of traced calls, as plain text (and SVG in a notebook).

    print(Timeline(tracer.spans))          # a Gantt chart: one bar per call, on a shared time axis
    print(format_table(rows))              # rows of dicts as aligned columns

`mas.tracing` records the spans and adds them up; this module only draws them. It is separate
because drawing is its own idea (ticks, cells, alignment, colours) that recording never needs,
and `mas.widgets` draws its own tables and charts with it. `mas.tracing` re-exports all of it.

Simplified on purpose: times are cut to whole ticks and seconds to tenths (floored, never
rounded), so a chart or a table changes only when a call moves by a whole unit: notebook
outputs stay the same from run to run. The SVG is a few hand-written elements, no plotting library.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only for annotations: mas.tracing imports this module
    from mas.tracing import Span


class Timeline:
    """A Gantt chart of spans. `str()` is text; `_repr_html_` is SVG for notebooks.

    Times are cut to whole ticks (floored), so a chart changes only when a call moves by a tick.
    """

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
            bar = " " * a + ("▒" if s.error else "█") * (b - a) + (f" {s.error}" if s.error else "")
            lines.append(f"{index:>{w[0]}}  {agent:<{w[1]}}  {label:<{w[2]}}  {bar}")
        failed = "; ▒ = failed call" if any(s.error for s in self.spans) else ""
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



# ---------------------------------------------------------------------- helpers

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
    for base in (1, 2, 5, 10):
        step = round(base * 10.0 ** exp, 12)
        if step >= seconds * (1 - 1e-9):
            return step
    return round(10.0 ** (exp + 1), 12)


def _cell(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _numeric(text: str) -> bool:
    return text.lstrip("$").replace(",", "").replace(".", "", 1).isdigit()


def dollars(value: float | None) -> str:
    """Dollars to four decimals (a call costs fractions of a cent); "unknown" when there is no price.

    >>> dollars(0.00123), dollars(None)
    ('$0.0012', 'unknown')
    """
    return "unknown" if value is None else f"${value:.4f}"


def stopwatch(seconds: float) -> str:
    """Seconds cut (not rounded) to tenths, as a stopwatch shows them, and as the timeline cuts to ticks.

    >>> stopwatch(0.2), stopwatch(0.2999), stopwatch(1.04)
    ('0.2', '0.2', '1.0')
    """
    return f"{math.floor(seconds * 10 + 1e-9) / 10:.1f}"


def _secs(seconds: float) -> str:
    return f"{round(seconds, 6):g}s"
