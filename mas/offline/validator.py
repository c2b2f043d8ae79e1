"""The offline validator: a real check of a draft against the research, on the criteria its prompt names.

Coverage (a point no sentence says), support (a sentence the research does not support), figures (one that
contradicts the research), clarity (a run-on sentence); strict adds sources and attributions, more tightly;
lenient keeps omissions and wrong figures; "approve every draft" approves anything; a named criterion adds
its check, and "check only ..." keeps just the named ones.

Simplified on purpose: "supported" means most of a sentence's content words occur in the research. That
catches the offline writer's flaws and invented sentences; it is not a fact-checker for arbitrary prose.
"""

from __future__ import annotations

import re

from mas.offline import prose
from mas.offline.instructions import Instructions, read
from mas.prompts import CITATION, tag

DEFAULT_CRITERIA = frozenset({"coverage", "support", "numbers", "clarity"})  # a prompt that names none


def validate(task: str, ins: Instructions) -> dict:
    research_text = tag(task, "research")
    draft = tag(task, "draft")
    if research_text is None or draft is None:
        return {"issues": ["The task must give the research in <research> tags and the draft in <draft> tags."],
                "approved": False}
    if ins.approve_all:
        return {"issues": [], "approved": True}
    audience = ins.audience or _draft_audience(draft)
    criteria = ins.criteria if ins.criteria_only and ins.criteria else DEFAULT_CRITERIA | ins.criteria
    issues = check_draft(draft, research_text, criteria, ins.strictness,
                         word_limit=(ins.count("word").n if ins.count("word") else None), audience=audience)
    return {"issues": issues, "approved": not issues}


def compare(task: str) -> dict:
    """A judge's preference between two reports on the same research (`mas.prompts.compare_task`): the one with
    fewer issues (the validator's check); on a tie, the first one shown. That is a judge's position bias, which
    LLM judges measurably have (Zheng et al., "Judging LLM-as-a-Judge with MT-Bench and Chatbot Arena", NeurIPS
    2023): the offline judge has it on purpose and always in the same way, so a notebook can show it and its
    fix (judge both orders, and count only a preference that survives the swap)."""
    research_text, a, b = tag(task, "research"), tag(task, "report_a"), tag(task, "report_b")
    if research_text is None or a is None or b is None:
        return {"better": "tie", "reason": "The task must give <research>, <report_a> and <report_b>."}
    issues_a, issues_b = check_draft(a, research_text), check_draft(b, research_text)
    if len(issues_a) == len(issues_b):
        return {"better": "A", "reason": f"Both reports have {len(issues_a)} issue(s); report A reads better."}
    better, worse = ("A", issues_b) if len(issues_a) < len(issues_b) else ("B", issues_a)
    return {"better": better, "reason": f"The other report has more issues, e.g. {worse[0][:100]}"}


def _draft_audience(draft: str) -> str | None:
    m = re.search(r"^\*?A briefing for (.+?)\.\*?$", draft, re.M)
    return read("", "", m.group(1)).audience if m else None


