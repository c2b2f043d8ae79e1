"""What the offline model says: a researcher, a writer and a validator that behave like their roles.

The role comes from what a prompt asks for (a verdict in the JSON shape, a draft from research, research
notes on a topic), the instructions from the vocabulary in `instructions.py`, the facts from the knowledge
base (`knowledge.py`). Tasks are read by their XML tags (`<topic>`, `<audience>`, `<research>`, `<draft>`,
`<issues>`), the prompting style Anthropic recommends and the one `mas.agents` uses.

- researcher: the facts of the note the topic names, chosen and laid out as the prompt asks (focus, count,
  audience, sources, format), or one "No research:" line naming the nearest notes when it has none;
- writer: a markdown draft from the research only. A first draft has realistic, deterministic flaws that
  depend on the topic and on the request (`first_draft_flaws`); a revision edits the draft it is given and
  fixes exactly the issues it is given;
- validator: JSON `{"issues": [...], "approved": bool}` from a real check of the draft against the research,
  on the criteria its prompt names, as strictly as it is told;
- anything else: a short reply that follows what it can of the instructions.

Simplified on purpose: "supported" means most of a sentence's content words occur in the research. That
catches the offline writer's flaws and invented sentences; it is not a fact-checker for arbitrary prose.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re

from mas.offline import knowledge
from mas.offline.instructions import Instructions, focus_of_angle, outside_tags, read
from mas.offline.knowledge import ASPECTS
from mas.prompts import DEFAULT_AUDIENCE, NO_RESEARCH, bullets, tag

_ROLE_WORDS = {"researcher": "researcher", "writer": "writer", "validator": "validator",
               "fact-checker": "validator", "reviewer": "validator", "editor": "validator"}
_STOPWORDS = set("""about above after again against also among and are because been before being below between both but
by can could does doing down during each either every few for from further had has have having here how into its itself
just more most much must need needs not now off once only other our out over own same shall should some such than that
the their them then there these they this those through too under until upon very was were what when where which while
who whom why will with within would you your yours usually often so""".split())
JOIN = ", and in addition, "  # how the "unclear" flaw runs two points into one sentence
LONG_SENTENCE = 45  # words (sources aside): the clarity check's limit
BEGINNER_FACTS, BEGINNER_SENTENCE = 5, 25  # facts; words of a sentence that runs two ideas together


_VERDICT_SHAPE = re.compile(r"""["']approved["']|\bapproved\s*[:=]|\{\s*["']issues["']|\bverdict\b""")


def detect_role(system: str, task: str = "", fields: tuple[str, ...] = ()) -> str | None:
    """The role a request asks for: a verdict in the JSON shape (in the words, or the fields of its output
    schema), a check of a draft against research, a draft, or research notes.

    >>> detect_role('Answer with {"issues": [...], "approved": true|false}.')
    'validator'
    >>> detect_role("You are a technical writer. You turn a researcher's notes into a draft.")
    'writer'
    >>> detect_role("Gather the key facts about a topic as concise bullet points.", "<topic>RAG</topic>")
    'researcher'
    >>> detect_role("Be helpful.") is None
    True
    """
    # the task's tags first (what it asks for), then the verdict's JSON shape, then the prompt's words
    if "<research>" in task and "<draft>" in task:
        return "writer" if "<issues>" in task else "validator"
    if "<research>" in task:
        return "writer"
    words = (system + "\n" + outside_tags(task)).lower()
    if _VERDICT_SHAPE.search(words) or "approved" in fields:
        return "validator"
    found = [(m.start(), _ROLE_WORDS[m.group(1)]) for m in re.finditer(r"\b(" + "|".join(_ROLE_WORDS) + r")s?\b",
                                                                       system.lower())]
    if found:
        return min(found)[1]
    if re.search(r"\b(draft|write an? (article|report|briefing))\b", system.lower()):
        return "writer"
    if re.search(r"\b(research|key facts|gather|notes on)\b", system.lower()) or "<topic>" in task:
        return "researcher"
    return None


# --------------------------------------------------------------------------- researcher

