"""Checks for the exercises of notebook 13: the tutorial's four files (see `mas.exercises`).

Both checks run the learner's code on the tutorial's own files (the notebook writes them; the checks take what
it built from them, and import nothing of them): 13.1 a memory class, tried on a file of its own, then the two
runs the learner made with it; 13.2 a loop function, run on agents from the notebook's `team(writer_says)`.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Callable

from mas.exercises.core import NotYet, attempt, expect

TOPIC, AUDIENCE = "How vector databases enable semantic search", "senior software engineers"
STUBBORN = " Ignore the feedback."  # the notebook's `stubborn`: offline, this writer's drafts are never approved


def _one_run(run: Any, which: str) -> tuple[dict, int]:
    expect(isinstance(run, (tuple, list)) and len(run) == 2 and isinstance(run[0], dict),
           f"Pass each run as (result, calls): the dict `Orchestrator.run` returned and how many calls its agents "
           f"made (sum(agent.calls for agent in crew)); the {which} run is {type(run).__name__}.")
    result, calls = run
    expect(isinstance(calls, int) and not isinstance(calls, bool),
           f"The {which} run's calls should be a number, sum(agent.calls for agent in crew), not {calls!r}.")
    expect("report" in result and "status" in result, f"The {which} run's result has no 'report' or 'status': pass "
           "what orchestrator.Orchestrator(...).run(...) returned.")
    return result, calls


def check_json_file_memory(memory_class: Any, first: Any, second: Any) -> str:
    """13.1: `JSONFileMemory(path)` gets, sets and lists by prefix, keeps everything in its one file (a new object
    on the same file sees what the first one wrote), and the learner's second run with it asked the model nothing
    and returned the first run's report. `first` and `second` are (result, calls) of the two runs."""
    expect(isinstance(memory_class, type), "Pass your class itself, JSONFileMemory, not an object of it: the check "
           f"makes its own, on a file of its own (you passed {type(memory_class).__name__}).")
    name = memory_class.__name__
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "memory.json"
        store = attempt(f"{name}(path) on a file that does not exist yet", memory_class, path)
        expect(attempt("get('missing')", store.get, "missing") is None,
               "get(key) of a key never set should return None (the default), as dict.get does.")
        expect(attempt("get('missing', 'none')", store.get, "missing", "none") == "none",
               "get(key, default) of a key never set should return the default.")
        written = {"run_a/topic": "vector search", "run_a/validation_1": {"approved": False, "issues": ["no sources"]},
                   "run-a/draft_1": "another run", "xrun_a/draft_1": "not run_a's"}
        for key, value in written.items():
            attempt(f"set({key!r}, ...)", store.set, key, value)
        attempt("set('run_a/topic', ...)", store.set, "run_a/topic", "vector databases")  # an update
        written["run_a/topic"] = "vector databases"
        got = attempt("get('run_a/validation_1')", store.get, "run_a/validation_1")
        expect(got == written["run_a/validation_1"], f"get() gives back {got!r} for a key set to "
               f"{written['run_a/validation_1']!r}: a verdict (a dict) should come back as the dict it was.")
        got = attempt("get('run_a/topic')", store.get, "run_a/topic")
        expect(got == "vector databases", f"After set('run_a/topic', 'vector search') then set('run_a/topic', "
               f"'vector databases'), get('run_a/topic') gives {got!r}: a second set() of a key replaces its value.")
        want = {key: value for key, value in written.items() if key.startswith("run_a/")}
        items = attempt("items('run_a/')", store.items, "run_a/")
        expect(isinstance(items, dict), f"items(prefix) should return a dict {{key: value}}, not "
               f"{type(items).__name__} (Namespace.items() reads it with .items()).")
        expect(items == want, f"items('run_a/') gave the keys {sorted(items)}, not {sorted(want)}: every key that "
               "starts with the prefix (str.startswith), with its value, and no other (not 'run-a/...', nor "
               "'xrun_a/...').")
        every = attempt("items('')", store.items, "")
        expect(every == written, f"items('') should give every key, {sorted(written)}; it gave {sorted(every or {})}.")
        expect(path.exists(), f"After set(), there is no file at the path {name} was given: write the whole memory "
               "to that file on every set(), so that a crash keeps what was set.")
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise NotYet(f"The file {name} writes is not JSON: write it with json.dumps (or json.dump) of the "
                         "whole memory.") from None
        again = attempt(f"{name}(path) on a file that exists", memory_class, path)  # as a second process would
        seen = attempt("get('run_a/validation_1')", again.get, "run_a/validation_1")
        expect(seen == written["run_a/validation_1"], f"A new {name} on the same file does not see what the first "
               f"one set (get gave {seen!r}): read the file in __init__ when it exists, and write it in every set().")
        expect(attempt("items('run_a/')", again.items, "run_a/") == want, f"A new {name} on the same file lists "
               "other keys under items('run_a/') than the object that wrote them.")
        attempt("set('run_b/topic', ...)", again.set, "run_b/topic", "a second run")
        third = attempt(f"{name}(path)", memory_class, path)
        expect(attempt("get('run_a/topic')", third.get, "run_a/topic") == "vector databases"
               and attempt("get('run_b/topic')", third.get, "run_b/topic") == "a second run",
               f"A set() from a second {name} on the file lost what the first one wrote: rewrite the whole memory "
               "(what was read from the file, and the new key).")

    (result_1, calls_1), (result_2, calls_2) = _one_run(first, "first"), _one_run(second, "second")
    expect(calls_1 >= 3, f"Your first run made {calls_1} call(s): it should do the work (research, a draft, a "
           "verdict: 3 calls at least). Start it on a file that does not exist yet (unlink it first), so that the "
           "second run is the one that finds every step saved.")
    expect(calls_2 == 0, f"Your second run asked the model {calls_2} time(s): run it with the same run_id, on a new "
           f"{name} on the same file (as a second process would), with new agents, so that every step comes from "
           "the file.")
    expect(result_2["status"] == result_1["status"], f"The second run ended as {result_2['status']!r}, the first as "
           f"{result_1['status']!r}: the same run, resumed from the file, should end the same.")
    expect(result_2["report"] == result_1["report"], "The second run returned another report than the first: resume "
           "the same run (the same run_id) from the same file.")
    return (f"{name} gets, sets and lists by prefix, and a new object on its file sees every key; your second run "
            f"made 0 calls (the first made {calls_1}) and returned the same {result_1['status']} report")


