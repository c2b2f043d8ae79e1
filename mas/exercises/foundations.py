"""Checks for the exercises of notebooks 01-03: shared memory, agents, the orchestrator (see `mas.exercises`)."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path
from typing import Any, Callable

from mas.agents import BaseAgent
from mas.client import make_client
from mas.contracts import RunResult
from mas.exercises.core import NotYet, attempt, expect
from mas.prompts import SYSTEM_PROMPTS

# "(source: ...)" with no parenthesis inside: `[^()]`, not `[^)]`, so each try stops at the next "(" and a
# text of 20,000 unclosed "(source: " takes linear time, not quadratic (minutes)
SOURCE_NOTE = re.compile(r"\(source: [^()]*\)")


def _database(memory: Any) -> Path:
    """The file of the learner's memory: a SQLiteMemory (or a view of it), or the path it was opened on."""
    path = getattr(memory, "path", memory)
    expect(isinstance(path, (str, os.PathLike)), "Pass the database file your SQLiteMemory wrote (e.g. DATA / "
           f"\"exercise.db\"), or that memory itself, not a {type(memory).__name__}.")
    expect(Path(path).is_file(), f"There is no database file at {str(path)[:60]!r}. Pass the file your SQLiteMemory "
           "wrote (e.g. DATA / \"exercise.db\"), not the text read from it: the check reads the table itself.")
    return Path(path)


def check_json_value(memory: Any, value: Any, scope: str = "run-c", key: str = "validation") -> str:
    """01.1: a structured value stored with set_json, in the scope `run-c`, is plain JSON text in the table.

    What is checked is the learner's database file, read here with sqlite3: the row `run-c/validation` that
    SQLiteMemory wrote, its text JSON that reads back as the value (what get_json does)."""
    expect(isinstance(value, (dict, list)), f"Pass the structured value you stored (the verdict, a dict), not "
           f"{type(value).__name__}.")
    path = _database(memory)
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            rows = dict(conn.execute("SELECT key, value FROM memory"))
    except sqlite3.Error as err:
        raise NotYet(f"{path.name} has no memory table SQLiteMemory wrote ({err}): store the value with "
                     f"SQLiteMemory({path.name!r}).scoped({scope!r}).set_json({key!r}, verdict).") from None
    full = f"{scope}/{key}"
    if full not in rows:
        near = [k for k in rows if k.endswith(key) or k.startswith(scope)]
        raise NotYet(f"No {key!r} in the scope {scope!r} of {path.name} (its keys: {', '.join(sorted(rows)) or 'none'}"
                     f"). Store it with memory.scoped({scope!r}).set_json({key!r}, verdict)"
                     + (f", under the scope {scope!r}, not as {near[0]!r}." if near else "."))
    stored = rows[full]
    try:
        decoded = json.loads(stored)
    except (TypeError, ValueError):
        raise NotYet(f"The stored text is not JSON: {str(stored)[:60]!r}. Use set_json, not set(key, str(value)).") from None
    expect(decoded == value, f"The stored JSON reads back as {decoded!r}, not the value you passed: store the "
           "verdict itself with set_json.")
    return f"{full} holds {stored[:60]}: readable JSON text, and it reads back the same"


# the keys 01.2 stores, in an order that is not sorted: keys() must sort them itself (ORDER BY key)
_KEYS = ("run_1/research", "notes", "runX1/draft", "RUN_1/notes", "run_1/draft", "50x/a", "50%/a")


