"""Interactive widgets (ipywidgets): a prompt playground, a trace viewer, the approval form, and self-checks.

    from mas.widgets import Playground, TraceViewer
    Playground()            # edit prompts, run one agent or the pipeline, compare two prompts
    TraceViewer(tracer)     # a run's calls as a table and a timeline; click a call for its prompt and reply
    ApprovalForm(q, draft)  # what `mas.failures.ask_human` shows a person: approve, edit or reject
    Quiz("03")              # the self-check at the end of a notebook (mas.quiz): choices, feedback, score

Each widget is a plain class whose buttons call ordinary methods (`run_agent`, `compare`,
`reset_prompts`, `save`, `load`, `select`), so the logic is tested headless by calling them
and reading what the widgets show. ipywidgets is imported here, and this module is imported
only when used: `import mas` does not load it.

Every text a view puts into HTML (a reply, a prompt, an API error, a trace file's fields, a model
name, a path) is `html.escape`d first: a reply that holds `<script>` shows as text, never runs.
"""

from __future__ import annotations

import html
import json
import time
from pathlib import Path
from typing import Any, Callable

from mas.agents import BaseAgent, ResearcherAgent, ValidatorAgent, WriterAgent
from mas.client import default_model, make_client, usage_of
from mas.errors import AgentReplyError
from mas.extras import require
from mas.failures import Decision
from mas.memory import SQLiteMemory
from mas.offline.catalog import listed_models
from mas.offline.roles import topic_of
from mas.orchestrator import Orchestrator
from mas.pricing import cost
from mas.prompts import SYSTEM_PROMPTS, research_task
from mas.redact import redact_text
from mas.tracing import Timeline, Tracer, format_table

W = require("ipywidgets", "mas.widgets")  # the `lab` extra
DEFAULT_TASK = research_task("How vector databases enable semantic search", "senior software engineers")


def call_stats(agent: BaseAgent, seconds: float | None) -> dict[str, Any]:
    """Tokens, latency and cost of an agent's last call (cost None when the model has no known price)."""
    message = agent.last_message
    usage = usage_of(message) if message is not None else {}
    return {"model": agent.model, "input_tokens": usage.get("input_tokens", 0),
            "output_tokens": usage.get("output_tokens", 0), "seconds": seconds,
            "cost": cost(agent.model, message.usage) if message is not None else None}


def format_stats(stats: dict[str, Any], show_time: bool = True) -> str:
    """One line for a call.

    >>> format_stats({"model": "m", "input_tokens": 1200, "output_tokens": 5, "seconds": 0.25, "cost": None})
    'm · 1,200 in / 5 out tokens · 0.25 s · cost unknown'
    """
    parts = [stats["model"], f"{stats['input_tokens']:,} in / {stats['output_tokens']:,} out tokens"]
    if show_time and stats["seconds"] is not None:
        parts.append(f"{stats['seconds']:.2f} s")
    return " · ".join([*parts, "cost unknown" if stats["cost"] is None else f"${stats['cost']:.4f}"])


def _button(description: str, action: Callable[[], Any], **style: Any) -> W.Button:
    """A button that calls `action()` when clicked."""
    button = W.Button(description=description, **style)
    button.on_click(lambda _: action())
    return button