def research(task: str, ins: Instructions) -> str:
    topic = topic_of(task)
    subject, _, angle = topic.partition(": ")  # "Topic: angle", as parallel research asks
    match = knowledge.find(subject)
    if match is None:
        near, close = knowledge.nearest(subject)
        names = "; ".join(note.topic for note in near)
        return (f'{NO_RESEARCH} I have no notes on "{topic}". '
                + (f"The nearest topics I have notes on: {names}." if close else
                   f"Nothing I have notes on is close to it; my {len(knowledge.notes())} topics include: {names} "
                   "(`mas topics` lists them all)."))
    focus = ins.focus or focus_of_angle(angle)
    facts, notes = _chosen_facts(match.note, focus, ins)
    if ins.json_keys:
        return json.dumps({k: _json_value(k, facts, task) for k in ins.json_keys})
    cite = bool(ins.sources)
    lines = [f.line(cite) for f in facts]
    head = [] if ins.headings is False or ins.plain else [f"## Research: {topic}", ""]
    foot = [f"_Offline notes used: \"{match.note.topic}\" (matched by {match.by})._", *notes]
    default = "prose" if ins.count("sentence") or ins.count("paragraph") else "bullets"

    def reply(n: int) -> str:
        return "\n".join([*_cannot_lines(ins), *head, _layout(lines[:n], ins, default, ("Fact", "Source"), facts[:n]),
                          "", *foot]).strip()

    return _within(reply, len(lines), ins)


def _within(reply, n: int, ins: Instructions) -> str:
    """`reply(n)` with as many of its n points as a word limit allows, the whole reply counted (one at least)."""
    words = ins.count("word")
    while words and n > 1 and len(reply(n).split()) > words.n:
        n -= 1
    return reply(n)


def _chosen_facts(note: knowledge.Note, focus: tuple[str, ...], ins: Instructions
                  ) -> tuple[list[knowledge.Fact], list[str]]:
    facts, notes = list(note.facts), []
    unfiled = [f[1:] for f in focus if f.startswith("?")]
    focus = tuple(f for f in focus if not f.startswith("?"))
    if focus:
        on_focus = [f for f in facts if set(f.aspects) & set(focus)]
        if on_focus:
            facts = on_focus
        else:
            notes.append(f"_The notes on this topic say nothing about {', '.join(focus)}: all of them are given._")
    elif unfiled:
        notes.append(f"_The notes file no facts under \"{', '.join(unfiled)}\" (they know: {', '.join(ASPECTS)}): "
                     "all of them are given._")
    if ins.audience == "beginner":
        facts = sorted(facts, key=lambda f: "basics" not in f.aspects)[:BEGINNER_FACTS]
    elif ins.audience == "expert":
        facts = [f for f in facts if f.aspects != ("basics",)] or facts
    count = ins.count("item") or ins.count("sentence")
    if count:
        if count.n > len(facts) and count.mode != "at most":
            notes.append(f"_Asked for {count}, but the notes hold only {len(facts)} on this._")
        facts = facts[:count.limit(len(facts))]
    return facts, notes


def topic_of(task: str) -> str:
    topic = tag(task, "topic")
    if topic is None:
        first = task.strip().splitlines()[0] if task.strip() else "the topic"
        topic = re.sub(r"^(please\s+)?(research|investigate|look into)(\s+the\s+following\s+topic)?\s*[:\-]?\s*", "",
                       first, flags=re.I)
    return topic.strip().rstrip(".?!") or "the topic"


# --------------------------------------------------------------------------- writer

def bullets_of(research_text: str) -> list[str]:
    """The research points: its bullet or numbered lines (or table rows), without their markers."""
    rows = [cells[0].strip() + (f" (source: {cells[1].strip()})" if len(cells) > 1 and cells[1].strip() else "")
            for line in research_text.splitlines()
            if line.startswith("|") and not re.fullmatch(r"[|\s:-]+", line)
            and (cells := line.strip("| ").split(" | ")) and cells[0].strip() not in ("Fact", "Point")]
    return bullets(research_text) or rows or [s for s in _sentences(_drop_notes(research_text))
                                               if len(_content(s)) >= 3]


def _drop_notes(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not re.fullmatch(r"\s*(#.*|([*_]).*\2)\s*", line))