class _Recorder:
    """Wraps the team's writer and validator methods to see, behind the learner's loop, every draft and verdict."""

    def __init__(self, writer: Any, validator: Any) -> None:
        self.drafts: list[str] = []  # every draft the writer produced, in order
        self.validated: list[tuple[str, dict]] = []  # (the draft, its verdict), in order
        for method in ("write", "revise"):
            setattr(writer, method, self._drafting(getattr(writer, method)))
        validate = validator.validate

        def validating(research: str, draft: str, *args: Any, **kwargs: Any) -> dict:
            verdict = validate(research, draft, *args, **kwargs)
            self.validated.append((draft, verdict))
            return verdict

        validator.validate = validating

    def _drafting(self, method: Callable[..., str]) -> Callable[..., str]:
        def drafting(*args: Any, **kwargs: Any) -> str:
            draft = method(*args, **kwargs)
            self.drafts.append(draft)
            return draft

        return drafting


def _run_loop(loop: Callable[..., Any], team: Callable[..., Any], writer_says: str, cycles: int | None,
              topic: str, audience: str) -> tuple[Any, int, bool, _Recorder]:
    crew = attempt(f"team({writer_says!r})", team, writer_says)
    expect(isinstance(crew, (tuple, list)) and len(crew) == 3, "Pass the notebook's team function itself, team, "
           "which returns (researcher, writer, validator).")
    researcher, writer, validator = crew
    try:
        seen = _Recorder(writer, validator)
    except AttributeError:
        raise NotYet("The team's agents have no write/revise/validate methods: pass the notebook's team, built on "
                     "the tutorial's agents.py.") from None
    args = (researcher, writer, validator, topic, audience) + (() if cycles is None else (cycles,))
    call = "fixed_loop(*team(stubborn), TOPIC, AUDIENCE" + (")" if cycles is None else f", {cycles})")
    if not writer_says:
        call = call.replace("team(stubborn)", "team()")
    out = attempt(call, loop, *args)
    expect(isinstance(out, (tuple, list)) and len(out) == 3, f"{call} should return (draft, validations, approved), "
           f"as tutorial_loop does; it returned {type(out).__name__}"
           + (f" of {len(out)}" if isinstance(out, (tuple, list)) else "") + ".")
    draft, validations, approved = out
    expect(isinstance(validations, int) and isinstance(approved, bool), f"{call} should return (draft, validations, "
           f"approved): a number of validations and a bool; it returned ({type(draft).__name__}, "
           f"{validations!r}, {approved!r}).")
    expect(validations == len(seen.validated), f"{call} says {validations} validation(s), but the validator was asked "
           f"{len(seen.validated)} time(s): count every validator.validate call.")
    expect(bool(seen.validated), f"{call} never called validator.validate.")
    return draft, validations, approved, seen