def check_keys_method(memory_class: type) -> str:
    """01.2: `keys(prefix)` returns the keys with that prefix, sorted, with `_` and `%` taken literally.

    The keys are stored out of order, so a query with no ORDER BY returns them as stored, and the check sees it."""
    expect(callable(getattr(memory_class, "keys", None)),
           "Add a method `keys(self, prefix='')` to your PersistentMemory class.")
    with tempfile.TemporaryDirectory() as tmp:
        memory = attempt(f"{getattr(memory_class, '__name__', memory_class)}(path)", memory_class, Path(tmp) / "check.db")
        try:
            # subtle: a covering index (the primary key's) returns keys sorted even with no ORDER BY, today. This
            # pragma, which SQLite has for finding such queries, reverses every unordered SELECT on the connection
            for conn in [v for v in vars(memory).values() if isinstance(v, sqlite3.Connection)]:
                conn.execute("PRAGMA reverse_unordered_selects = ON")
            for key in _KEYS:
                attempt(f"set({key!r}, ...)", memory.set, key, "...")
            got = attempt("keys('run_1/')", memory.keys, "run_1/")
            expect(isinstance(got, list), f"`keys` should return a list, it returned {type(got).__name__}.")
            expect("runX1/draft" not in got, "`keys('run_1/')` also returned 'runX1/draft': in SQL `LIKE`, `_` is a "
                   "wildcard. Compare the prefix exactly, e.g. `substr(key, 1, ?) = ?`.")
            expect("RUN_1/notes" not in got, "`keys('run_1/')` also returned 'RUN_1/notes': SQLite's `LIKE` ignores "
                   "case. Compare the prefix exactly, e.g. `substr(key, 1, ?) = ?`.")
            expect(sorted(got) != ["run_1/draft", "run_1/research"] or got == sorted(got),
                   f"`keys('run_1/')` returned {got}: the right keys, not sorted. Without ORDER BY, SQLite returns "
                   "rows in whatever order it finds them (here reversed, as PRAGMA reverse_unordered_selects makes it "
                   "to find such queries): add `ORDER BY key`.")
            expect(got == ["run_1/draft", "run_1/research"],
                   f"`keys('run_1/')` returned {got}; expected ['run_1/draft', 'run_1/research'] (sorted).")
            got = attempt("keys('50%')", memory.keys, "50%")
            expect(got == ["50%/a"], f"`keys('50%')` returned {got}, not ['50%/a']: in `LIKE`, `%` is a wildcard too. "
                   "Compare the prefix exactly, e.g. `substr(key, 1, ?) = ?`.")
            got = attempt("keys()", memory.keys)
            expect(sorted(got) != sorted(_KEYS) or got == sorted(_KEYS), f"`keys()` returned every key, but "
                   f"not sorted: {got}. Add `ORDER BY key`.")
            expect(got == sorted(_KEYS), f"`keys()` with no prefix returned {got}; it should return every key, "
                   f"sorted: {sorted(_KEYS)}.")
        finally:
            memory.close()
    return "keys(prefix) returns exactly the keys under the prefix, sorted, with _ and % taken literally"


COURSE_ROLES = ("researcher", "writer", "validator")  # the course's three specialists (mas.prompts)
# what 02.1's summarizer is run on: a markdown draft on a topic of the offline model's notes
DRAFT = ("# How vector databases enable semantic search\n\n## Overview\n\nA vector database stores embeddings and "
         "finds the nearest ones to a query's embedding, so a search matches meaning, not words.\n\n## Key points\n\n"
         "- Embeddings map text to vectors.\n- Approximate nearest-neighbour indexes such as HNSW keep search fast.")


def check_specialist(agent_class: type, role: str) -> str:
    """02.1: a fourth specialist is one prompt in SYSTEM_PROMPTS and a subclass of BaseAgent; run on a draft
    (offline), it condenses it into at most three bullet points, not a draft of its own."""
    from mas.offline.roles import detect_role

    expect(isinstance(agent_class, type) and issubclass(agent_class, BaseAgent),
           "Make your agent a subclass of mas.agents.BaseAgent, and pass the class itself.")
    expect(isinstance(role, str) and role not in COURSE_ROLES, f"{role!r} is one of the course's three roles: a "
           "fourth specialist has a role of its own, e.g. 'summarizer', with its own prompt.")
    expect(role in SYSTEM_PROMPTS, f"Add a system prompt for {role!r} to SYSTEM_PROMPTS.")
    agent = attempt(f"{agent_class.__name__}(client=...)", agent_class, client=make_client(offline=True))
    expect(agent.role == role, f"Your agent's role is {agent.role!r}: set `role = {role!r}` in the subclass.")
    expect(agent.system_prompt == SYSTEM_PROMPTS[role], f"The agent should use the prompt from "
           f"SYSTEM_PROMPTS[{role!r}], not a prompt of its own.")
    task = f"<draft>\n{DRAFT}\n</draft>\n\nSummarize this draft."
    played = detect_role(agent.system_prompt, task)
    expect(played not in COURSE_ROLES, f"Offline, your prompt makes the model play the {played}: it names that "
           f"role (e.g. \"a {played}'s draft\"). Describe the text it is given without naming another role.")
    reply = attempt(f"{agent_class.__name__}.run(task)", agent.run, task)
    lines = [line for line in reply.splitlines() if line.strip()]
    expect(1 <= len(lines) <= 3 and all(line.lstrip().startswith(("- ", "* ")) for line in lines),
           f"Run on a draft, your {agent_class.__name__} answered {len(lines)} line(s), not at most three bullet "
           f"points (the first: {lines[0][:50] if lines else ''!r}): ask for at most three bullet points in its prompt.")
    expect(len(agent.history) == 2 and agent.usage.calls == 1, "A run should make one call and keep both turns: "
           "let BaseAgent.run do it.")
    return f"{agent_class.__name__} ({role}) condenses a draft into {len(lines)} bullet(s) with its own prompt"


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
        validator = attempt(f"{getattr(validator_class, '__name__', validator_class)}(client=...)", validator_class,
                            client=make_client(transport=model))
        return validator, attempt("review(research, draft)", validator.review, research, draft)

    lax = {"issues": [], "approved": True}
    validator, verdict = review(lax, stripped)
    expect(not verdict.approved, "With a model that approves every draft, your validator approved a draft with every "
           "source note removed. A prompt asks, it does not guarantee: add a check in code in `review`.")
    expect(any("source" in issue.lower() for issue in verdict.issues),
           "Rejecting is right; also say why, with an issue that names the missing source.")
    # one note lost, the others kept, and its points citing another note instead (as many notes as before): a
    # check that asks "is there any source?" or "are there enough?" lets it through
    distinct = list(dict.fromkeys(notes))
    for note in dict.fromkeys((distinct[0], distinct[-1])):
        other = next((n for n in distinct if n != note), "")
        verdict = review(lax, faithful.replace(note, other))[1]
        expect(not verdict.approved, f"Your validator approved a draft that lost one source note, {note}, and kept "
               "the others (as many notes as before). Check that each note of the research is in the draft, not "
               "only that the draft has some sources, or enough of them.")
        expect(any("source" in issue.lower() for issue in verdict.issues),
               f"Rejecting the draft that lost {note} is right; also say why, with an issue that names it.")
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