def write(task: str, ins: Instructions) -> str:
    research_text = tag(task, "research")
    research_text = task if research_text is None else research_text  # an empty <research> is empty research
    draft, issues = tag(task, "draft"), tag(task, "issues")
    if draft is not None and issues is not None:
        return revise(draft, _issue_list(issues), research_text, ins)
    points = bullets_of(research_text)
    topic = tag(task, "topic") or _research_title(research_text) or "Briefing"
    audience = tag(task, "audience") or DEFAULT_AUDIENCE
    if not points:
        return f"# {topic}\n\n*A briefing for {audience}.*\n\nThe research given was empty, so there is nothing to write yet."
    points, extra = apply_flaws(first_draft_flaws(topic, points, ins), points)
    return _within(lambda n: _draft(topic, audience, points[:n], extra, ins), len(points), ins)


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
    numbered = [i for i, p in enumerate(points) if _figures(_text_only(p))]
    if numbered:
        kinds.append("number")
    runs = [i for i in range(1, len(points) - 1)  # two points that run past the clarity limit when joined
            if len(_text_only(points[i]).split()) + len(_text_only(points[i + 1]).split()) > LONG_SENTENCE + 4]
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
    known = {n for p in points for n in _numbers(_text_only(p))}
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
            point = _text_only(point).rstrip(". ") + JOIN + _lower_first(points[i + 1])
        out.append(point)
    return out, extra


def _wrong_number(point: str, known: set[str]) -> str:
    """The point with its first figure changed as a careless writer would (doubled, or more: never a
    number the research holds, so the slip is a real contradiction)."""
    found = next(m for m in _FIGURE.finditer(_text_only(point)) if not _YEAR.fullmatch(m.group()))
    first = found.group()
    value = int(first.replace(",", ""))
    for times in range(2, 10):
        shown = f"{value * times:,}" if "," in first else str(value * times)
        if shown not in known:
            break
    return point[:found.start()] + shown + point[found.end():]  # that figure, not an earlier "1" in "F1"


def _draft(topic: str, audience: str, points: list[str], extra: list[str], ins: Instructions) -> str:
    sentences = [_as_sentence(p) for p in points]
    if ins.audience == "beginner":  # fewer points: the basics (the research for beginners puts them first)
        sentences = sentences[:BEGINNER_FACTS]
    if count := ins.count("sentence"):  # the invented sentences count too: they are what it wrote
        sentences = sentences[:max(1, count.limit(len(sentences) + len(extra)) - len(extra))]
    title = topic[:1].upper() + topic[1:]
    overview, rest = [sentences[0], *extra], sentences[1:]
    if count := ins.count("item"):  # the key points: the overview is not one of them
        rest = rest[:count.limit(len(rest))]
    layout = ins.layout or "prose"
    body = _layout(rest, ins, "prose", ("Point", "Source"))
    if (paragraphs := ins.count("paragraph")) and layout == "prose":
        body = _paragraphs(rest, paragraphs.n)
    plain = ins.plain or ins.headings is False
    parts = [*_cannot_lines(ins)]
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


def _layout(lines: list[str], ins: Instructions, default: str, columns: tuple[str, str],
            facts: list[knowledge.Fact] | None = None) -> str:
    layout = ins.layout or ("prose" if ins.plain else default)  # plain text: no markdown lists unless asked
    if not lines:
        return ""
    if layout == "numbered":
        return "\n".join(f"{i}. {line}" for i, line in enumerate(lines, 1))
    if layout == "table":
        rows = [(f.text, f.source) if facts else _split_source(line) for f, line in zip(facts or lines, lines)]
        return "\n".join([f"| {columns[0]} | {columns[1]} |", "|---|---|",
                          *(f"| {a.replace('|', '/')} | {b.replace('|', '/')} |" for a, b in rows)])
    if layout == "bullets":
        return "\n".join(f"- {line}" for line in lines)
    return "\n\n".join(_as_sentence(line) for line in lines) if default == "prose" else " ".join(
        _as_sentence(line) for line in lines)


def _split_source(line: str) -> tuple[str, str]:
    m = re.search(r"\s*\(source:\s*(.+)\)\s*\.?$", line)
    return (line[:m.start()], m.group(1)) if m else (line, "")


def _cannot_lines(ins: Instructions) -> list[str]:
    return [f"_Offline model: it {line}._" for line in ins.cannot]


# --------------------------------------------------------------------------- revision

def revise(draft: str, issues: list[str], research_text: str, ins: Instructions) -> str:
    """The draft with exactly the given issues fixed (or unchanged, when told to ignore the feedback)."""
    if ins.ignore_feedback:
        return draft
    points = bullets_of(research_text)
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
        draft += f"\n\n_Offline model: {why}: {_short(' '.join(issue.split()), 20)}_"
    return draft


