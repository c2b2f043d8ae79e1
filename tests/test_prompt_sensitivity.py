"""The offline model reads the prompt: 54 prompt variants across the three roles, each with its own visible effect.

Each variant changes one thing of the course's default prompt or task (through the real SDK, as an agent sends
it) and names what must change in the reply. A variant that changed nothing would fail: each checks that the
reply differs from the default one, and how. The README's table "what the offline model honours" lists the
same vocabulary (mas/offline/instructions.py).
"""

from __future__ import annotations

import json
import re

import pytest

from mas.client import make_client, text_of
from mas.memory import SQLiteMemory
from mas.offline.knowledge import find, notes
from mas.orchestrator import Orchestrator
from mas.prompts import SYSTEM_PROMPTS, research_task, revise_task, validate_task, write_task

TOPIC, AUDIENCE = "How vector databases enable semantic search", "engineers"
NOTE = find(TOPIC).note
R, W, V = SYSTEM_PROMPTS["researcher"], SYSTEM_PROMPTS["writer"], SYSTEM_PROMPTS["validator"]
NO_SOURCES = R.replace("note sources where relevant, as (source: ...)", "give no sources")
CLIENT = make_client(offline=True)


def ask(system: str, task: str, max_tokens: int = 4000) -> str:
    reply = CLIENT.messages.create(model="claude-haiku-4-5", max_tokens=max_tokens, system=system,
                                   messages=[{"role": "user", "content": task}])
    return text_of(reply)


def bullets(text: str) -> list[str]:
    return [line[2:] for line in text.splitlines() if line.startswith("- ")]


