"""What the offline model says: a researcher, a writer and a validator that behave like their roles.

It recognises the role from the system prompt (the role word that comes first, as in "You are a technical
writer ..."), and reads the task's XML-tagged sections (`<topic>`, `<audience>`, `<research>`, `<draft>`,
`<issues>`), the prompting style Anthropic recommends and the one `mas.agents` uses.

- researcher: bullet-point notes on the topic from the small bundled notes in `notes/` (a few topics), or
  the research angles of an unknown topic;
- writer: a markdown draft built only from the research it was given. The *first* draft has a real,
  deterministic flaw: it leaves out the last research point and adds one claim the research does not
  support. A revision (the task carries `<issues>`) is faithful;
- validator: JSON `{"issues": [...], "approved": bool}` from a real check of the draft against the
  research (every research point covered, every sentence supported);
- anything else: a short reply that follows what it can of the instructions.

Simplified on purpose: "supported" means most of a sentence's content words occur in the research. That
catches the offline writer's flaw and invented sentences; it is not a fact-checker for arbitrary prose.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import cache
from importlib import resources

from mas.prompts import bullets, tag

_ROLE_WORDS = {"researcher": "researcher", "writer": "writer", "validator": "validator",
               "fact-checker": "validator", "reviewer": "validator"}
UNSUPPORTED_CLAIM = "In practice, most teams report a tenfold productivity gain within their first week of adoption."
_STOPWORDS = set("""about above after again against also among and are because been before being below between both but
by can could does doing down during each either every few for from further had has have having here how into its itself
just more most much must need needs not now off once only other our out over own same shall should some such than that
the their them then there these they this those through too under until upon very was were what when where which while
who whom why will with within would you your yours usually often so""".split())
_ANGLES = ("what it is, and the problem it solves", "how it works, at the level of its main components",
           "where it is used in practice, and by whom", "the trade-offs in cost, performance and failure modes",
           "how it compares with the main alternatives")  # to research, for a topic the notes do not cover


def detect_role(system: str) -> str | None:
    """The role a system prompt gives, by the role word that appears first in it.

    >>> detect_role("You are a technical writer. You turn a researcher's notes into a draft.")
    'writer'
    >>> detect_role("Be helpful.") is None
    True
    """
    text = system.lower()
    found = [(m.start(), _ROLE_WORDS[m.group(1)]) for m in re.finditer(r"\b(" + "|".join(_ROLE_WORDS) + r")s?\b", text)]
    return min(found)[1] if found else None


# --------------------------------------------------------------------------- researcher

@cache
def _notes() -> list[tuple[str, set[str], list[str]]]:
    out = []
    for entry in sorted(resources.files("mas.offline").joinpath("knowledge").iterdir(), key=lambda p: p.name):
        if not entry.name.endswith(".md"):
            continue
        lines = entry.read_text(encoding="utf-8").splitlines()
        topic = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("topic:"))
        keywords = set(next(line.split(":", 1)[1] for line in lines if line.startswith("keywords:")).split())
        bullets = [line[2:].strip() for line in lines if line.startswith("- ")]
        out.append((topic, keywords, bullets))
    return out


def _note_for(text: str) -> tuple[str, set[str], list[str]] | None:
    """The bundled note that shares the most keywords with `text`, if it shares at least two."""
    words = set(_words(text))
    note = max(_notes(), key=lambda note: len(words & note[1]))
    return note if len(words & note[1]) >= 2 else None


def research(task: str) -> str:
    topic = topic_of(task)
    note = _note_for(topic)
    if note:
        bullets, footer = note[2], ""
    else:
        # "Solar panel recycling: key concepts" (a topic and an angle, as parallel research asks) reads as
        # "Solar panel recycling (key concepts): what it is, ..."
        subject, _, angle = topic.partition(": ")
        label = f"{subject} ({angle})" if angle else subject
        bullets = [f"{label}: {aspect}." for aspect in _ANGLES]
        footer = "\n\n_Offline model: its notes cover only a few topics, so these are the angles to research._"
    return f"## Research: {topic}\n\n" + "\n".join(f"- {b}" for b in bullets) + footer


def topic_of(task: str) -> str:
    topic = tag(task, "topic")
    if topic is None:
        first = task.strip().splitlines()[0] if task.strip() else "the topic"
        topic = re.sub(r"^(please\s+)?(research|investigate|look into)(\s+the\s+following\s+topic)?\s*[:\-]?\s*", "",
                       first, flags=re.I)
    return topic.strip().rstrip(".?!") or "the topic"


# --------------------------------------------------------------------------- writer

def bullets_of(research_text: str) -> list[str]:
    """The research points: its bullet or numbered lines, without their markers."""
    return bullets(research_text) or [s for s in _sentences(research_text) if len(_content(s)) >= 3]


def write(task: str) -> str:
    research_text = tag(task, "research") or task
    points = bullets_of(research_text)
    topic = tag(task, "topic") or _research_title(research_text) or "Briefing"
    audience = tag(task, "audience") or "a general technical audience"
    extra = []
    if tag(task, "issues") is None and len(points) > 2:
        # The first draft's flaw, on purpose and always the same: a point dropped, a claim added.
        points, extra = points[:-1], [UNSUPPORTED_CLAIM]
    if not points:
        return f"# {topic}\n\n*A briefing for {audience}.*\n\nThe research given was empty, so there is nothing to write yet."
    overview = [_as_sentence(points[0]), *extra]
    body = "\n\n".join(_as_sentence(p) for p in points[1:])
    parts = [f"# {topic[:1].upper() + topic[1:]}", f"*A briefing for {audience}.*", "## Overview", " ".join(overview)]
    if body:
        parts += ["## Key points", body]
    return "\n\n".join(parts)


def _research_title(research_text: str) -> str | None:
    m = re.search(r"^#+\s*(?:Research:\s*)?(.+)$", research_text, re.M)
    return m.group(1).strip() if m else None


def _as_sentence(point: str) -> str:
    point = point.strip()
    return point if point.endswith((".", ")", "!", "?")) else point + "."


# --------------------------------------------------------------------------- validator

def validate(task: str) -> dict:
    research_text = tag(task, "research")
    draft = tag(task, "draft")
    if research_text is None or draft is None:
        return {"issues": ["The task must give the research in <research> tags and the draft in <draft> tags."],
                "approved": False}
    issues = check_draft(draft, research_text)
    return {"issues": issues, "approved": not issues}


def check_draft(draft: str, research_text: str) -> list[str]:
    """The validator's check: research points the draft leaves out, and draft sentences the
    research does not support."""
    if not draft.strip():
        return ["The draft is empty."]
    research_words = _stems(research_text)
    draft_words = _stems(draft)
    issues = []
    for point in bullets_of(research_text):
        words = _content(point)
        if words and sum(_stem(w) in draft_words for w in words) / len(words) < 0.7:
            issues.append(f"Missing point from the research: {_as_sentence(point)}")
    for sentence in _claims(draft):
        words = _content(sentence)
        if len(words) >= 3 and sum(_stem(w) in research_words for w in words) / len(words) < 0.7:
            issues.append(f'Unsupported claim, not in the research: "{sentence}"')
    return issues


def _claims(draft: str) -> list[str]:
    """The sentences of a draft that state something: not headings, not *italic* lines."""
    out = []
    for line in draft.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or re.fullmatch(r"([*_]).*\1", line):
            continue
        line = re.sub(r"^(?:[-*•]|\d+[.)])\s+", "", line)
        out.extend(_sentences(line))
    return out


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?)])\s+(?=[A-Z(])", text.strip()) if s.strip()]


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
    instructions = (system + "\n" + prompt).lower()
    subject = " ".join(prompt.split()[:12]).rstrip(".?!:") or "your message"
    if "json" in instructions:
        keys = re.findall(r'"([A-Za-z_][A-Za-z0-9_]*)"\s*:', system + "\n" + prompt) or ["reply"]
        return json.dumps({k: f"offline {k}" for k in dict.fromkeys(keys)})
    note, stems = _note_for(prompt), _stems(prompt)
    known = sorted(note[2], key=lambda b: -len(stems & _stems(b))) if note else []  # best-matching note lines first
    if re.search(r"\b(bullet|bullets|list)\b", instructions):
        if known:
            return "\n".join(f"- {b}" for b in known[:3])
        words = _content(prompt)[:3] or ["point"]
        return "\n".join(f"- A point about {w}." for w in words)
    if known:
        return known[0]
    digest = hashlib.sha256(prompt.encode()).hexdigest()[:6]
    return (f'Offline reply to "{subject}" (ref {digest}). '
            "The offline model answers only the course's roles in depth; set ANTHROPIC_API_KEY to ask Claude.")


def reply_for(system: str, prompt: str) -> tuple[str | None, str]:
    """(role, reply text) for a system prompt and the last user message."""
    role = detect_role(system)
    if role == "researcher":
        return role, research(prompt)
    if role == "writer":
        return role, write(prompt)
    if role == "validator":
        return role, json.dumps(validate(prompt))
    return None, generic(prompt, system)
