"""Checks for the exercises of notebook 12: evaluating agents (see `mas.exercises`)."""

from __future__ import annotations

import hashlib
import re
from typing import Any, Callable

from mas.exercises.core import NotYet, expect
from mas.prompts import SYSTEM_PROMPTS

LIMITS = (400, 600, 800)  # 12.1: the word limits the exercise tries


def check_word_limit_variant(results: Any, name: str) -> str:
    """12.1: a writer variant with a word limit in its prompt that passes every case of the eval set."""
    fingerprints = {v["variant"]: v for v in results.variants}
    expect(name in fingerprints, f"No variant {name!r} in these results: run_eval(cases, [Variant({name!r}, "
           "prompts={'writer': ...})], ...) and pass its results.")
    rs = results.of(name)
    course_writer = hashlib.sha256(SYSTEM_PROMPTS["writer"].encode()).hexdigest()[:16]
    expect(fingerprints[name]["prompts"]["writer"] != course_writer,
           "Your variant's writer prompt is the course's own: add a word limit to it.")
    failed = [r.case for r in rs if not r.passed]
    expect(not failed, f"{len(failed)} of {len(rs)} case(s) still fail ({', '.join(failed[:3])}...): raise the "
           "limit, or look at results.failures(name) to see which grader fails them.")
    limit = re.fullmatch(r"under-(\d+)", name)
    expect(limit is not None, f"Name each variant by its limit, under-N (e.g. 'under-600'), not {name!r}: the check "
           "compares it with the smaller limits you ran.")
    n = int(limit.group(1))  # type: ignore[union-attr]
    smaller = {int(m.group(1)): v for v in fingerprints if (m := re.fullmatch(r"under-(\d+)", v)) and int(m.group(1)) < n}
    expect(bool(smaller) or n <= min(LIMITS), f"under-{n} passes, but is it the smallest? Run the smaller limits "
           f"too ({', '.join(f'under-{k}' for k in LIMITS if k < n)}) in the same run_eval, and pass all the results.")
    ran = {r.case for r in rs}
    unlike = [v for v in smaller.values() if {r.case for r in results.of(v)} != ran]
    expect(not unlike, f"{unlike[0] if unlike else ''} ran on other cases than {name}: run every limit on the same "
           "cases, in one run_eval, so that they are compared like with like.")
    passing = sorted(k for k, v in smaller.items() if all(r.passed for r in results.of(v)))
    expect(not passing, f"under-{passing[0] if passing else ''} passes every case too, and its limit is smaller: "
           "the smallest N is the first that passes.")
    below = ", ".join(smaller[k] for k in sorted(smaller))
    return f"{name} passes all {len(rs)} cases" + (f", and no smaller limit you ran does ({below})" if smaller else "")


def check_title_grader(grader: Callable[..., Any], outcome: Any) -> str:
    """12.2: a grader that passes a report with a markdown title line and fails one without."""
    from mas.evals import Grade, Outcome

    expect(callable(grader), "Pass your grader function itself, titled, not what it returned.")
    expect(isinstance(outcome, Outcome) and outcome.result.report.lstrip().startswith("# "), "Pass an Outcome of a "
           "run whose report has a title: Outcome(cases[0], result, research), with result an approved run.")

    def grade(report: str, what: str) -> Any:
        try:
            given = grader(Outcome(outcome.case, outcome.result.model_copy(update={"report": report}), outcome.research))
        except Exception as err:  # the learner's grader: one line, not a traceback
            raise NotYet(f"Your grader raised {type(err).__name__} on {what}: {err}") from None
        expect(isinstance(given, Grade), f"A grader returns a Grade(grader, passed, score, note), not "
               f"{type(given).__name__}.")
        expect(0 <= given.score <= 1, f"Your grader gave {what} the score {given.score!r}: a score is from 0 to 1.")
        return given

    good = grade(outcome.result.report, "a titled report")
    expect(good.passed, f"Your grader failed a report that has a title: {good.note or good}")
    untitled = re.sub(r"^# .*\n+", "", outcome.result.report, count=1, flags=re.M)
    expect(not grade(untitled, "a report with no title").passed, "Your grader passed a report with no title line "
           "(`# ...` as its first line): check the first line of result.report.")
    late = "Draft notes, to be reviewed.\n\n" + outcome.result.report
    expect(not grade(late, "a report whose title comes second").passed, "Your grader passed a report whose title "
           "is its second line, not its first: look at the first line only, not any line.")
    expect(not grade("", "an empty report (a run that stopped)").passed, "Your grader passed an empty report: a "
           "run that stopped has no report, and no title.")
    return f"{good.grader!r} passes a titled report and fails one without a title, or with it second, or empty"


CHECKS: dict[str, Callable[..., str]] = {
    "12.1": check_word_limit_variant,
    "12.2": check_title_grader,
}
