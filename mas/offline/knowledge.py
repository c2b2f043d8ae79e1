"""The offline model's knowledge: the bundled notes in `knowledge/`, one topic a file, a source on every fact.

A note is a small text file (see `knowledge/README.md` for the format):

    topic: How vector databases enable semantic search
    aliases: vector database; vector search; semantic search
    keywords: embedding similarity nearest neighbour hnsw ann
    related: embeddings; retrieval-augmented-generation
    myth: Vector search always returns the exact nearest neighbours, whatever the index settings.
    - [basics] A vector database stores embeddings ... (source: ...)

`find(text)` is the forgiving match a researcher needs: any alias in any word order, plurals, or enough
keywords, and it says which note it used; `nearest(text)` names the closest notes for an honest "no research".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

ASPECTS = ("basics", "how", "use", "cost", "performance", "trade-off", "failure", "security", "compare")
MIN_KEYWORDS = 2  # keywords (or title words) a text must share with a note when no alias matches
_IGNORED = frozenset("""a an and are as at be by can does for from how in into is it its of on or the to what when
where which why with work works using use used about explain introduction overview guide basics""".split())


@dataclass(frozen=True)
class Fact:
    text: str
    source: str
    aspects: tuple[str, ...]

    def line(self, cite: bool = True) -> str:
        return f"{self.text} (source: {self.source})" if cite else self.text


@dataclass(frozen=True)
class Note:
    slug: str
    topic: str
    aliases: tuple[str, ...]
    keywords: frozenset[str]
    related: tuple[str, ...]
    myth: str  # a common misconception: what a careless writer adds, and what no fact supports
    facts: tuple[Fact, ...]


@dataclass(frozen=True)
class Match:
    note: Note
    by: str  # what matched: 'alias "vector search"' or 'keywords: hnsw, embedding'


def words(text: str) -> list[str]:
    """Lower-case words, a plural's final s dropped: the form matching compares.

    >>> words("Vector Databases, and HNSW!")
    ['vector', 'database', 'and', 'hnsw']
    """
    return [_singular(w) for w in re.findall(r"[a-z0-9][a-z0-9+#-]*", text.lower())]


SYNONYMS = {"db": "database", "dbs": "database", "llms": "llm", "apis": "api",  # what learners type
            **{w: w for w in ("kubernetes", "redis", "postgres", "https", "aws", "k8s", "bus")}}  # not plurals


def _singular(word: str) -> str:
    if word in SYNONYMS:
        return SYNONYMS[word]
    if len(word) > 4 and word.endswith(("ches", "shes", "xes", "sses", "zes")):
        return word[:-2]
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


@cache
def notes() -> tuple[Note, ...]:
    folder = resources.files("mas.offline").joinpath("knowledge")
    return tuple(parse(entry.name.removesuffix(".md"), entry.read_text(encoding="utf-8"))
                 for entry in sorted(folder.iterdir(), key=lambda p: p.name)
                 if entry.name.endswith(".md") and entry.name != "README.md")


def by_slug(slug: str) -> Note | None:
    return next((n for n in notes() if n.slug == slug), None)


_FACT = re.compile(r"-\s*\[([a-z, -]+)\]\s*(.+?)\s*\(source:\s*(.+)\)\s*$")


def parse(slug: str, text: str) -> Note:
    """One note from its file's text; a line that breaks the format raises ValueError naming it."""
    fields: dict[str, str] = {}
    facts = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("-"):
            m = _FACT.fullmatch(line.strip())
            aspects = tuple(a.strip() for a in m.group(1).split(",")) if m else ()
            if not m or not aspects or any(a not in ASPECTS for a in aspects):
                raise ValueError(f"{slug}.md line {number}: a fact is '- [aspect, ...] text (source: ...)', "
                                 f"aspects from {', '.join(ASPECTS)}")
            facts.append(Fact(m.group(2), m.group(3).strip(), aspects))
        elif ":" in line:
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
        else:
            raise ValueError(f"{slug}.md line {number}: not a field ('name: value') nor a fact ('- ...')")
    missing = [k for k in ("topic", "aliases", "keywords", "myth") if not fields.get(k)]
    if missing or not facts:
        raise ValueError(f"{slug}.md: missing {', '.join(missing) or 'facts'}")
    split = [a.strip() for a in fields["aliases"].split(";") if a.strip()]
    return Note(slug=slug, topic=fields["topic"], aliases=tuple(split),
                keywords=frozenset(words(fields["keywords"])),
                related=tuple(r.strip() for r in fields.get("related", "").split(";") if r.strip()),
                myth=fields["myth"], facts=tuple(facts))


def _score(note: Note, text_words: set[str]) -> tuple[int, str]:
    """How well a text names a note: an alias whose words all occur beats any number of keywords. A
    one-word alias ("attention", "recall", "Kubernetes") counts only when the text's other words are the
    note's own too ("Kubernetes pods", not "Kubernetes networking" nor "attention span")."""
    vocabulary = _vocabulary(note)
    unexplained = {w for w in text_words if w not in vocabulary and not w.isdigit()}
    best_alias = max((a for a in (note.topic, *note.aliases) if _content(a) and _content(a) <= text_words
                      and (len(_content(a)) > 1 or not unexplained)),
                     key=lambda a: len(_content(a)), default=None)
    shared = sorted((note.keywords | _content(note.topic)) & text_words)
    if best_alias is not None:
        by = "its title" if best_alias == note.topic else f'alias "{best_alias}"'
        return 100 + 10 * len(_content(best_alias)) + len(shared), by
    return len(shared), "keywords: " + ", ".join(shared)


@cache
def _vocabulary(note: Note) -> frozenset[str]:
    """Every word a note's names use: its title, its aliases, its keywords."""
    return frozenset(note.keywords | _content(note.topic) | {w for a in note.aliases for w in _content(a)})


def _content(text: str) -> set[str]:
    return {w for w in words(text) if w not in _IGNORED}


def find(text: str) -> Match | None:
    """The note a topic names, or None when no note shares an alias or MIN_KEYWORDS keywords with it.

    >>> find("semantic search with vector databases").note.slug
    'vector-databases'
    >>> find("Sourdough bread baking") is None
    True
    """
    text_words = _content(text)
    scored = [(_score(note, text_words), note) for note in notes()]
    (score, by), note = max(scored, key=lambda s: s[0][0])
    return Match(note, by) if score >= MIN_KEYWORDS else None


FEATURED = ("multi-agent-systems", "retrieval-augmented-generation", "vector-databases")  # when nothing is near


def nearest(text: str, n: int = 3) -> tuple[list[Note], bool]:
    """The notes closest to a text by the words they share, and whether any shares a word at all (when
    none does, the course's own topics)."""
    text_words = _content(text)
    ranked = sorted(notes(), key=lambda note: -_score(note, text_words)[0])
    close = [note for note in ranked if _score(note, text_words)[0] > 0][:n]
    return (close, True) if close else ([by_slug(s) for s in FEATURED if by_slug(s)][:n], False)
