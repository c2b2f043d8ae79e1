"""The offline writer: a markdown draft from the research only, with realistic flaws, and revisions.

A first draft has two flaws chosen by the topic (`first_draft_flaws`: a point left out, a figure changed,
the topic's common misconception, two points run into one unclear sentence), never on the same point, and
the ones the request asks for ("add impressive statistics", "be persuasive", "be brief"). A revision edits
the draft it is given and fixes exactly the issues it is given (`revise`); it keeps the writer's own limits,
and says in one line what it could not or would not fix.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re

from mas.offline import knowledge, prose
from mas.offline.instructions import Instructions
from mas.prompts import DEFAULT_AUDIENCE, bullets, tag


def write(task: str, ins: Instructions) -> str:
    research_text = tag(task, "research")
    research_text = task if research_text is None else research_text  # an empty <research> is empty research
    draft, issues = tag(task, "draft"), tag(task, "issues")
    if draft is not None and issues is not None:
        return revise(draft, _issue_list(issues), research_text, ins)
    points = prose.bullets_of(research_text)
    topic = tag(task, "topic") or prose.research_title(research_text) or "Briefing"
    audience = tag(task, "audience") or DEFAULT_AUDIENCE
    if not points:
        return (f"# {topic}\n\n*A briefing for {audience}.*\n\n"
                "The research given was empty, so there is nothing to write yet.")
    points, extra = apply_flaws(first_draft_flaws(topic, points, ins), points)
    return prose.within(lambda n: _draft(topic, audience, points[:n], extra, ins), len(points), ins)


def _issue_list(issues: str) -> list[str]:
    """The issues a task gives: a bullet list, or a JSON (or Python) list of strings, or one issue."""
    if issues.startswith("["):
        for parse in (json.loads, ast.literal_eval):
            try:
                given = parse(issues)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                continue
            if isinstance(given, list) and all(isinstance(i, str) for i in given):
                return given
    return bullets(issues) or [issues]


def first_draft_flaws(topic: str, points: list[str], ins: Instructions) -> list[tuple[str, int]]:
    """The flaws of a first draft, as (kind, index of the point it touches): two of omit / number / myth /
    unclear, chosen by the topic (so two topics differ), plus what the request asks for."""
    kinds = ["myth"]
    if len(points) >= 3:
        kinds.append("omit")
    numbered = [i for i, p in enumerate(points) if prose.figures(prose.text_only(p))]
    if numbered:
        kinds.append("number")
    lengths = [len(prose.text_only(p).split()) for p in points]
    runs = [i for i in range(1, len(points) - 1)  # two points that run past the clarity limit when joined
            if lengths[i] + lengths[i + 1] > prose.LONG_SENTENCE + 4]
    if runs:
        kinds.append("unclear")
    seed = int(hashlib.sha256(topic.lower().encode()).hexdigest(), 16)
    chosen = sorted(kinds, key=lambda k: hashlib.sha256(f"{seed}:{k}".encode()).hexdigest())[:2]
    flaws, used = [], {0}  # the first point is the overview's; no two flaws touch one point
    for kind in chosen:
        if kind == "myth":
            flaws.append(("myth", 0))
            continue
        candidates = {"omit": [i for i in range(1, len(points)) if i not in used],
                      "number": [i for i in numbered if i not in used],
                      "unclear": [i for i in runs if i not in used and i + 1 not in used]}[kind]
        if candidates:
            i = candidates[seed % len(candidates)]
            flaws.append((kind, i))
            used |= {i, i + 1} if kind == "unclear" else {i}
    if ins.brief:  # three points, the rest left out
        left = [i for i in range(len(points)) if ("omit", i) not in flaws]
        flaws += [("omit", i) for i in left[3:]]
    if ins.invent_statistics:
        flaws.append(("statistics", 0))
    if ins.persuasive:
        flaws.append(("persuasion", 0))
    return flaws


def apply_flaws(flaws: list[tuple[str, int]], points: list[str]) -> tuple[list[str], list[str]]:
    """The points with the flaws made, and the invented sentences the overview gains."""
    points, extra, topic_note = list(points), [], None
    known = {n for p in points for n in prose.numbers(prose.text_only(p))}
    for kind, i in flaws:
        if kind == "number":
            points[i] = _wrong_number(points[i], known)
        elif kind == "myth":
            topic_note = topic_note or knowledge.find(" ".join(points))
            extra.append(topic_note.note.myth if topic_note else
                         "Industry surveys agree it has become the standard choice for nearly every organisation.")
        elif kind == "statistics":
            seed = int(hashlib.sha256(points[0].encode()).hexdigest()[:6], 16)
            extra += [f"Adopting it cuts operating expenses by {40 + seed % 50}% within a single quarter.",
                      f"Roughly {3 + seed % 6} in 10 engineering organisations already depend on it daily."]
        elif kind == "persuasion":
            extra += ["Frankly, no serious engineering organisation can afford to ignore it any longer.",
                      "It is simply the smartest investment a team can make this year."]
    joined = {i for kind, i in flaws if kind == "unclear"}
    omitted = {i for kind, i in flaws if kind == "omit"}
    out = []
    for i, point in enumerate(points):
        if i in omitted or (i - 1) in joined and (i - 1) not in omitted:
            continue
        if i in joined and i + 1 < len(points) and i + 1 not in omitted:
            point = prose.text_only(point).rstrip(". ") + prose.JOIN + prose.lower_first(points[i + 1])
        out.append(point)
    return out, extra


def _wrong_number(point: str, known: set[str]) -> str:
    """The point with its first figure changed as a careless writer would (doubled, or more: never a
    number the research holds, so the slip is a real contradiction)."""
    found = next(m for m in prose.FIGURE.finditer(prose.text_only(point)) if not prose.YEAR.fullmatch(m.group()))
    first = found.group()
    value = int(first.replace(",", ""))
    for times in range(2, 10):
        shown = f"{value * times:,}" if "," in first else str(value * times)
        if shown not in known:
            break
    return point[:found.start()] + shown + point[found.end():]  # that figure, not an earlier "1" in "F1"


def _draft(topic: str, audience: str, points: list[str], extra: list[str], ins: Instructions) -> str:
    sentences = [prose.as_sentence(p) for p in points]
    if ins.audience == "beginner":  # fewer points: the basics (the research for beginners puts them first)
        sentences = sentences[:prose.BEGINNER_FACTS]
    if count := ins.count("sentence"):  # the invented sentences count too: they are what it wrote
        sentences = sentences[:max(1, count.limit(len(sentences) + len(extra)) - len(extra))]
    title = topic[:1].upper() + topic[1:]
    overview, rest = [sentences[0], *extra], sentences[1:]
    if count := ins.count("item"):  # the key points: the overview is not one of them
        rest = rest[:count.limit(len(rest))]
    layout = ins.layout or "prose"
    body = prose.layout(rest, ins, "prose", ("Point", "Source"))
    if (paragraphs := ins.count("paragraph")) and layout == "prose":
        body = _paragraphs(rest, paragraphs.n)
    plain = ins.plain or ins.headings is False
    parts = [*prose.cannot_lines(ins)]
    if ins.audience == "expert" and ins.layout is None:  # denser: one paragraph, no overview
        parts += [title if plain else f"# {title}", " ".join(overview + rest)]
    elif plain:
        parts += [title, f"A briefing for {audience}.", " ".join(overview), body]
    else:
        parts += [f"# {title}", f"*A briefing for {audience}.*", "## Overview", " ".join(overview)]
        if body:
            parts += ["## Key points", body]
    return "\n\n".join(p for p in parts if p).strip()


def _paragraphs(sentences: list[str], n: int) -> str:
    if n <= 0 or not sentences:
        return " ".join(sentences)
    size = -(-len(sentences) // n)
    return "\n\n".join(" ".join(sentences[i:i + size]) for i in range(0, len(sentences), size))


def revise(draft: str, issues: list[str], research_text: str, ins: Instructions) -> str:
    """The draft with exactly the given issues fixed (or unchanged, when told to ignore the feedback)."""
    if ins.ignore_feedback:
        return draft
    points = prose.bullets_of(research_text)
    unhandled = []
    for issue in issues:
        fixed = _fix(draft, issue, points)
        if fixed is None:
            unhandled.append(("it could not act on this issue", issue))
        elif (broken := _broken_limit(fixed, ins)) and not _broken_limit(draft, ins):
            unhandled.append((f"it did not act on this issue, since fixing it would break {broken}", issue))
        else:
            draft = fixed
    draft = re.sub(r"\n{3,}", "\n\n", re.sub(r"[ \t]{2,}", " ", draft)).strip()
    for why, issue in unhandled:
        draft += f"\n\n_Offline model: {why}: {prose.short(' '.join(issue.split()), 20)}_"
    return draft


def _broken_limit(draft: str, ins: Instructions) -> str | None:
    """The writer's own limit (a count of points, sentences or words) a draft breaks, if any."""
    said = prose.claims(draft)
    for unit, n in (("item", len(said) - 1), ("sentence", len(said)), ("word", len(prose.drop_notes(draft).split()))):
        count = ins.count(unit)
        if count and count.mode != "at least" and n > count.n:
            return f"the limit of {count}"
    return None