def check_fixed_loop(loop: Any, team: Any, topic: str = TOPIC, audience: str = AUDIENCE) -> str:
    """13.2: the tutorial's loop, fixed: with a writer that ignores the feedback, 3 revisions and 4 validations, the
    last one of the last revision, returned as not approved; with the usual writer, stopped at the approval; with
    cycles=1, at most 2 validations. Run on agents from the notebook's `team(writer_says)`."""
    expect(callable(loop) and not isinstance(loop, type), "Pass your loop function itself, fixed_loop, not what it "
           "returned.")
    expect(callable(team), "Pass the notebook's team function itself (team, not team()): the check makes new agents "
           "with it for every run.")
    draft, validations, approved, seen = _run_loop(loop, team, STUBBORN, None, topic, audience)
    last_draft, last_verdict = seen.validated[-1]
    verdicts = [verdict["approved"] for _, verdict in seen.validated]
    if True in verdicts[:-1] or verdicts[-1]:  # a live model may approve even this writer: the rule still holds
        expect(True not in verdicts[:-1], f"With the stubborn writer, validation {verdicts.index(True) + 1} approved "
               f"the draft, but your loop went on ({len(verdicts)} validations): stop at the first approval.")
        expect(draft == last_draft and approved is True, "Your loop stopped at an approval: return that draft and "
               "approved=True, the verdict's own verdict['approved'].")
        stubborn = f"approved at validation {len(verdicts)} (by this model)"
    else:
        expect(validations != 3 or len(seen.drafts) != 4, "With the stubborn writer your loop made 3 validations and "
               "3 revisions: it still ends on a revision nobody validated (draft 4), the tutorial's loop. Validate "
               "once more after the last revision: 3 revisions, 4 validations.")
        expect(validations <= 4, f"With the stubborn writer your loop made {validations} validations: 3 revisions "
               "(cycles) need 4, one per draft, and no more. Stop at the limit.")
        expect(validations == 4, f"With the stubborn writer your loop stopped after {validations} validation(s) of "
               "drafts no validator approved: go on up to the limit, 3 revisions, each one validated (4 validations).")
        expect(len(seen.drafts) == 4, f"The writer wrote {len(seen.drafts)} drafts for 4 validations: revise only "
               "after a verdict that is not approved, and not after the last validation (a revision nobody would "
               "read).")
        expect(draft == last_draft, "Your loop returned another draft than the one it validated last: return the "
               "last validated draft, not a revision made after it.")
        expect(approved is False, "Your loop says approved, but no verdict approved the stubborn writer's drafts: "
               "return the last verdict's approved, verdict['approved'].")
        stubborn = "4 validations, the last of the 3rd revision, returned as not approved"

    draft, validations, approved, seen = _run_loop(loop, team, "", None, topic, audience)
    verdicts = [verdict["approved"] for _, verdict in seen.validated]
    expect(verdicts[-1] or len(verdicts) == 4, "With the usual writer your loop stopped on a draft that was not "
           "approved before the limit: revise it and validate again.")
    expect(True not in verdicts[:-1], f"With the usual writer, validation {verdicts.index(True) + 1} approved the draft, "
           f"but your loop went on ({len(verdicts)} validations): stop at the first approval.")
    expect(approved == verdicts[-1], f"With the usual writer the last verdict says approved={verdicts[-1]}, and your "
           f"loop returned approved={approved}: return the last verdict's verdict['approved'].")
    expect(draft == seen.validated[-1][0], "With the usual writer your loop returned another draft than the one it "
           "validated last: return the approved draft.")
    usual = f"approved at validation {len(verdicts)}" if verdicts[-1] else "not approved after 4 validations"

    _, short, approved_1, seen = _run_loop(loop, team, STUBBORN, 1, topic, audience)
    expect(short <= 2, f"With cycles=1 your loop made {short} validations: use the cycles argument, at most cycles "
           "revisions and cycles + 1 validations (not a fixed 3).")
    expect(short == 2 or approved_1, f"With cycles=1 and the stubborn writer your loop made {short} "
           "validation(s): 1 revision, then its validation too (2).")
    return f"the stubborn writer: {stubborn}; the usual writer: {usual}; cycles=1: {short} validations"


CHECKS: dict[str, Callable[..., str]] = {
    "13.1": check_json_file_memory,
    "13.2": check_fixed_loop,
}
