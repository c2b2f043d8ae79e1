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

The writer is `writer.py`, the validator `validator.py`; both read text with `prose.py`.
"""

from __future__ import annotations

import hashlib
import json
import re

from mas.offline import knowledge, prose
from mas.offline.instructions import Instructions, focus_of_angle, outside_tags, read
from mas.offline.knowledge import ASPECTS
from mas.offline.validator import compare, validate
from mas.offline.writer import write
from mas.prompts import NO_RESEARCH, tag

_ROLE_WORDS = {"researcher": "researcher", "writer": "writer", "validator": "validator",
               "fact-checker": "validator", "reviewer": "validator", "editor": "validator"}
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
    if "<report_a>" in task and "<report_b>" in task:
        return "judge"
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
        body = prose.layout(lines[:n], ins, default, ("Fact", "Source"), facts[:n])
        return "\n".join([*prose.cannot_lines(ins), *head, body, "", *foot]).strip()

    return prose.within(reply, len(lines), ins)


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
        facts = sorted(facts, key=lambda f: "basics" not in f.aspects)[:prose.BEGINNER_FACTS]
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

def generic(prompt: str, system: str = "") -> str:
    """A short, deterministic reply that follows what it can of the instructions."""
    ins = read(system, prompt)
    subject = " ".join(prompt.split()[:12]).rstrip(".?!:") or "your message"
    match = knowledge.find(prompt)
    stems = prose.stems(prompt)
    facts = sorted(match.note.facts, key=lambda f: -len(stems & prose.stems(f.text))) if match else []
    if ins.json_keys or re.search(r"\bjson\b", (system + "\n" + prompt).lower()):
        return json.dumps({k: _json_value(k, facts, prompt) for k in ins.json_keys or ("reply",)})
    lines = [f.line(bool(ins.sources)) for f in facts]
    if ins.layout in ("bullets", "numbered", "table") or re.search(r"\blist\b", (system + prompt).lower()):
        count = ins.count("item")
        chosen = lines[:count.limit(len(lines))] if count else lines[:3]
        if not chosen:
            chosen = [f"A point about {w}." for w in (prose.content(prompt)[:3] or ["point"])]
        return "\n".join([*prose.cannot_lines(ins), prose.layout(chosen, ins, "bullets", ("Fact", "Source"))]).strip()
    if lines:
        count = ins.count("sentence")
        return "\n".join([*prose.cannot_lines(ins), " ".join(lines[:count.limit(len(lines)) if count else 1])]).strip()
    digest = hashlib.sha256(prompt.encode()).hexdigest()[:6]
    return "".join(line + "\n" for line in prose.cannot_lines(ins)) + (f'Offline reply to "{subject}" (ref {digest}). '
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
    if role == "judge":
        return role, json.dumps(compare(prompt))
    return None, generic(prompt, system)