def _broken_limit(draft: str, ins: Instructions) -> str | None:
    """The writer's own limit (a count of points, sentences or words) a draft breaks, if any."""
    said = _claims(draft)
    for unit, n in (("item", len(said) - 1), ("sentence", len(said)), ("word", len(_drop_notes(draft).split()))):
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
        split = _split_sentence(sentence)
        head = split.split(". ", 1)[0]
        point = _best_point(head, points) if split != sentence and "(source:" not in head else None
        if point and "(source:" in point:  # the first half gets back the source it lost when it was run in
            split = split.replace(head + ". ", _as_sentence(point) + " ", 1)
        return draft.replace(sentence, split, 1)
    if issue.startswith("No source") and quoted:
        sentence = _sentence_starting(draft, quoted[-1].rstrip(". "))
        point = _best_point(sentence or "", [p for p in points if "(source:" in p])
        if sentence and point:
            return draft.replace(sentence, _as_sentence(point), 1)
        return draft.replace(sentence, "", 1) if sentence else None
    if issue.startswith("Source dropped"):
        named = issue.partition(": ")[2]
        point = next((p for p in points if named and named in p), None)
        if point is None:
            return None
        named = named.removeprefix("(source: ").removesuffix(")")
        sentence = _sentence_starting(draft, _text_only(point).rstrip(". ")[:80])
        if sentence is None:
            return _add_point(draft, point)
        return draft.replace(sentence, _as_sentence(point), 1) if "(source:" not in sentence else (
            draft.replace(sentence, sentence + f" (source: {named})", 1))
    if m := re.search(r"the limit is (\d+)", issue):
        return _cut_words(draft, int(m.group(1)))
    for text in quoted:  # "Unsupported claim ...: "S"", or any issue that quotes a sentence of the draft
        sentence = _sentence_starting(draft, text.rstrip(". "))
        if sentence:
            return draft.replace(sentence, "", 1)
    point = _best_point(issue, points)
    if point and not _covers(draft, point):
        return _add_point(draft, point)
    return None


def _best_point(text: str, points: list[str]) -> str | None:
    words = set(_stem(w) for w in _content(text))
    scored = [(sum(_stem(w) in words for w in _content(_text_only(p))) / max(1, len(_content(_text_only(p)))), p)
              for p in points]
    best = max(scored, default=(0.0, None))
    return best[1] if best[0] >= 0.6 else None


def _add_point(draft: str, point: str) -> str:
    lines = draft.rstrip().splitlines()
    if lines and lines[-1].startswith("|"):  # a table: one more row
        text, source = _split_source(point)
        return draft.rstrip() + f"\n| {_as_sentence(text).replace('|', '/')} | {source.replace('|', '/')} |"
    items = [line for line in lines if re.match(r"(\d+)\. |- ", line)]
    if items and items[-1] == lines[-1]:
        m = re.match(r"(\d+)\. ", items[-1])
        return draft.rstrip() + "\n" + (f"{int(m.group(1)) + 1}. " if m else "- ") + _as_sentence(point)
    return draft.rstrip() + "\n\n" + _as_sentence(point)


def _sentence_starting(draft: str, text: str) -> str | None:
    """The whole sentence of the draft that contains `text` (an issue may quote a shortened one)."""
    text = text.removesuffix("...").removesuffix("\u2026").strip()
    for sentence in _claims(draft):
        if text and (text in sentence or (len(sentence.split()) >= 6 and sentence in text)):
            return sentence
    return None


_JOINTS = (JOIN, "; ", ", so ")  # where a sentence of two ideas splits into two sentences


