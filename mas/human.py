"""Escalation to a human: a question and a draft in, a decision out (approve, reject, or edit).

    decision = ask_human("The Writer failed. Keep this draft?", draft)   # unattended: the default
    decision.action, decision.text                                       # "reject", ""

Where the question is shown depends on whether someone is there to answer it, and a Jupyter
kernel cannot know that: a kernel driven by JupyterLab with a person watching looks exactly
like one driven by nbval, nbclient or papermill with nobody there. So `mas` does not guess.
It is *told*: `interactive=True`, or the environment variable `MAS_INTERACTIVE=1`.

- not interactive (the default): the configured `default` decision at once, marked
  `by="default"`. Never `input()`, which would hang an unattended run.
- interactive: an ipywidgets form (the question, the draft in a text box, Approve /
  Use my edit / Reject buttons) is displayed and returned. A running cell cannot receive the
  button clicks (the kernel handles the click only after the cell ends), so the caller does not
  wait: `form.decision` is None until the person clicks (or code answers, `form.decide(...)`).
  `mas.failures.Escalate` turns that into a run stopped as "awaiting_human", which the same
  `orchestrator.run(run_id=...)` resumes once the form is answered.

Simplified on purpose: one person, one question at a time, no timeout on the form.
ipywidgets is imported only when a form is built, so `import mas` stays light.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, replace
from typing import Any, Callable, Literal

INTERACTIVE_ENV = "MAS_INTERACTIVE"
ACTIONS = ("approve", "reject", "edit")


@dataclass(frozen=True)
class Decision:
    """A human's answer to an escalation.

    >>> Decision("edit", "A better draft.")
    Decision(action='edit', text='A better draft.', by='human')
    >>> Decision("edit", "  ")
    Traceback (most recent call last):
    ...
    ValueError: an edit needs the edited text (got an empty one); to keep the draft as it is, approve it
    """

    action: Literal["approve", "reject", "edit"]  # keep the draft / stop / use `text` instead
    text: str = ""  # the edited text (edit only)
    by: str = "human"  # "human" (a click) or "default" (nobody was asked)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown action {self.action!r}; a decision is one of {', '.join(ACTIONS)}")
        if self.action == "edit" and not self.text.strip():
            raise ValueError("an edit needs the edited text (got an empty one); to keep the draft as it is, approve it")


APPROVE = Decision("approve")
REJECT = Decision("reject")


def interactive_default(interactive: bool | None = None) -> bool:
    """Whether to show a form: the explicit argument wins, else `MAS_INTERACTIVE` (1/true/yes).

    >>> interactive_default(True), interactive_default(False)
    (True, False)
    """
    if interactive is not None:
        return interactive
    from mas.settings import settings

    return settings().interactive


class ApprovalForm:
    """The question, the draft in an editable text box, and three buttons; `decision` after a click.

    The buttons' handlers are plain methods (`approve`, `edit`, `reject`), so a test or a
    notebook can press them with `form.approve_button.click()` without a browser.
    """

    def __init__(self, question: str, draft: str = ""):
        from mas.extras import require

        widgets = require("ipywidgets", "the approval form")  # lazily: only when someone is asked

        self.question, self.draft = question, draft
        self.decision: Decision | None = None
        self.text = widgets.Textarea(value=draft, placeholder="the draft (edit it, then press 'Use my edit')",
                                     layout=widgets.Layout(width="100%", height="14em"))
        self.approve_button = widgets.Button(description="Approve", button_style="success", icon="check")
        self.edit_button = widgets.Button(description="Use my edit", button_style="warning", icon="pencil")
        self.reject_button = widgets.Button(description="Reject", button_style="danger", icon="times")
        self.status = widgets.HTML("<i>waiting for your decision</i>")
        self.approve_button.on_click(lambda _: self.approve())
        self.edit_button.on_click(lambda _: self.edit())
        self.reject_button.on_click(lambda _: self.reject())
        self.widget = widgets.VBox([widgets.HTML(f"<b>{html.escape(question)}</b>"), self.text,
                                    widgets.HBox([self.approve_button, self.edit_button, self.reject_button]),
                                    self.status])

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
        self.status.value = f"Decided: <b>{decision.action}</b>. Now re-run the step (or the run) that asked."

    def describe(self) -> str:
        """The form as plain text: what a reader without a live front end sees of it."""
        return (f"[approval form] {self.question}\n"
                f"  text box: the draft, {len(self.draft)} chars, editable\n"
                f"  buttons:  Approve | Use my edit | Reject\n"
                f"  decision: {self.decision.action if self.decision else 'none yet'}")

    def __repr__(self) -> str:
        return f"ApprovalForm({'decided: ' + self.decision.action if self.decision else 'waiting'})"


def show_widget(form: ApprovalForm) -> None:
    """Display the form's widget in the notebook (the default way `ask_human` shows it)."""
    from IPython.display import display

    display(form.widget)


def ask_human(question: str, draft: str = "", *, interactive: bool | None = None, default: Decision = REJECT,
              show: Callable[[ApprovalForm], Any] | None = None) -> Decision | ApprovalForm:
    """Ask a person to approve, reject or edit `draft`.

    Unattended (not `interactive`): `default` at once, marked `by="default"`; REJECT unless
    configured, so nothing unreviewed goes further by accident. Interactive: a form, shown with
    `show` (default: displayed as a widget) and returned; its `decision` is None until a click.

    >>> ask_human("Keep this draft?", "Draft.", interactive=False)
    Decision(action='reject', text='', by='default')
    >>> ask_human("Keep this draft?", "Draft.", interactive=False, default=APPROVE).action
    'approve'
    """
    if not interactive_default(interactive):
        return replace(default, by="default")
    form = ApprovalForm(question, draft)
    (show or show_widget)(form)
    return form
