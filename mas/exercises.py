"""Checks for the notebooks' "Your turn" exercises: run the learner's code, say what is wrong.

    from mas.exercises import check
    check("02.1", SummarizerAgent)        # ✓ and what was checked, or a friendly hint
    solution("02.1")                      # the reference answer, when you are stuck

A check runs the learner's code against the offline model and raises `NotYet` with a specific
hint on the first thing that is not right (so a failing check stops a notebook run like any
error), or prints what passed. Each exercise's reference answer sits in its notebook in a
collapsed cell; `solution(name)` says where, so it is one step away but not in the way.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable

SOURCE_NOTE = re.compile(r"\(source: [^)]*\)")


class NotYet(AssertionError):
    """The exercise is not done yet; the message says what to look at."""


def _expect(condition: bool, hint: str) -> None:
    if not condition:
        raise NotYet(hint)


# ---------------------------------------------------------------- 01 shared memory

def check_json_value(stored: str, value: Any) -> str:
    """01.1: a structured value stored with set_json is plain, readable JSON text that reads back the same."""
    _expect(isinstance(stored, str), "Pass the stored text, as read from the table with sqlite3.")
    try:
        decoded = json.loads(stored)
    except ValueError:
        raise NotYet(f"The stored text is not JSON: {stored[:60]!r}. Use set_json, not str(value).") from None
    _expect(decoded == value, f"The stored JSON reads back as {decoded!r}, not the value you stored.")
    return "stored as readable JSON text, and it reads back the same"


def check_keys_method(memory_class: type) -> str:
    """01.2: `keys(prefix)` returns the keys with that prefix, in order, with `_` taken literally."""
    import tempfile
    from pathlib import Path

    _expect(hasattr(memory_class, "keys"), "Add a method `keys(self, prefix='')` to your PersistentMemory class.")
    with tempfile.TemporaryDirectory() as tmp:
        memory = memory_class(Path(tmp) / "check.db")
        try:
            for key in ("run_1/draft", "run_1/research", "runX1/draft", "notes"):
                memory.set(key, "...")
            got = memory.keys("run_1/")
            _expect(isinstance(got, list), f"`keys` should return a list, it returned {type(got).__name__}.")
            _expect("runX1/draft" not in got, "`keys('run_1/')` also returned 'runX1/draft': in SQL `LIKE`, `_` is a "
                    "wildcard. Compare the prefix exactly, e.g. `substr(key, 1, ?) = ?`.")
            _expect(got == ["run_1/draft", "run_1/research"],
                    f"`keys('run_1/')` returned {got}; expected ['run_1/draft', 'run_1/research'] (sorted).")
            _expect(len(memory.keys()) == 4, "`keys()` with no prefix should return every key.")
        finally:
            memory.close()
    return "keys(prefix) returns exactly the keys under the prefix, in order"


# ---------------------------------------------------------------- 02 agents

def check_specialist(agent_class: type, role: str) -> str:
    """02.1: a fourth specialist is one prompt in SYSTEM_PROMPTS and a subclass of BaseAgent."""
    from mas.agents import BaseAgent
    from mas.llm import make_client
    from mas.prompts import SYSTEM_PROMPTS

    _expect(isinstance(agent_class, type) and issubclass(agent_class, BaseAgent),
            "Make your agent a subclass of mas.agents.BaseAgent.")
    _expect(role in SYSTEM_PROMPTS, f"Add a system prompt for {role!r} to SYSTEM_PROMPTS.")
    _expect(getattr(agent_class, "role", None) == role, f"Set `role = {role!r}` in the subclass.")
    agent = agent_class(client=make_client(offline=True))
    _expect(agent.system_prompt == SYSTEM_PROMPTS[role], "The agent should use the prompt from SYSTEM_PROMPTS.")
    reply = agent.run("Some text to work on.")
    _expect(bool(reply.strip()) and len(agent.history) == 2, "A run should return text and keep both turns.")
    return f"{agent_class.__name__} runs with its own prompt and keeps its history"


def check_strict_validator(validator_class: type, research: str, faithful: str) -> str:
    """02.2: a stricter validator rejects a draft without the research's source notes, approves a faithful one."""
    from mas.llm import make_client

    validator = validator_class(client=make_client(offline=True))
    stripped = SOURCE_NOTE.sub("", faithful)
    _expect(stripped != faithful, "The faithful draft should carry the research's (source: ...) notes.")
    verdict = validator.review(research, stripped)
    _expect(not verdict.approved, "Your validator approved a draft with every source note removed. A prompt asks, "
            "it does not guarantee: add a check in code in `review`.")
    _expect(any("source" in issue.lower() for issue in verdict.issues),
            "Rejecting is right; also say why, with an issue that names the missing source.")
    _expect(validator.review(research, faithful).approved, "Too strict: the faithful draft should still be approved.")
    return "rejects a draft without sources, approves the faithful one"