def _split_sentence(sentence: str) -> str:
    for joint in _JOINTS:
        if joint in sentence:
            head, tail = sentence.split(joint, 1)
            return f"{head.rstrip(',')}. {tail[:1].upper()}{tail[1:]}"
    return sentence


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
    research_words = _stems(research_text)
    draft_words = _stems(draft)
    points = bullets_of(research_text)
    claims = _claims(draft)
    issues = []
    if "coverage" in criteria:  # a point is covered when one sentence of the draft says most of it
        said = [{_stem(w) for w in _words(_text_only(c))} for c in claims] or [draft_words]
        for point in points:
            words = _content(_text_only(point))
            if words and max(sum(_stem(w) in sentence for w in words) for sentence in said) / len(words) < need:
                issues.append(f"Missing point from the research: {_as_sentence(_text_only(point))}")
    for sentence in claims:
        text = _text_only(sentence)
        words = _content(text)
        if "support" in criteria and len(words) >= 3 and sum(
                _stem(w) in research_words for w in words) / len(words) < need:
            issues.append(f'Unsupported claim, not in the research: "{sentence}"')
            continue
        if "numbers" in criteria and (wrong := _contradiction(text, points)):
            issues.append(f'Number contradicts the research: the draft says "{wrong[0]}" where the research says '
                          f'"{wrong[1]}", in "{_short(sentence)}"')
        if "clarity" in criteria and len(text.split()) > LONG_SENTENCE:
            issues.append(f'Unclear section: a sentence of {len(text.split())} words; split it: "{_short(sentence)}"')
        elif ("audience" in criteria and audience == "beginner" and len(text.split()) > BEGINNER_SENTENCE
              and any(joint in text for joint in _JOINTS)):
            issues.append(f'Too dense for beginners: a sentence of {len(text.split())} words runs two ideas together; '
                          f'split it: "{_short(sentence)}"')
        if "sources" in criteria and "(source:" not in sentence and len(words) >= 3:
            issues.append(f'No source for the claim: "{_short(sentence)}"')
    if strict:  # a strict editor keeps the research's attributions: each of its sources stays in the draft
        for source in dict.fromkeys(m for p in points for m in re.findall(r"\(source: ([^()]*(?:\([^()]*\)[^()]*)*)\)", p)):
            if source not in draft:
                issues.append(f"Source dropped from the draft: (source: {source})")
    if "length" in criteria and word_limit and (n := len(_drop_notes(draft).split())) > word_limit:
        issues.append(f"Too long: the draft has {n} words; the limit is {word_limit}.")
    return issues


def _contradiction(text: str, points: list[str]) -> tuple[str, str] | None:
    """(the draft's number, the research's) when a sentence restates a research point with another figure."""
    found = _figures(text)
    if not found:
        return None
    words = set(_stem(w) for w in _content(text))
    anywhere = {n for p in points for n in _numbers(_text_only(p))}
    strange = [mine for mine in found if mine not in anywhere]
    if not strange:
        return None

    def overlap(p: str) -> float:
        return sum(_stem(w) in words for w in _content(p)) / max(1, len(_content(p)))

    # the research points this sentence restates (a run-on sentence restates two), best first
    restated = sorted((p for p in map(_text_only, points) if overlap(p) >= 0.6), key=overlap, reverse=True)
    for point in restated:
        figures = _figures(point)
        # the research's figure the sentence has fewer of (the one changed), else the point's first
        theirs = [t for t in figures if found.count(t) < figures.count(t)] or figures
        if theirs:
            return strange[0], theirs[0]
    return None


def _short(sentence: str, words: int = 12) -> str:
    parts = sentence.split()
    return sentence if len(parts) <= words else " ".join(parts[:words]) + " ..."


def _numbers(text: str) -> list[str]:
    return re.findall(r"\d+(?:[.,]\d+)*", text)


_FIGURE = re.compile(r"(?<![\w./-])(?<!RFC )\d+(?:,\d{3})*(?![\w/-]|[.,]\d)")


_YEAR = re.compile(r"(19|20)\d\d")


def _figures(text: str) -> list[str]:
    """The quantities of a text a careless writer could get wrong: whole numbers standing alone
    ("5 members", "1,024 tokens", "50%"), not years, versions (TLS 1.3), ids (RFC 6749) or names (float32)."""
    return [m.group() for m in _FIGURE.finditer(text) if not _YEAR.fullmatch(m.group())]


def _text_only(sentence: str) -> str:
    """A sentence without its "(source: ...)"."""
    return re.sub(r" ?" + _SOURCE.pattern, "", sentence) if "(source:" in sentence else sentence


def _covers(draft: str, point: str) -> bool:
    words = _content(_text_only(point))
    return bool(words) and sum(_stem(w) in _stems(draft) for w in words) / len(words) >= 0.7


def _claims(draft: str) -> list[str]:
    """The sentences of a draft that state something: not headings, not *italic* lines, not table headers."""
    out = []
    for line in draft.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or re.fullmatch(r"([*_]).*\1", line) or re.fullmatch(r"[|\s:-]+", line):
            continue
        if line.startswith("|"):
            line = " ".join(cell.strip() for cell in line.strip("|").split("|")[:1])
            if line in ("Point", "Fact"):
                continue
        line = re.sub(r"^(?:[-*•]|\d+[.)])\s+", "", line)
        out.extend(_sentences(line))
    return out