class Playground:
    """Edit each role's system prompt, the model and max_tokens; run one agent or the whole
    pipeline; compare two variants of a prompt on the same input; save, load and reset prompts."""

    def __init__(self, client=None, *, show_time: bool = True):
        self.client = client or make_client()
        self.show_time = show_time  # notebooks under test hide wall-clock times, which change every run
        self.prompts = dict(SYSTEM_PROMPTS)
        models = list(listed_models())
        model = default_model()
        self.role = W.Dropdown(options=tuple(self.prompts), value="researcher", description="Role")  # new roles too
        self.model = W.Dropdown(options=models if model in models else [model, *models], value=model,
                                description="Model")
        self.max_tokens = W.BoundedIntText(value=1024, min=1, max=64000, description="max_tokens")
        self.system = W.Textarea(value=self.prompts["researcher"], description="System",
                                 layout=W.Layout(width="100%", height="110px"))
        self.task = W.Textarea(value=DEFAULT_TASK, description="Task", layout=W.Layout(width="100%", height="70px"))
        self.reply, self.stats, self.status = W.HTML(), W.HTML(), W.HTML()
        self.path = W.Text(value="data/prompts.json", description="File")
        buttons = [_button("Run agent", self.run_agent, button_style="primary"),
                   _button("Run pipeline", self.run_pipeline), _button("Reset prompts", self.reset_prompts),
                   _button("Save", self.save), _button("Load", self.load)]
        self.role.observe(self._role_changed, names="value")
        self.system.observe(self._prompt_edited, names="value")

        self.variant_a = W.Textarea(value=self.prompts["researcher"], description="Prompt A",
                                    layout=W.Layout(width="98%", height="110px"))
        self.variant_b = W.Textarea(value=self.prompts["researcher"]
                                    + " Limit yourself to the three most important facts.", description="Prompt B",
                                    layout=W.Layout(width="98%", height="110px"))
        self.reply_a, self.reply_b = W.HTML(), W.HTML()
        compare = _button("Compare A and B", self.compare, button_style="primary")

        single = W.VBox([W.HBox([self.role, self.model, self.max_tokens]), self.system, self.task,
                         W.HBox([*buttons, self.path]), self.status, self.stats, self.reply])
        side_by_side = W.VBox([W.HBox([self.role_hint()]), self.task_hint(),
                               W.HBox([W.VBox([self.variant_a, self.reply_a], layout=W.Layout(width="50%")),
                                       W.VBox([self.variant_b, self.reply_b], layout=W.Layout(width="50%"))]),
                               compare])
        self.widget = W.Tab(children=[single, side_by_side])
        self.widget.set_title(0, "Playground")
        self.widget.set_title(1, "Compare A / B")

    def role_hint(self) -> W.HTML:
        return W.HTML("Both variants run as the role chosen in the Playground tab, on its task and model.")

    def task_hint(self) -> W.HTML:
        return W.HTML("<i>Edit prompt B, then compare: same input, two replies, their tokens and costs.</i>")

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    # ------------------------------------------------------------------ actions (the buttons)

    def agent(self, system_prompt: str | None = None) -> BaseAgent:
        return BaseAgent(self.role.value, client=self.client, model=self.model.value, max_tokens=self.max_tokens.value,
                         system_prompt=self.prompts[self.role.value] if system_prompt is None else system_prompt)

    def run_agent(self) -> str:
        text, stats = self._ask()
        self.stats.value, self.reply.value = html.escape(stats), _pre(text)
        return text

    def run_pipeline(self, topic: str | None = None) -> str:
        topic = topic or topic_of(self.task.value)
        kw = dict(client=self.client, model=self.model.value, max_tokens=self.max_tokens.value)
        lines: list[str] = []
        with SQLiteMemory(":memory:") as memory:
            orch = Orchestrator(memory, progress=lines.append,
                                researcher=ResearcherAgent(system_prompt=self.prompts["researcher"], **kw),
                                writer=WriterAgent(system_prompt=self.prompts["writer"], **kw),
                                validator=ValidatorAgent(system_prompt=self.prompts["validator"], **kw))
            result = orch.run(topic, run_id="playground")
        price = cost(self.model.value, result.usage.model_dump())
        self.status.value = _line(f"{result.status}: {result.reason}")
        self.stats.value = (f"{result.usage.calls} calls · {result.usage.input_tokens:,} in / "
                            f"{result.usage.output_tokens:,} out tokens · "
                            + ("cost unknown" if price is None else f"${price:.4f}"))
        shown = result.report or (f"UNREVIEWED: the run stopped ({result.status}); its latest draft, which no "
                                  f"validator approved:\n\n{result.draft}" if result.draft else "")
        self.reply.value = _pre("\n".join(lines) + "\n\n" + shown)
        return result.report

    def compare(self) -> tuple[str, str]:
        """Both variants on the same task; their stats (tokens, cost) are kept in `compare_stats`."""
        out, self.compare_stats = [], []
        for prompt, view in ((self.variant_a.value, self.reply_a), (self.variant_b.value, self.reply_b)):
            text, stats = self._ask(prompt)
            self.compare_stats.append(stats)
            view.value = f"<div>{html.escape(stats)}</div>{_pre(text)}"
            out.append(text)
        return out[0], out[1]

    def reset_prompts(self) -> None:
        self.prompts = dict(SYSTEM_PROMPTS)
        self.system.value = self.prompts[self.role.value]
        self.status.value = "Prompts reset to the course's."

    def save(self, path: str | None = None) -> Path:
        target = Path(path or self.path.value)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps({"prompts": self.prompts, "model": self.model.value,
                                      "max_tokens": self.max_tokens.value}, indent=2) + "\n", encoding="utf-8")
        self.status.value = _line(f"Saved to {target}.")
        return target

    def load(self, path: str | None = None) -> None:
        source = Path(path or self.path.value)
        try:
            data = json.loads(source.read_text(encoding="utf-8"))
            prompts = data["prompts"]
            if not isinstance(prompts, dict) or not all(isinstance(v, str) for v in prompts.values()):
                raise ValueError("'prompts' must map role names to prompt text")
        except (OSError, ValueError, KeyError, TypeError) as err:
            self.status.value = _line(f"Could not load {source}: {err}")
            return
        self.prompts.update(prompts)
        if data.get("model") in self.model.options:
            self.model.value = data["model"]
        if isinstance(data.get("max_tokens"), int):
            self.max_tokens.value = data["max_tokens"]
        self.system.value = self.prompts[self.role.value]
        self.status.value = _line(f"Loaded {source}.")

    # ------------------------------------------------------------------ plumbing

    def _ask(self, system_prompt: str | None = None) -> tuple[str, str]:
        """An agent's reply to the task, or the error where the reply would be, and the call's stats line."""
        agent = self.agent(system_prompt)
        start = time.perf_counter()
        try:
            text = agent.run(self.task.value)
        except AgentReplyError as err:
            text = f"[{err.kind}] {err}\n\n{err.reply}"
        except Exception as err:  # an API error: show it where the reply would be, keep the widget alive
            return f"[error] {type(err).__name__}: {redact_text(str(err))}", ""
        return text, format_stats(call_stats(agent, time.perf_counter() - start), self.show_time)

    def _role_changed(self, change: dict) -> None:
        self.system.value = self.prompts[change["new"]]
        self.variant_a.value = self.variant_b.value = self.prompts[change["new"]]

    def _prompt_edited(self, change: dict) -> None:
        self.prompts[self.role.value] = change["new"]