def _saved_of_run(saved: Any) -> dict[str, str]:
    """What a run saved, as `memory.scoped(run_id).get_all()` gives it; a hint for the whole memory instead."""
    expect(isinstance(saved, dict), "Pass what the run saved: memory.scoped(run_id).get_all(), a dict.")
    expect("research" in saved or not any(str(k).endswith("/research") for k in saved), "These are the keys of "
           "the whole memory (run/key): pass what this run saved, memory.scoped(run_id).get_all().")
    return saved


def check_refused_run(result: Any, saved: Any) -> str:
    """03.1: a refusing writer stops the run cleanly: failed, with the reason, and no draft saved."""
    expect(isinstance(result, RunResult), f"Pass the run's result (what Orchestrator.run returned), not "
           f"{type(result).__name__}.")
    saved = _saved_of_run(saved)
    expect(result.status == "failed", f"The run's status is {result.status!r}; a refusal should stop it as 'failed'.")
    expect("refused" in result.reason, f"The run failed, but not for a refusal ({result.reason}): use "
           "OfflineTransport(faults=\"refusal@writer\").")
    expect("research" in saved, "The research step ran before the refusal: it should be in memory. Pass what this "
           "run saved, memory.scoped(run_id).get_all().")
    expect(not any(k.startswith("draft") for k in saved), "A refusal must never be saved as a draft.")
    expect(result.report == "" and result.draft == "", "A refused run has no report and no draft.")
    return "the refusal stopped the run as failed, with the reason, and saved no draft"


def _agent_role(call: Any) -> str:
    """A call as the learner recorded it (an agent's name or role, or the agent itself) as its role.

    >>> [_agent_role(c) for c in ["Writer", "validator", "Writer (claude-haiku-4-5)"]]
    ['writer', 'validator', 'writer']
    """
    text = call if isinstance(call, str) else getattr(call, "role", None)
    return text.split()[0].lower() if isinstance(text, str) and text.strip() else repr(call)


def check_resume(calls_on_resume: Any, resumed: Any, clean: Any) -> str:
    """03.2: a resume after a crash at the revision makes only the missing calls.

    The calls may be recorded by agent name ("Writer"), by role ("writer") or as the agents themselves."""
    for name, result in (("resumed", resumed), ("clean", clean)):
        expect(isinstance(result, RunResult), f"Pass as `{name}` the result of that run (what Orchestrator.run "
               f"returned), not {type(result).__name__}.")
    expect(resumed.run_id != clean.run_id, f"`resumed` and `clean` are the same run ({resumed.run_id!r}): compare "
           "the resumed run with a clean run of its own.")
    expect(isinstance(calls_on_resume, (list, tuple)), "Pass the list your hook filled during the resume.")
    roles = [_agent_role(call) for call in calls_on_resume]
    expect(resumed.status == "approved", f"The resumed run ended as {resumed.status!r}, not 'approved'.")
    expect(roles == ["writer", "validator"],
           f"The resume made these calls: {list(calls_on_resume)}. After a crash at the revision, only the "
           "revision (Writer) and its check (Validator) are missing. Record agent.name (or agent.role) in the "
           "hook, around the resume only.")
    expect(resumed.usage.calls == clean.usage.calls, f"The whole run made {resumed.usage.calls} calls, a clean "
           f"run {clean.usage.calls}: it should make as many (compare like with like, both offline).")
    return "the resume repeated no completed call"


CHECKS: dict[str, Callable[..., str]] = {
    "01.1": check_json_value,
    "01.2": check_keys_method,
    "02.1": check_specialist,
    "02.2": check_strict_validator,
    "03.1": check_refused_run,
    "03.2": check_resume,
}