def check_draft(draft: str, research_text: str, criteria: frozenset[str] = DEFAULT_CRITERIA,
                strictness: str = "default", word_limit: int | None = None, audience: str | None = None) -> list[str]:
    """The validator's check of a draft against the research, on the criteria given:
    coverage (research points left out), support (sentences the research does not support), numbers
    (a figure that contradicts the research), clarity (run-on sentences), sources (a claim with no source),
    length (over `word_limit`), audience (sentences too dense for beginners). Lenient checks fewer things,
    more loosely; strict checks more, more tightly."""
    if not draft.strip():
        return ["The draft is empty."]
    lenient, strict = strictness == "lenient", strictness == "strict"
    if lenient:
        criteria = criteria & {"coverage", "numbers"}
    if strict:
        criteria = criteria | {"clarity", "sources"}
    need = 0.5 if lenient else 0.85 if strict else 0.7
    research_words = prose.stems(research_text)
    draft_words = prose.stems(draft)
    points = prose.bullets_of(research_text)
    claims = prose.claims(draft)
    issues = []
    if "coverage" in criteria:  # a point is covered when one sentence of the draft says most of it
        said = [{prose.stem(w) for w in prose.words(prose.text_only(c))} for c in claims] or [draft_words]
        for point in points:
            if prose.content(prose.text_only(point)) and max(prose.share(point, s) for s in said) < need:
                issues.append(f"Missing point from the research: {prose.as_sentence(prose.text_only(point))}")
    for sentence in claims:
        text = prose.text_only(sentence)
        words = prose.content(text)
        if "support" in criteria and len(words) >= 3 and prose.share(text, research_words) < need:
            issues.append(f'Unsupported claim, not in the research: "{sentence}"')
            continue
        if "support" in criteria and (wrong_citation := _miscited(sentence, text, points, need)):
            issues.append(wrong_citation)
            continue
        if "numbers" in criteria and (wrong := _contradiction(text, points)):
            issues.append(f'Number contradicts the research: the draft says "{wrong[0]}" where the research says '
                          f'"{wrong[1]}", in "{prose.short(sentence)}"')
        if "clarity" in criteria and len(text.split()) > prose.LONG_SENTENCE:
            issues.append(f'Unclear section: a sentence of {len(text.split())} words; split it: '
                          f'"{prose.short(sentence)}"')
        elif ("audience" in criteria and audience == "beginner" and len(text.split()) > prose.BEGINNER_SENTENCE
              and any(joint in text for joint in prose.JOINTS)):
            issues.append(f'Too dense for beginners: a sentence of {len(text.split())} words runs two ideas together; '
                          f'split it: "{prose.short(sentence)}"')
        if "sources" in criteria and "(source:" not in sentence and len(words) >= 3:
            issues.append(f'No source for the claim: "{prose.short(sentence)}"')
    if strict:  # a strict editor keeps the research's attributions: each of its sources stays in the draft
        for source in dict.fromkeys(s[len("(source:"):-1].strip() for p in points for s in prose.SOURCE.findall(p)):
            if source not in draft:
                issues.append(f"Source dropped from the draft: (source: {source})")
    if "length" in criteria and word_limit and (n := len(prose.drop_notes(draft).split())) > word_limit:
        issues.append(f"Too long: the draft has {n} words; the limit is {word_limit}.")
    return issues


def _miscited(sentence: str, text: str, points: list[str], need: float) -> str | None:
    """For a claim that cites passages (grounded research): the issue when the research points that cite the
    same passages do not say it, or when no point cites them; None when they do, or it cites none."""
    cited = CITATION.findall(sentence)
    if not cited:
        return None
    sources = [p for p in points if set(CITATION.findall(p)) & set(cited)]
    if not sources:
        return f'Unknown citation: the draft cites {", ".join(cited)}, which no research point does: "{prose.short(sentence)}"'
    if prose.share(text, prose.stems(" ".join(prose.text_only(p) for p in sources))) < need:
        return (f'Mis-cited claim: "{prose.short(sentence)}" cites {", ".join(cited)}, '
                "which does not say it")
    return None


def _contradiction(text: str, points: list[str]) -> tuple[str, str] | None:
    """(the draft's number, the research's) when a sentence restates a research point with another figure."""
    found = prose.figures(text)
    if not found:
        return None
    words = set(prose.stem(w) for w in prose.content(text))
    anywhere = {n for p in points for n in prose.numbers(prose.text_only(p))}
    strange = [mine for mine in found if mine not in anywhere]
    if not strange:
        return None

    # the research points this sentence restates (a run-on sentence restates two), best first
    restated = sorted((p for p in map(prose.text_only, points) if prose.share(p, words) >= 0.6),
                      key=lambda p: prose.share(p, words), reverse=True)
    for point in restated:
        figures = prose.figures(point)
        # the research's figure the sentence has fewer of (the one changed), else the point's first
        theirs = [t for t in figures if found.count(t) < figures.count(t)] or figures
        if theirs:
            return strange[0], theirs[0]
    return None
