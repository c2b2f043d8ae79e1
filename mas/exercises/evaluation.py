"""Checks for the exercises of notebook 12: evaluating agents (see `mas.exercises`)."""

from __future__ import annotations

import hashlib
import re
from typing import Any, Callable

from mas.exercises.core import expect
from mas.prompts import SYSTEM_PROMPTS


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
    return f"{name} passes all {len(rs)} cases"


def check_title_grader(grader: Callable[..., Any], outcome: Any) -> str:
    """12.2: a grader that passes a report with a markdown title line and fails one without."""
    from mas.evals import Grade, Outcome

    good = grader(outcome)
    expect(isinstance(good, Grade), f"A grader returns a Grade(grader, passed, score, note), not {type(good).__name__}.")
    expect(good.passed and 0 <= good.score <= 1, f"Your grader failed a report that has a title: {good.note or good}")
    untitled = re.sub(r"^# .*\n+", "", outcome.result.report, count=1, flags=re.M)
    bad = grader(Outcome(outcome.case, outcome.result.model_copy(update={"report": untitled}), outcome.research))
    expect(not bad.passed, "Your grader passed a report with no title line (`# ...` as its first line): check the "
           "first line of result.report.")
    return f"{good.grader!r} passes a titled report and fails one without a title"


CHECKS: dict[str, Callable[..., str]] = {
    "12.1": check_word_limit_variant,
    "12.2": check_title_grader,
}
