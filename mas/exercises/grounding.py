"""Checks for the exercises of notebook 11: tools and grounded research (see `mas.exercises`)."""

from __future__ import annotations

from typing import Any, Callable

from mas.exercises.core import NotYet, expect
from mas.prompts import CITATION


def check_your_document_is_cited(result: Any, index: Any, doc_id: str) -> str:
    """11.1: a grounded run over a folder the learner added a document to; its approved report cites a passage
    of that document, and every citation resolves to a passage of the index."""
    expect(doc_id in index.document_ids(), f"No document {doc_id!r} in your index: write the file into the docs "
           f"folder, then `index.add_folder(DOCS)` (its ids so far: {', '.join(index.document_ids())}).")
    expect(result.status == "approved", f"The run ended as {result.status!r} ({result.reason}): give it a topic "
           "your documents cover, with a GroundedResearcherAgent over your index as its researcher.")
    cited = CITATION.findall(result.report)
    expect(bool(cited), "The report cites no passage: was the researcher a GroundedResearcherAgent(index, ...)?")
    unknown = [pid for pid in cited if index.passage(pid) is None]
    expect(not unknown, f"The report cites {', '.join(unknown)}, which your index does not hold: pass the same "
           "index to the researcher and to this check.")
    expect(any(pid.split("#")[0] == doc_id for pid in cited),
           f"The report cites {', '.join(sorted({pid.split('#')[0] for pid in cited}))}, not {doc_id!r}: ask about "
           "what your new document says, so the search finds it.")
    return f"the approved report cites your document ({sum(p.split('#')[0] == doc_id for p in cited)} time(s))"


def check_miscitation_caught(miscite: Callable[[str], str], report: str, research: str, validator: Any,
                             index: Any) -> str:
    """11.2: `miscite(report)` moves a citation to another real passage and changes nothing else; the validator
    does not approve the result."""
    expect(callable(miscite), "Pass your function miscite(report) itself, not what it returned.")
    expect(bool(CITATION.findall(report)), "The report you passed cites no passage: pass the grounded run's "
           "report, result.report.")
    approved = validator.review(research, report)
    expect(approved.approved, "Your validator does not approve the report itself"
           + (f" ({approved.issues[0][:80]})" if approved.issues else "") + ": pass the approved run's report, its "
           "research (memory.scoped(run_id).get('research')) and GroundedValidatorAgent(index, client=client), so "
           "that a rejection is the mis-citation's doing.")
    try:
        changed = miscite(report)
    except Exception as err:  # the learner's function: one line, not a traceback
        raise NotYet(f"miscite(report) raised {type(err).__name__}: {err}") from None
    expect(isinstance(changed, str) and changed != report, "miscite(report) should return the report with one "
           "citation changed, as a new string.")
    expect(CITATION.sub("", changed) == CITATION.sub("", report), "Change only a citation, (source: ID): every "
           "other character of the report stays as it is.")
    moved = sum(a != b for a, b in zip(CITATION.findall(changed), CITATION.findall(report)))
    expect(moved == 1, f"miscite moved {moved} citations: move one (str.replace(old, new, 1) replaces only the "
           "first).")
    wrong = [pid for pid in CITATION.findall(changed) if index.passage(pid) is None]
    expect(not wrong, f"{', '.join(wrong)} is no passage of the index: cite another real passage (an id from "
           "index.search(...)), so that only the checker of what a passage says can catch it.")
    verdict = validator.review(research, changed)
    expect(not verdict.approved, "The validator approved the mis-cited report. Did you move the citation to a "
           "passage that says something else?")
    return (f"{moved} citation(s) moved, and the validator did not approve the report: {len(verdict.issues)} "
            f"issue(s){', e.g. ' + verdict.issues[0][:90] if verdict.issues else ''}")


CHECKS: dict[str, Callable[..., str]] = {
    "11.1": check_your_document_is_cited,
    "11.2": check_miscitation_caught,
}