# ---------------------------------------------------------------- 03 orchestrator

def check_refused_run(result: Any, saved: dict[str, str]) -> str:
    """03.1: a refusing writer stops the run cleanly: failed, with the reason, and no draft saved."""
    _expect(result.status == "failed", f"The run's status is {result.status!r}; a refusal should stop it as 'failed'.")
    _expect("refused" in result.reason, "The reason should say the model refused.")
    _expect("research" in saved, "The research step ran before the refusal: it should be in memory.")
    _expect("draft_1" not in saved, "A refusal must never be saved as a draft.")
    return "the refusal stopped the run as failed, with the reason, and saved no draft"


def check_resume(calls_on_resume: list[str], resumed: Any, clean: Any) -> str:
    """03.2: a resume after a crash at the revision makes only the missing calls."""
    _expect(resumed.status == "approved", f"The resumed run ended as {resumed.status!r}, not 'approved'.")
    _expect(calls_on_resume == ["Writer", "Validator"],
            f"The resume made these calls: {calls_on_resume}. After a crash at the revision, only the "
            "revision (Writer) and its check (Validator) are missing.")
    _expect(resumed.usage.calls == clean.usage.calls, "The whole run should make as many calls as a clean run.")
    return "the resume repeated no completed call"


# ---------------------------------------------------------------- 10 playground

def check_tight_max_tokens(playground: Any) -> str:
    """10.1: the smallest max_tokens (within 10) that keeps the researcher's reply complete."""
    limit = playground.max_tokens.value
    playground.role.value = "researcher"

    def complete(max_tokens: int) -> bool:
        playground.max_tokens.value = max_tokens
        text, _ = playground._timed(playground.agent(), playground.task.value)
        return not text.startswith("[max_tokens]")

    try:
        _expect(complete(limit), f"With max_tokens={limit} the reply is cut off: raise it.")
        _expect(limit <= 10 or not complete(limit - 10), f"max_tokens={limit} works, but so does {limit - 10}: "
                "go lower, until the reply is cut off, then step back up.")
    finally:
        playground.max_tokens.value = limit
    return (f"max_tokens={limit} is just enough. The cost did not change: you pay for the tokens a reply "
            "uses, and max_tokens only caps them")


def check_most_expensive(tracer: Any, agent_name: str) -> str:
    """10.2: read a trace: the agent of the most expensive single call."""
    priced = [s for s in tracer.spans if s.cost is not None]
    _expect(bool(priced), "The trace has no priced calls: trace a run with a model that has a price.")
    top = max(priced, key=lambda s: s.cost)
    _expect(agent_name == top.agent, f"Not quite: {agent_name!r} is not the agent of the most expensive call. "
            "Sort the spans by their `cost`.")
    return f"{top.agent}'s call {top.index} cost ${top.cost:.4f}, the most of the run"


CHECKS: dict[str, Callable[..., str]] = {
    "01.1": check_json_value,
    "10.1": check_tight_max_tokens,
    "10.2": check_most_expensive,
    "01.2": check_keys_method,
    "02.1": check_specialist,
    "02.2": check_strict_validator,
    "03.1": check_refused_run,
    "03.2": check_resume,
}


def check(exercise: str, *args: Any, **kwargs: Any) -> None:
    """Run the check for `exercise` ("NN.k") on your code; prints ✓ or raises NotYet with a hint."""
    if exercise not in CHECKS:
        raise KeyError(f"no check named {exercise!r}; known: {', '.join(sorted(CHECKS))}")
    print(f"✓ {exercise}: {CHECKS[exercise](*args, **kwargs)}")


def solution(exercise: str) -> str:
    """Where the reference answer is: the collapsed "Answer" cell under the exercise in its notebook."""
    number = exercise.split(".")[0]
    return (f"The reference answer to {exercise} is in notebooks/{number}_*.ipynb, in the collapsed cell "
            f"'# Answer {exercise.split('.')[-1]}' under 'Your turn' (click the ··· to expand it).")


def as_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