def _research_title(research_text: str) -> str | None:
    m = re.search(r"^#+\s*(?:Research:\s*)?(.+)$", research_text, re.M)
    return m.group(1).strip() if m else None


def _as_sentence(point: str) -> str:
    point = point.strip()
    return point if point.endswith((".", ")", "!", "?")) else point + "."


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


_SOURCE = re.compile(r"\(source:[^()]*(?:\([^()]*\)[^()]*)*\)")


def _sentences(text: str) -> list[str]:
    """The sentences of a text; a "(source: ...)" stays whole with the sentence it ends, whatever its
    punctuation ("Release It! Design ...")."""
    sources = _SOURCE.findall(text) if "(source:" in text else []
    if sources:
        text = _SOURCE.sub(lambda m: "\x00", text.replace("\x00", " "))
    out = [s.strip() for s in re.split(r"(?<=[.!?)\x00])\s+(?=[A-Z]|\((?!source:))", text.strip()) if s.strip()]
    if sources:
        given = iter(sources)
        out = [re.sub("\x00", lambda m: next(given), s) for s in out]
    return out


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9][a-z0-9_'-]*", text.lower())


def _content(text: str) -> list[str]:
    return [w for w in _words(text) if len(w) >= 4 and w not in _STOPWORDS]


def _stem(word: str) -> str:
    return word[:-1] if word.endswith("s") and len(word) > 4 else word


def _stems(text: str) -> set[str]:
    return {_stem(w) for w in _words(text)}


# --------------------------------------------------------------------------- anything else

def generic(prompt: str, system: str = "") -> str:
    """A short, deterministic reply that follows what it can of the instructions."""
    ins = read(system, prompt)
    subject = " ".join(prompt.split()[:12]).rstrip(".?!:") or "your message"
    match = knowledge.find(prompt)
    stems = _stems(prompt)
    facts = sorted(match.note.facts, key=lambda f: -len(stems & _stems(f.text))) if match else []
    if ins.json_keys or re.search(r"\bjson\b", (system + "\n" + prompt).lower()):
        return json.dumps({k: _json_value(k, facts, prompt) for k in ins.json_keys or ("reply",)})
    lines = [f.line(bool(ins.sources)) for f in facts]
    if ins.layout in ("bullets", "numbered", "table") or re.search(r"\blist\b", (system + prompt).lower()):
        count = ins.count("item")
        chosen = lines[:count.limit(len(lines))] if count else lines[:3]
        if not chosen:
            chosen = [f"A point about {w}." for w in (_content(prompt)[:3] or ["point"])]
        return "\n".join([*_cannot_lines(ins), _layout(chosen, ins, "bullets", ("Fact", "Source"))]).strip()
    if lines:
        count = ins.count("sentence")
        return "\n".join([*_cannot_lines(ins), " ".join(lines[:count.limit(len(lines)) if count else 1])]).strip()
    digest = hashlib.sha256(prompt.encode()).hexdigest()[:6]
    return "\n".join(_cannot_lines(ins)) + ("\n" if ins.cannot else "") + (f'Offline reply to "{subject}" (ref {digest}). '
            "The offline model answers only the course's roles and the topics of its notes; "
            "set ANTHROPIC_API_KEY to ask Claude.")


def _json_value(key: str, facts: list[knowledge.Fact], prompt: str) -> object:
    k = key.lower()
    if k in ("facts", "points", "bullets", "notes", "items", "findings", "key_points"):
        return [f.text for f in facts[:5]]
    if k in ("sources", "citations", "references"):
        return [f.source for f in facts[:5]]
    if k in ("topic", "title", "subject"):
        return topic_of(prompt)
    return facts[0].text if facts else f"offline {key}"


def reply_for(system: str, prompt: str, fields: tuple[str, ...] = ()) -> tuple[str | None, str]:
    """(role, reply text) for a system prompt, the last user message and the fields its output schema asks."""
    role = detect_role(system, prompt, fields)
    ins = read(system, prompt, tag(prompt, "audience"))
    if role == "researcher":
        return role, research(prompt, ins)
    if role == "writer":
        return role, write(prompt, ins)
    if role == "validator":
        return role, json.dumps(validate(prompt, ins))
    return None, generic(prompt, system)