def _line(text: str) -> str:
    """A status line: text with no markup, escaped as text (`<`, `>`, `&`; quotes are plain in text), so it
    shows the same in the widget and printed from code (notebook 10 prints `playground.status.value`)."""
    return html.escape(text, quote=False)


def _pre(text: str) -> str:
    # every text a view shows (a reply, a prompt, an API error, a trace file's fields) goes in escaped
    return f"<pre style='white-space: pre-wrap'>{html.escape(text)}</pre>"


class TraceViewer:
    """A run's calls as a table and a timeline; pick a call to read its prompt and reply.

    Takes a `mas.tracing.Tracer` (or its spans, e.g. `load_jsonl(path)`).
    """

    def __init__(self, trace: Any, *, times: bool = True):
        self.spans = list(trace.spans if isinstance(trace, Tracer) else trace)
        self.times = times  # hide seconds where output must be stable (notebooks under test)
        rows = [{"#": s.index, "agent": s.agent, "step": s.step or "-", "in": s.input_tokens,
                 "out": s.output_tokens, "stop": s.stop_reason or s.error or "-",
                 "cost": "unknown" if s.cost is None else f"${s.cost:.4f}",
                 **({"seconds": f"{s.latency:.2f}"} if times else {})} for s in self.spans]
        self.table = W.HTML(_pre(format_table(rows)))
        self.timeline = W.HTML(Timeline(self.spans)._repr_html_() if times else "")
        self.calls = W.Select(options=[(f"{s.index}. {s.agent} · {s.step or '-'}", s.index) for s in self.spans],
                              rows=min(8, max(2, len(self.spans))), description="Call")
        self.detail = W.HTML()
        self.calls.observe(lambda change: self.select(change["new"]), names="value")
        parts = [W.HTML("<b>Calls</b>"), self.table]
        if times:
            parts += [W.HTML("<b>Timeline</b>"), self.timeline]
        self.widget = W.VBox([*parts, W.HTML("<b>Pick a call to read its prompt and reply</b>"), self.calls,
                              self.detail])
        if self.spans:
            self.select(self.spans[0].index)

    def select(self, index: int) -> None:
        span = next(s for s in self.spans if s.index == index)
        status = f"failed: {span.error} {span.error_message}" if span.error else f"stop reason: {span.stop_reason}"
        self.detail.value = (f"<div>{html.escape(f'{span.agent} · {span.model} · {status}')}</div>"
                             f"<div><b>Prompt</b></div>{_pre(span.prompt)}<div><b>Reply</b></div>{_pre(span.reply)}")
        if self.calls.value != index:
            self.calls.value = index

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


