"""The offline model's knowledge base: every note well formed and sourced, and found the way a learner asks."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mas.offline import knowledge
from mas.offline.knowledge import ASPECTS, find, nearest, notes
from mas.offline.validator import check_draft

NOTES = notes()
UNKNOWN = ["Solar panel recycling", "Zorblax farming", "Sourdough bread baking", "Medieval French poetry",
           "The history of the Roman aqueducts", "Tuning a bicycle derailleur", "Breeding koi carp"]


def test_at_least_thirty_topics():
    assert len(NOTES) >= 30, [n.slug for n in NOTES]


@pytest.mark.parametrize("note", NOTES, ids=lambda n: n.slug)
def test_a_note_is_well_formed_and_sourced(note):
    assert 8 <= len(note.facts) <= 10
    assert all(f.source and len(f.source) >= 8 for f in note.facts), "every fact has a source"
    assert all(a in ASPECTS for f in note.facts for a in f.aspects)
    assert "basics" in note.facts[0].aspects, "the first fact defines the topic"
    assert sum(bool(re.search(r"\d", f.text)) for f in note.facts) >= 2, "two facts hold a number"
    covered = {a for f in note.facts for a in f.aspects}
    assert {"basics", "how", "use", "trade-off"} <= covered and covered & {"cost", "performance"}
    assert all("<" not in f.text + f.source for f in note.facts) and "<" not in note.myth
    assert all(knowledge.by_slug(r) for r in note.related), "related names other notes' slugs"


@pytest.mark.parametrize("note", NOTES, ids=lambda n: n.slug)
def test_every_alias_and_the_title_find_their_own_note(note):
    for name in (note.topic, *note.aliases):
        match = find(name)
        assert match is not None and match.note.slug == note.slug, (name, match and match.note.slug)


@pytest.mark.parametrize("note", NOTES, ids=lambda n: n.slug)
def test_the_myth_is_a_claim_the_validator_catches(note):
    research = "\n".join(f"- {f.line()}" for f in note.facts)
    assert any("Unsupported claim" in issue for issue in check_draft(note.myth, research)), note.myth


@pytest.mark.parametrize("topic", UNKNOWN)
def test_an_unknown_topic_finds_no_note_but_names_the_nearest(topic):
    assert find(topic) is None
    near, close = nearest(topic)
    assert len(near) == 3 and not close


def test_a_match_says_which_note_it_used_and_why():
    match = find("How do vector DBs do semantic search?")
    assert match.note.slug == "vector-databases" and match.by == 'alias "semantic search"'


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(NOTES), st.randoms(use_true_random=False), st.sampled_from(["", "How ", "Explain "]))
def test_word_order_case_and_plurals_do_not_matter(note, rnd, lead):
    alias = max(note.aliases, key=len)
    shuffled = alias.split()
    rnd.shuffle(shuffled)
    asked = lead + " ".join(w.upper() if rnd.random() < 0.3 else w for w in shuffled)
    match = find(asked)
    assert match is not None and match.note.slug == note.slug, (asked, match and match.note.slug)


def test_a_broken_note_names_its_file_and_line():
    with pytest.raises(ValueError, match=r"x\.md line 2: a fact"):
        knowledge.parse("x", "topic: T\n- no aspects here (source: s)\n")
    with pytest.raises(ValueError, match=r"x\.md: missing aliases, keywords, myth"):
        knowledge.parse("x", "topic: T\n- [basics] a fact (source: somewhere)\n")


def test_mas_topics_lists_the_notes_and_says_which_one_a_topic_finds(capsys):
    from mas.cli import main

    assert main(["topics"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == len(NOTES) + 1 and listed[-1].startswith(f"{len(NOTES)} topics")
    assert main(["topics", "k8s pod scheduling"]) == 0
    assert capsys.readouterr().out == 'How Kubernetes schedules pods (matched by alias "pod scheduling"; 10 facts)\n'
    assert main(["topics", "Sourdough bread baking"]) == 1
    assert capsys.readouterr().out.startswith("no note on 'Sourdough bread baking'; some notes: ")


FLAW_ISSUES = {"omit": "Missing point", "number": "Number contradicts", "myth": "Unsupported claim",
               "unclear": "Unclear section"}


@pytest.mark.parametrize("note", NOTES, ids=lambda n: n.slug)
def test_every_topic_gets_two_flaws_the_validator_finds_and_one_revision_fixes(note):
    import json

    from mas.client import make_client
    from mas.memory import SQLiteMemory
    from mas.offline.instructions import read
    from mas.offline.prose import bullets_of
    from mas.offline.writer import first_draft_flaws
    from mas.orchestrator import Orchestrator
    from mas.prompts import SYSTEM_PROMPTS

    with SQLiteMemory(":memory:") as memory:
        result = Orchestrator(memory, client=make_client(offline=True), progress=None).run(note.topic, run_id="r")
        run = memory.scoped("r")
        flaws = first_draft_flaws(note.topic, bullets_of(run.get("research")), read(SYSTEM_PROMPTS["writer"], ""))
        found = json.loads(run.get("validation_1"))["issues"]
    assert len(flaws) == 2 and len(found) == 2
    assert sorted(FLAW_ISSUES[kind] for kind, _ in flaws) == sorted(
        next(v for v in FLAW_ISSUES.values() if issue.startswith(v)) for issue in found)
    assert (result.status, result.cycles, result.issues) == ("approved", 1, [])


def test_the_flaws_differ_across_topics():
    from mas.offline.instructions import read
    from mas.offline.writer import first_draft_flaws

    kinds = {tuple(sorted(k for k, _ in first_draft_flaws(n.topic, [f.line() for f in n.facts], read("", ""))))
             for n in NOTES}
    assert len(kinds) >= 5, kinds  # of the six pairs of four kinds