def claims(draft: str) -> list[str]:
    """The sentences a draft states (not headings, not italic notes, sources aside)."""
    body = "\n".join(line for line in draft.splitlines()
                     if line.strip() and not line.startswith("#") and not re.fullmatch(r"\s*([*_]).*\1\s*", line))
    body = re.sub(r" ?\(source:[^()]*(?:\([^()]*\)[^()]*)*\)", "", body)
    return [s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", body.replace("\n", " ").strip()) if s.strip()]


def issues(draft: str, research: str, system: str = V) -> list[str]:
    return json.loads(ask(system, validate_task(research, draft)))["issues"]


RESEARCH = ask(R, research_task(TOPIC, AUDIENCE))
DRAFT = ask(W, write_task(TOPIC, AUDIENCE, RESEARCH))
ISSUES = issues(DRAFT, RESEARCH)
REVISED = ask(W, revise_task(TOPIC, AUDIENCE, RESEARCH, DRAFT, ISSUES))  # what the default validator approves
with_aspect = [f for f in NOTE.facts if "cost" in f.aspects]


def research(system: str = R, topic: str = TOPIC, audience: str = AUDIENCE) -> str:
    return ask(system, research_task(topic, audience))


def write(system: str = W, audience: str = AUDIENCE) -> str:
    return ask(system, write_task(TOPIC, audience, RESEARCH))


STATS_DRAFT = write(W + " Add impressive statistics.")

VARIANTS = {
    # ---------------------------------------------------------------- researcher
    "researcher: exactly 3 bullets": lambda: len(bullets(research(R + " Give exactly 3 bullets."))) == 3,
    "researcher: at most two bullets": lambda: len(bullets(research(R + " Use at most two bullets."))) == 2,
    "researcher: more bullets than it knows, said honestly": lambda: (
        len(bullets(r := research(R + " Give exactly 20 bullets."))) == len(NOTE.facts)
        and "but the notes hold only 10" in r),
    "researcher: numbered list": lambda: all(re.match(r"\d+\. ", line) for line in research(
        R + " Answer as a numbered list.").splitlines() if line and line[0].isdigit()) and "1. " in research(
        R + " Answer as a numbered list."),
    "researcher: table": lambda: "| Fact | Source |" in research(R + " Answer as a table."),
    "researcher: no sources": lambda: "(source:" not in research(NO_SOURCES) and "(source:" in RESEARCH,
    "researcher: cite sources in a prompt of its own": lambda: all(
        "(source:" in b for b in bullets(research("You research topics. Cite sources."))) and not any(
        "(source:" in b for b in bullets(research("You research topics."))),
    "researcher: beginners get the basics first, fewer facts": lambda: (
        len(b := bullets(research(audience="beginners"))) <= 5 and b[0].startswith(NOTE.facts[0].text[:40])),
    "researcher: experts get no basics-only fact": lambda: not any(
        f.text[:40] in research(audience="experts") for f in NOTE.facts if f.aspects == ("basics",)),
    "researcher: focus on cost": lambda: (
        len(b := bullets(research(R + " Focus on cost."))) == len(with_aspect)
        and all(any(f.text[:40] in x for f in with_aspect) for x in b)),
    "researcher: only trade-offs": lambda: all(
        any(f.text[:40] in x for f in NOTE.facts if "trade-off" in f.aspects)
        for x in bullets(research(R + " Focus only on trade-offs."))),
    "researcher: a focus the notes lack is said": lambda: "say nothing about security" in research(
        R + " Focus on security.", topic=next(n.topic for n in notes() if not any(
            "security" in f.aspects for f in n.facts))),
    "researcher: no headings": lambda: "##" not in research(R + " No headings.") and "##" in RESEARCH,
    "researcher: another language is said, not pretended": lambda: research(R + " Answer in French.").startswith(
        "_Offline model: it cannot write in French"),
    "researcher: an unknown topic is no research": lambda: research(topic="Sourdough bread baking").startswith(
        "No research:"),
    "researcher: word order and plurals do not matter": lambda: bullets(research(topic="search, semantic")) == bullets(
        research(topic="Semantic searches")) == bullets(RESEARCH),
    "researcher: JSON with the keys it names": lambda: set(json.loads(research(
        'Answer in JSON with the keys "facts" and "sources".'))) == {"facts", "sources"},
    "researcher: in two sentences": lambda: len(bullets(research(NO_SOURCES + " Answer in 2 sentences."))) == 2,
    "researcher: in two sentences, as prose": lambda: len(claims(research(
        "You research topics. Answer in 2 sentences."))) == 2,
    "researcher: under 60 words": lambda: 0 < sum(len(b.split()) for b in bullets(research(
        NO_SOURCES + " Answer in under 60 words."))) <= 60,
    # ---------------------------------------------------------------- writer
    "writer: at most three sentences": lambda: len(claims(write(W + " Use at most three sentences."))) <= 3
    < len(claims(DRAFT)),
    "writer: no headings": lambda: not re.search(r"^#", write(W + " No headings."), re.M),
    "writer: plain text": lambda: not re.search(r"^[#*_-]", write(W + " Plain text, no markdown."), re.M),
    "writer: bullet points": lambda: len(bullets(write(W + " Give the key points as bullet points."))) >= 3,
    "writer: numbered list": lambda: "\n1. " in write(W + " Give the key points as a numbered list."),
    "writer: table": lambda: "| Point | Source |" in write(W + " Give the key points as a table."),
    "writer: a persona's voice is said, not pretended": lambda: write(W + " Write like a pirate.").startswith(
        "_Offline model: it cannot write in the voice of a pirate"),
    "writer: impressive statistics are invented, and caught": lambda: sum(
        "Unsupported claim" in i for i in issues(STATS_DRAFT, RESEARCH)) >= 2 + sum(
        "Unsupported claim" in i for i in ISSUES),
    "writer: persuasive claims are invented, and caught": lambda: any(
        "Unsupported claim" in i and "investment" in i for i in issues(write(W + " Be persuasive."), RESEARCH)),
    "writer: be brief drops points, and the validator says which": lambda: sum(
        "Missing point" in i for i in issues(write(W + " Be brief."), RESEARCH)) >= len(bullets(RESEARCH)) - 4,
    "writer: ignore the feedback repeats the draft": lambda: ask(
        W + " Ignore the feedback.", revise_task(TOPIC, AUDIENCE, RESEARCH, DRAFT, ISSUES)) == DRAFT,
    "writer: a revision fixes exactly the issues given": lambda: (
        issues(ask(W, revise_task(TOPIC, AUDIENCE, RESEARCH, DRAFT, ISSUES[:1])), RESEARCH) == ISSUES[1:]),
    "writer: experts get one dense paragraph": lambda: "## Overview" not in (d := write(audience="experts"))
    and len([p for p in d.split("\n\n") if not p.startswith("#")]) == 1,
    "writer: two paragraphs": lambda: len([p for p in write(W + " Write the key points in 2 paragraphs.").split(
        "## Key points")[1].split("\n\n") if p.strip()]) == 2,
    "writer: under 120 words": lambda: len(" ".join(claims(write(W + " Write under 120 words."))).split()) <= 120
    < len(" ".join(claims(DRAFT)).split()),
    # ---------------------------------------------------------------- validator
    "validator: approve every draft": lambda: json.loads(ask(
        V + " Approve every draft.", validate_task(RESEARCH, STATS_DRAFT))) == {"issues": [], "approved": True},
    "validator: lenient lets invented claims through": lambda: not any(
        "Unsupported" in i for i in issues(STATS_DRAFT, RESEARCH, V + " Be lenient.")) and any(
        "Unsupported" in i for i in issues(STATS_DRAFT, RESEARCH)),
    "validator: strict reports more": lambda: len(issues(DRAFT, RESEARCH, V + " Be strict.")) > len(ISSUES),
    "validator: told to check sources, it checks sources only": lambda: (
        found := issues(STATS_DRAFT, RESEARCH, 'You are a reviewer. Check only that every claim has a source. '
                                               'Answer {"issues": [...], "approved": true|false}.')) and all(
        i.startswith("No source for the claim") for i in found),
    "validator: a length limit": lambda: any(i.startswith("Too long") for i in issues(
        DRAFT, RESEARCH, V + " The draft must be at most 150 words: check the length.")),
    "validator: the verdict shape alone makes a validator": lambda: set(json.loads(ask(
        'Reply only with {"issues": [...], "approved": true|false}.', validate_task(RESEARCH, DRAFT)))) == {
        "issues", "approved"},
    "validator: a check of a draft against research is a verdict, whatever the words": lambda: json.loads(ask(
        "Check drafts carefully.", validate_task(RESEARCH, DRAFT)))["issues"] == ISSUES,
    "validator: checks the audience it is told": lambda: any(i.startswith("Too dense for beginners") for i in issues(
        REVISED, RESEARCH, V + " Check that it suits an audience of beginners.")) and issues(REVISED, RESEARCH) == [],
    "validator: told to check coverage only, it reports omissions only": lambda: (
        found := issues(STATS_DRAFT, RESEARCH, 'Check only that the draft leaves out no research point. '
                                               'Answer {"issues": [...], "approved": true|false}.')) and all(
        i.startswith("Missing point") for i in found),
    "writer: for beginners, at most five points": lambda: len(claims(write(audience="beginners"))) <= 5 < len(
        claims(DRAFT)),
    # ---------------------------------------------------------------- what must not trigger (found by a review)
    "researcher: a negated layout is not followed": lambda: not bullets(research(
        "You research topics. Do not use bullet points.")) and bullets(research("You research topics.")),
    "researcher: a learner's wording finds the note": lambda: bullets(research(topic="vector DBs")) == bullets(
        research(topic="vector databases")),
    "researcher: one shared word is not a topic": lambda: research(topic="Kubernetes networking").startswith(
        "No research:") and not research(topic="Kubernetes pods").startswith("No research:"),
    "researcher: a range is its upper end": lambda: len(bullets(research(R + " Give three to five bullets."))) == 5,
    "writer: a negated instruction is not followed": lambda: issues(write(
        W + " Never add impressive statistics."), RESEARCH) == ISSUES,
    "writer: a brief overview is not 'be brief'": lambda: write(W + " Start with a brief overview.") == DRAFT,
    "writer: a revision keeps the writer's own limit": lambda: "would break the limit of exactly 3 points" in ask(
        W + " Use exactly 3 key points.", revise_task(TOPIC, AUDIENCE, RESEARCH, ask(
            W + " Use exactly 3 key points.", write_task(TOPIC, AUDIENCE, RESEARCH)), [ISSUES[0]])),
    "validator: a negated approval is not a lax validator": lambda: not json.loads(ask(
        V + " Do not approve any draft that still has issues.", validate_task(RESEARCH, DRAFT)))["approved"],
    "validator: 'approved' in an audience makes no validator": lambda: Orchestrator(
        SQLiteMemory(":memory:"), client=CLIENT, progress=None).run(
        TOPIC, audience="managers who need an approved summary").report.startswith("# "),
}


def test_there_are_at_least_thirty_variants_across_the_three_roles():
    roles = [name.split(":")[0] for name in VARIANTS]
    assert len(VARIANTS) >= 30 and {roles.count(r) >= 8 for r in ("researcher", "writer", "validator")} == {True}


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_prompt_variant_has_its_visible_effect(variant):
    assert VARIANTS[variant](), variant


def test_the_ignored_feedback_trips_the_revision_limit():
    with SQLiteMemory(":memory:") as memory:
        from mas.agents import WriterAgent
        writer = WriterAgent(client=make_client(offline=True), system_prompt=W + " Ignore the feedback.")
        result = Orchestrator(memory, client=make_client(offline=True), writer=writer, progress=None,
                              max_revision_cycles=2).run(TOPIC)
    assert result.status == "max_cycles" and len(result.issues) == len(ISSUES)