def _fix(draft: str, issue: str, points: list[str]) -> str | None:
    quoted = re.findall(r'"([^"]{8,})"', issue)
    if issue.startswith("Missing point") or issue.startswith("Left out"):
        point = _best_point(issue, points)
        return _add_point(draft, point) if point else None
    if m := re.search(r'says "([^"]+)" where the research says "([^"]+)", in "(.+)"', issue):
        sentence = _sentence_starting(draft, m.group(3).rstrip(". "))
        pattern = r"(?<![\w.,])" + re.escape(m.group(1)) + r"(?![\w]|[.,]\d)"
        if sentence is None or not re.search(pattern, sentence):
            return None
        return draft.replace(sentence, re.sub(pattern, m.group(2), sentence, count=1), 1)
    if issue.startswith(("Unclear section", "Too dense")) and quoted:
        sentence = _sentence_starting(draft, quoted[-1].rstrip(". "))
        if sentence is None:
            return None
        split = prose.split_sentence(sentence)
        head = split.split(". ", 1)[0]
        point = _best_point(head, points) if split != sentence and "(source:" not in head else None
        if point and "(source:" in point:  # the first half gets back the source it lost when it was run in
            split = split.replace(head + ". ", prose.as_sentence(point) + " ", 1)
        return draft.replace(sentence, split, 1)
    if issue.startswith("No source") and quoted:
        sentence = _sentence_starting(draft, quoted[-1].rstrip(". "))
        point = _best_point(sentence or "", [p for p in points if "(source:" in p])
        if sentence and point:
            return draft.replace(sentence, prose.as_sentence(point), 1)
        return draft.replace(sentence, "", 1) if sentence else None
    if issue.startswith("Source dropped"):
        named = issue.partition(": ")[2]
        point = next((p for p in points if named and named in p), None)
        if point is None:
            return None
        named = named.removeprefix("(source: ").removesuffix(")")
        sentence = _sentence_starting(draft, prose.text_only(point).rstrip(". ")[:80])
        if sentence is None:
            return _add_point(draft, point)
        return draft.replace(sentence, prose.as_sentence(point), 1) if "(source:" not in sentence else (
            draft.replace(sentence, sentence + f" (source: {named})", 1))
    if m := re.search(r"the limit is (\d+)", issue):
        return _cut_words(draft, int(m.group(1)))
    for text in quoted:  # "Unsupported claim ...: "S"", or any issue that quotes a sentence of the draft
        sentence = _sentence_starting(draft, text.rstrip(". "))
        if sentence:
            return draft.replace(sentence, "", 1)
    point = _best_point(issue, points)
    if point and not prose.covers(draft, point):
        return _add_point(draft, point)
    return None