class ApprovalForm:
    """The question, the draft in an editable text box, and three buttons; `decision` after a click.

    The buttons' handlers are plain methods (`approve`, `edit`, `reject`), so a test or a
    notebook can press them with `form.approve_button.click()` without a browser.
    """

    def __init__(self, question: str, draft: str = ""):
        self.question, self.draft = question, draft
        self.decision: Decision | None = None
        self.text = W.Textarea(value=draft, placeholder="the draft (edit it, then press 'Use my edit')",
                               layout=W.Layout(width="100%", height="14em"))
        self.approve_button = _button("Approve", self.approve, button_style="success", icon="check")
        self.edit_button = _button("Use my edit", self.edit, button_style="warning", icon="pencil")
        self.reject_button = _button("Reject", self.reject, button_style="danger", icon="times")
        self.status = W.HTML("<i>waiting for your decision</i>")
        self.widget = W.VBox([W.HTML(f"<b>{html.escape(question)}</b>"), self.text,
                              W.HBox([self.approve_button, self.edit_button, self.reject_button]), self.status])

    # the three button handlers
    def approve(self) -> None:
        self.decide(Decision("approve"))

    def edit(self) -> None:
        if not self.text.value.strip():
            self.status.value = "<b>The text box is empty</b>: write the text to use, or approve or reject."
            return
        self.decide(Decision("edit", self.text.value))

    def reject(self) -> None:
        self.decide(Decision("reject"))

    def decide(self, decision: Decision) -> None:
        """Record `decision` as a click does (the buttons call this). Code answers a form with it
        when nobody is there to click: `form.decide(Decision("approve", by="default"))`."""
        if self.decision is not None:  # the first decision stands; a second one changes nothing
            return
        self.decision = decision
        for button in (self.approve_button, self.edit_button, self.reject_button):
            button.disabled = True
        self.text.disabled = True
        self.status.value = (f"Decided: <b>{html.escape(decision.action)}</b>. "
                             "Now re-run the step (or the run) that asked.")

    def describe(self) -> str:
        """The form as plain text: what a reader without a live front end sees of it."""
        return (f"[approval form] {self.question}\n"
                f"  text box: the draft, {len(self.draft)} chars, editable\n"
                f"  buttons:  Approve | Use my edit | Reject\n"
                f"  decision: {self.decision.action if self.decision else 'none yet'}")

    def __repr__(self) -> str:
        return f"ApprovalForm({'decided: ' + self.decision.action if self.decision else 'waiting'})"


class Quiz:
    """A notebook's self-check (`mas.quiz`): each question with its choices, a Check button, and for each
    question the feedback of the choice picked (why it is right, or why not), then the score."""

    def __init__(self, notebook: str):
        from mas.quiz import questions

        self.notebook, self.questions = notebook, questions(notebook)
        self.pickers = [W.RadioButtons(options=[(c, i) for i, c in enumerate(q.choices)], value=None,
                                       layout=W.Layout(width="auto")) for q in self.questions]
        self.feedback = [W.HTML() for _ in self.questions]
        self.score = W.HTML()
        rows: list[Any] = []
        for n, (question, picker, said) in enumerate(zip(self.questions, self.pickers, self.feedback), 1):
            rows += [W.HTML(f"<b>{n}. {html.escape(question.text)}</b>"), picker, said]
        self.widget = W.VBox([*rows, _button("Check my answers", self.check, button_style="info"), self.score])

    def check(self) -> str:
        """Show each question's feedback and the score; returns them as text (`mas.quiz.grade`)."""
        from mas.quiz import grade

        text = grade(self.notebook, [p.value for p in self.pickers])
        *lines, score = text.splitlines()
        for said, line in zip(self.feedback, lines):
            said.value = _line(line.split(". ", 1)[1])
        self.score.value = f"<b>{_line(score)}</b>"
        return text

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
