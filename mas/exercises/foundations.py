"""Checks for the exercises of notebooks 01-03: shared memory, agents, the orchestrator (see `mas.exercises`)."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any, Callable

from mas.agents import BaseAgent
from mas.client import make_client
from mas.exercises.core import NotYet, expect
from mas.prompts import SYSTEM_PROMPTS

# "(source: ...)" with no parenthesis inside: `[^()]`, not `[^)]`, so each try stops at the next "(" and a
# text of 20,000 unclosed "(source: " takes linear time, not quadratic (minutes)
SOURCE_NOTE = re.compile(r"\(source: [^()]*\)")


def check_json_value(stored: str, value: Any) -> str:
    """01.1: a structured value stored with set_json is plain, readable JSON text that reads back the same."""
    expect(isinstance(stored, str), "Pass the stored text, as read from the table with sqlite3.")
    try:
        decoded = json.loads(stored)
    except ValueError:
        raise NotYet(f"The stored text is not JSON: {stored[:60]!r}. Use set_json, not str(value).") from None
    expect(decoded == value, f"The stored JSON reads back as {decoded!r}, not the value you stored.")
    return "stored as readable JSON text, and it reads back the same"


def check_keys_method(memory_class: type) -> str:
    """01.2: `keys(prefix)` returns the keys with that prefix, in order, with `_` taken literally."""
    expect(hasattr(memory_class, "keys"), "Add a method `keys(self, prefix='')` to your PersistentMemory class.")
    with tempfile.TemporaryDirectory() as tmp:
        memory = memory_class(Path(tmp) / "check.db")
        try:
            for key in ("run_1/draft", "run_1/research", "runX1/draft", "notes"):
                memory.set(key, "...")
            got = memory.keys("run_1/")
            expect(isinstance(got, list), f"`keys` should return a list, it returned {type(got).__name__}.")
            expect("runX1/draft" not in got, "`keys('run_1/')` also returned 'runX1/draft': in SQL `LIKE`, `_` is a "
                   "wildcard. Compare the prefix exactly, e.g. `substr(key, 1, ?) = ?`.")
            expect(got == ["run_1/draft", "run_1/research"],
                   f"`keys('run_1/')` returned {got}; expected ['run_1/draft', 'run_1/research'] (sorted).")
            expect(len(memory.keys()) == 4, "`keys()` with no prefix should return every key.")
        finally:
            memory.close()
    return "keys(prefix) returns exactly the keys under the prefix, in order"


def check_specialist(agent_class: type, role: str) -> str:
    """02.1: a fourth specialist is one prompt in SYSTEM_PROMPTS and a subclass of BaseAgent."""
    expect(isinstance(agent_class, type) and issubclass(agent_class, BaseAgent),
           "Make your agent a subclass of mas.agents.BaseAgent.")
    expect(role in SYSTEM_PROMPTS, f"Add a system prompt for {role!r} to SYSTEM_PROMPTS.")
    expect(getattr(agent_class, "role", None) == role, f"Set `role = {role!r}` in the subclass.")
    agent = agent_class(client=make_client(offline=True))
    expect(agent.system_prompt == SYSTEM_PROMPTS[role], "The agent should use the prompt from SYSTEM_PROMPTS.")
    reply = agent.run("Some text to work on.")
    expect(bool(reply.strip()) and len(agent.history) == 2, "A run should return text and keep both turns.")
    return f"{agent_class.__name__} runs with its own prompt and keeps its history"


def check_strict_validator(validator_class: type, research: str, faithful: str) -> str:
    """02.2: a stricter validator rejects a draft without the research's source notes, approves a faithful one.

    The learner's validator is run on scripted models (`ScriptedTransport`), not on a real one: a lax model
    that approves every draft, and one that reports an issue. So the check holds whatever model wrote
    `research` and `faithful` (the offline model or Claude): the code in `review` must catch what a lax model
    lets through, keep what the model reports, and approve a draft that is right.
    """
    from mas.offline import ScriptedTransport

    notes = SOURCE_NOTE.findall(research)
    expect(bool(notes), "The research has no (source: ...) notes to check: pass the researcher's notes.")
    lost = [note for note in notes if note not in faithful]
    expect(not lost, f"The draft you passed as faithful has lost {len(lost)} of the research's source notes (the "
           f"first: {lost[0] if lost else ''}). That is what your validator is for: revise the draft with its "
           "issues, and pass a draft that keeps every source note.")
    stripped = SOURCE_NOTE.sub("", faithful)

    def review(verdict: dict, draft: str) -> tuple[Any, Any]:
        model = ScriptedTransport([json.dumps(verdict)] * 3)  # the same verdict, whatever it is asked
        validator = validator_class(client=make_client(transport=model))
        return validator, validator.review(research, draft)

    lax = {"issues": [], "approved": True}
    validator, verdict = review(lax, stripped)
    expect(not verdict.approved, "With a model that approves every draft, your validator approved a draft with every "
           "source note removed. A prompt asks, it does not guarantee: add a check in code in `review`.")
    expect(any("source" in issue.lower() for issue in verdict.issues),
           "Rejecting is right; also say why, with an issue that names the missing source.")
    expect("source" in validator.system_prompt.lower(), "The check in code works; now ask for the sources in the "
           "system prompt too, so that the model looks for them (and explains what it finds).")
    expect(review(lax, faithful)[1].approved, "Too strict: a draft that keeps every source note of the research "
           "should be approved when the model finds nothing else wrong.")
    found = "Unsupported claim, not in the research: a figure the draft invented."
    verdict = review({"issues": [found], "approved": False}, faithful)[1]
    expect(not verdict.approved and found in verdict.issues, "Your validator dropped the model's own issues: when the "
           "model rejects a draft, keep its verdict (call `super().review(...)` and add your issues to its).")
    return ("rejects a draft without sources even when the model approves it, approves the faithful one, "
            "keeps the model's own issues")


def check_refused_run(result: Any, saved: dict[str, str]) -> str:
    """03.1: a refusing writer stops the run cleanly: failed, with the reason, and no draft saved."""
    expect(result.status == "failed", f"The run's status is {result.status!r}; a refusal should stop it as 'failed'.")
    expect("refused" in result.reason, "The reason should say the model refused.")
    expect("research" in saved, "The research step ran before the refusal: it should be in memory.")
    expect("draft_1" not in saved, "A refusal must never be saved as a draft.")
    return "the refusal stopped the run as failed, with the reason, and saved no draft"


def check_resume(calls_on_resume: list[str], resumed: Any, clean: Any) -> str:
    """03.2: a resume after a crash at the revision makes only the missing calls."""
    expect(resumed.status == "approved", f"The resumed run ended as {resumed.status!r}, not 'approved'.")
    expect(calls_on_resume == ["Writer", "Validator"],
           f"The resume made these calls: {calls_on_resume}. After a crash at the revision, only the "
           "revision (Writer) and its check (Validator) are missing.")
    expect(resumed.usage.calls == clean.usage.calls, "The whole run should make as many calls as a clean run.")
    return "the resume repeated no completed call"


CHECKS: dict[str, Callable[..., str]] = {
    "01.1": check_json_value,
    "01.2": check_keys_method,
    "02.1": check_specialist,
    "02.2": check_strict_validator,
    "03.1": check_refused_run,
    "03.2": check_resume,
}