def _best_point(text: str, points: list[str]) -> str | None:
    said = {prose.stem(w) for w in prose.content(text)}
    best = max(((prose.share(p, said), p) for p in points), default=(0.0, None))
    return best[1] if best[0] >= 0.6 else None


def _add_point(draft: str, point: str) -> str:
    lines = draft.rstrip().splitlines()
    if lines and lines[-1].startswith("|"):  # a table: one more row
        text, source = prose.split_source(point)
        return draft.rstrip() + f"\n| {prose.as_sentence(text).replace('|', '/')} | {source.replace('|', '/')} |"
    items = [line for line in lines if re.match(r"(\d+)\. |- ", line)]
    if items and items[-1] == lines[-1]:
        m = re.match(r"(\d+)\. ", items[-1])
        return draft.rstrip() + "\n" + (f"{int(m.group(1)) + 1}. " if m else "- ") + prose.as_sentence(point)
    return draft.rstrip() + "\n\n" + prose.as_sentence(point)


def _sentence_starting(draft: str, text: str) -> str | None:
    """The whole sentence of the draft that contains `text` (an issue may quote a shortened one)."""
    text = text.removesuffix("...").removesuffix("\u2026").strip()
    for sentence in prose.claims(draft):
        if text and (text in sentence or (len(sentence.split()) >= 6 and sentence in text)):
            return sentence
    return None


def _cut_words(draft: str, limit: int) -> str:
    out, total = [], 0
    for block in draft.split("\n\n"):
        n = len(block.split())
        if total + n > limit and not block.startswith("#") and out:
            break
        out.append(block)
        total += n
    return "\n\n".join(out)


# --------------------------------------------------------------------------- validator
