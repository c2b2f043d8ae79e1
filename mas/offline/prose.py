"""How the offline model reads and lays out prose: points, sentences, content words, figures, sources.

Shared by the writer (`writer.py`) and the validator (`validator.py`), so both read a draft the same way:
a "(source: ...)" stays whole with the sentence it ends, figures are whole numbers standing alone (not
years, versions or ids), and "supported" compares content words (four letters or more, not stopwords).
"""

from __future__ import annotations

import re

from mas.offline import knowledge
from mas.offline.instructions import Instructions
from mas.prompts import bullets

STOPWORDS = set("""about above after again against also among and are because been before being below between both but
by can could does doing down during each either every few for from further had has have having here how into its itself
just more most much must need needs not now off once only other our out over own same shall should some such than that
the their them then there these they this those through too under until upon very was were what when where which while
who whom why will with within would you your yours usually often so""".split())
JOIN = ", and in addition, "  # how the "unclear" flaw runs two points into one sentence
LONG_SENTENCE = 45  # words (sources aside): the clarity check's limit
BEGINNER_FACTS, BEGINNER_SENTENCE = 5, 25  # facts; words of a sentence that runs two ideas together


def within(reply, n: int, ins: Instructions) -> str:
    """`reply(n)` with as many of its n points as a word limit allows, the whole reply counted (one at least)."""
    words = ins.count("word")
    while words and n > 1 and len(reply(n).split()) > words.n:
        n -= 1
    return reply(n)


def bullets_of(research_text: str) -> list[str]:
    """The research points: its bullet or numbered lines (or table rows), without their markers."""
    rows = [cells[0].strip() + (f" (source: {cells[1].strip()})" if len(cells) > 1 and cells[1].strip() else "")
            for line in research_text.splitlines()
            if line.startswith("|") and not re.fullmatch(r"[|\s:-]+", line)
            and (cells := line.strip("| ").split(" | ")) and cells[0].strip() not in ("Fact", "Point")]
    return bullets(research_text) or rows or [s for s in sentences(drop_notes(research_text))
                                               if len(content(s)) >= 3]


def drop_notes(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not re.fullmatch(r"\s*(#.*|([*_]).*\2)\s*", line))


def layout(lines: list[str], ins: Instructions, default: str, columns: tuple[str, str],
            facts: list[knowledge.Fact] | None = None) -> str:
    layout = ins.layout or ("prose" if ins.plain else default)  # plain text: no markdown lists unless asked
    if not lines:
        return ""
    if layout == "numbered":
        return "\n".join(f"{i}. {line}" for i, line in enumerate(lines, 1))
    if layout == "table":
        rows = [(f.text, f.source) if facts else split_source(line) for f, line in zip(facts or lines, lines)]
        return "\n".join([f"| {columns[0]} | {columns[1]} |", "|---|---|",
                          *(f"| {a.replace('|', '/')} | {b.replace('|', '/')} |" for a, b in rows)])
    if layout == "bullets":
        return "\n".join(f"- {line}" for line in lines)
    return "\n\n".join(as_sentence(line) for line in lines) if default == "prose" else " ".join(
        as_sentence(line) for line in lines)


def split_source(line: str) -> tuple[str, str]:
    m = re.search(r"\s*\(source:\s*(.+)\)\s*\.?$", line)
    return (line[:m.start()], m.group(1)) if m else (line, "")


def cannot_lines(ins: Instructions) -> list[str]:
    return [f"_Offline model: it {line}._" for line in ins.cannot]


# --------------------------------------------------------------------------- revision

JOINTS = (JOIN, "; ", ", so ")  # where a sentence of two ideas splits into two sentences


def split_sentence(sentence: str) -> str:
    for joint in JOINTS:
        if joint in sentence:
            head, tail = sentence.split(joint, 1)
            return f"{head.rstrip(',')}. {tail[:1].upper()}{tail[1:]}"
    return sentence


def short(sentence: str, words: int = 12) -> str:
    parts = sentence.split()
    return sentence if len(parts) <= words else " ".join(parts[:words]) + " ..."


def numbers(text: str) -> list[str]:
    return re.findall(r"\d+(?:[.,]\d+)*", text)


FIGURE = re.compile(r"(?<![\w./-])(?<!RFC )\d+(?:,\d{3})*(?![\w/-]|[.,]\d)")


YEAR = re.compile(r"(19|20)\d\d")


def figures(text: str) -> list[str]:
    """The quantities of a text a careless writer could get wrong: whole numbers standing alone
    ("5 members", "1,024 tokens", "50%"), not years, versions (TLS 1.3), ids (RFC 6749) or names (float32)."""
    return [m.group() for m in FIGURE.finditer(text) if not YEAR.fullmatch(m.group())]


def text_only(sentence: str) -> str:
    """A sentence without its "(source: ...)"."""
    return re.sub(r" ?" + SOURCE.pattern, "", sentence) if "(source:" in sentence else sentence


def share(text: str, said: set[str]) -> float:
    """The share of a text's content words (sources aside) whose stems are in `said`: how "supported" and
    "covered" are measured, and how a sentence is matched to the research point it restates."""
    words = content(text_only(text))
    return sum(stem(w) in said for w in words) / len(words) if words else 0.0


def covers(draft: str, point: str) -> bool:
    return share(point, stems(draft)) >= 0.7


def claims(draft: str) -> list[str]:
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
        out.extend(sentences(line))
    return out


def research_title(research_text: str) -> str | None:
    m = re.search(r"^#+\s*(?:Research:\s*)?(.+)$", research_text, re.M)
    return m.group(1).strip() if m else None


def as_sentence(point: str) -> str:
    point = point.strip()
    return point if point.endswith((".", ")", "!", "?")) else point + "."


def lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


SOURCE = re.compile(r"\(source:[^()]*(?:\([^()]*\)[^()]*)*\)")


def sentences(text: str) -> list[str]:
    """The sentences of a text; a "(source: ...)" stays whole with the sentence it ends, whatever its
    punctuation ("Release It! Design ...")."""
    sources = SOURCE.findall(text) if "(source:" in text else []
    if sources:
        text = SOURCE.sub(lambda m: "\x00", text.replace("\x00", " "))
    out = [s.strip() for s in re.split(r"(?<=[.!?)\x00])\s+(?=[A-Z]|\((?!source:))", text.strip()) if s.strip()]
    if sources:
        given = iter(sources)
        out = [re.sub("\x00", lambda m: next(given), s) for s in out]
    return out


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9][a-z0-9_'-]*", text.lower())


def content(text: str) -> list[str]:
    return [w for w in words(text) if len(w) >= 4 and w not in STOPWORDS]


def stem(word: str) -> str:
    return word[:-1] if word.endswith("s") and len(word) > 4 else word


def stems(text: str) -> set[str]:
    return {stem(w) for w in words(text)}


# --------------------------------------------------------------------------- anything else
