"""What the offline model understands of a prompt: a small, documented vocabulary of instructions.

It is read from the system prompt and from the task's own words, never from the material inside the task's
tags (`<research>`, `<draft>`, ...): text being worked on is not an instruction, the lesson of prompt
injection. The audience comes from `<audience>` or from the words. Every phrase below is matched
case-insensitively; the README's table "what the offline model honours" lists the same vocabulary, and
tests/test_prompt_sensitivity.py checks each phrase's effect.

    counts     "exactly 3 bullets", "at most two sentences", "in under 120 words", "4 paragraphs", max_tokens
    layout     "bullet points", "numbered list", "as a table", "prose" / "no bullets"
    headings   "no headings" / "with headings";  "plain text" / "no markdown";  JSON with the keys it names
    audience   beginners, newcomers, non-technical (definitions, fewer terms) vs experts (denser, no basics)
    focus      "focus on cost", "only trade-offs": the aspects of the knowledge base's facts
    sources    "cite sources" / "no sources"
    writer     "add impressive statistics", "be persuasive", "be brief", "ignore the feedback"
    validator  "approve every draft", strict / lenient, and the criteria it is told to check
    cannot     another language, a persona's voice: said in one line, not pretended
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
           "ten": 10, "eleven": 11, "twelve": 12, "a single": 1, "single": 1}
_N = r"(\d{1,3}(?:,\d{3})+|\d{1,5}|" + "|".join(sorted(NUMBERS, key=len, reverse=True)) + r")"
_UNITS = {"bullet": "item", "bullet point": "item", "point": "item", "fact": "item", "item": "item",
          "key point": "item", "sentence": "sentence", "paragraph": "paragraph", "word": "word"}
_UNIT = r"(bullet points?|key points?|bullets?|points?|facts?|items?|sentences?|paragraphs?|words?)"
_COUNT = re.compile(r"\b(exactly|at most|no more than|up to|fewer than|under|at least|only|in)?\s*"
                    r"(?:(?:" + _N[1:-1] + r")\s*(or|to|-)\s*)?" + _N
                    + r"\s+(?:short\s+|brief\s+|concise\s+|numbered\s+|main\s+)?" + _UNIT
                    + r"\b(?!\s+(?:per|each|a)\b)")
_WORDS_OR_FEWER = re.compile(r"\b" + _N + r"\s+words\s+or\s+(?:fewer|less)\b")

ASPECT_WORDS = {  # focus phrase -> the knowledge base's aspect (see mas/offline/knowledge/README.md)
    "cost": "cost", "costs": "cost", "price": "cost", "pricing": "cost", "budget": "cost", "money": "cost",
    "performance": "performance", "speed": "performance", "latency": "performance", "scale": "performance",
    "scaling": "performance", "throughput": "performance",
    "trade-off": "trade-off", "trade-offs": "trade-off", "tradeoffs": "trade-off", "drawbacks": "trade-off",
    "limitations": "trade-off", "pros and cons": "trade-off", "downsides": "trade-off",
    "failure": "failure", "failures": "failure", "pitfalls": "failure", "risks": "failure", "failure modes": "failure",
    "security": "security", "safety": "security", "privacy": "security",
    "use cases": "use", "applications": "use", "practice": "use", "real-world use": "use", "examples": "use",
    "how it works": "how", "internals": "how", "mechanics": "how", "main components": "how",
    "comparison": "compare", "alternatives": "compare", "compares": "compare", "versus": "compare",
    "basics": "basics", "fundamentals": "basics", "key concepts": "basics", "definition": "basics",
}
_FOCUS = re.compile(r"\b(?:focus(?:es|ing)?\s+(?:only\s+)?on|only\s+(?:on|about)|concentrate\s+on|"
                    r"emphasi[sz]e|(?:angle|aspect)s?\s*:)\s+([^.;\n]{2,80})")
_ASPECT = re.compile(r"\b(" + "|".join(sorted(map(re.escape, ASPECT_WORDS), key=len, reverse=True)) + r")\b")
_ONLY_ASPECT = re.compile(r"\bonly (?:the )?" + _ASPECT.pattern)  # "only trade-offs", "only the costs"

BEGINNER = re.compile(r"\b(beginners?|newcomers?|novices?|non-technical|students?|no background|laypeople|"
                      r"first-time|new to)\b")
EXPERT = re.compile(r"\b(experts?|specialists?|senior engineers?|advanced|practitioners?|researchers in the field)\b")
LANGUAGES = ("French", "Spanish", "German", "Italian", "Portuguese", "Dutch", "Chinese", "Japanese", "Korean",
             "Russian", "Arabic", "Hindi", "Polish", "Swedish", "Turkish", "Greek", "Latin")
_LANGUAGE = re.compile(r"\b(?:in|into|translate(?:d)?\s+(?:it\s+)?(?:in)?to)\s+(" + "|".join(LANGUAGES)
                       + r")(?=\s*(?:[.,;:!?)]|$|only|please|instead))", re.I)  # not "in Latin America"
_PERSONA = re.compile(r"\b(?:(?:write|writes|speak|talk|answer|reply|respond|sound)s?\s+(?:it\s+)?like |"
                      r"in the (?:voice|style) of |as if you were )((?:an? |the )?[a-z][a-z '-]{1,40})", re.I)


@dataclass(frozen=True)
class Count:
    unit: str  # item | sentence | paragraph | word
    n: int
    mode: str  # exactly | at most | at least

    def limit(self, available: int) -> int:
        return available if self.mode == "at least" else min(self.n, available)

    def __str__(self) -> str:
        noun = {"item": "point"}.get(self.unit, self.unit) + ("" if self.n == 1 else "s")
        return f"{self.mode} {self.n} {noun}"


@dataclass(frozen=True)
class Instructions:
    counts: tuple[Count, ...] = ()
    layout: str | None = None  # bullets | numbered | table | prose
    headings: bool | None = None
    plain: bool = False
    json_keys: tuple[str, ...] | None = None
    audience: str | None = None  # beginner | expert
    focus: tuple[str, ...] = ()
    sources: bool | None = None
    cannot: tuple[str, ...] = ()
    invent_statistics: bool = False
    persuasive: bool = False
    brief: bool = False
    ignore_feedback: bool = False
    approve_all: bool = False
    strictness: str = "default"  # lenient | default | strict
    criteria: frozenset[str] = field(default_factory=frozenset)
    criteria_only: bool = False  # "check only that ...": the named criteria replace the usual ones

    def count(self, unit: str) -> Count | None:
        return next((c for c in self.counts if c.unit == unit), None)


def outside_tags(task: str, tags: tuple[str, ...] = ("research", "draft", "issues", "topic", "document", "audience",
                                                    "context")) -> str:
    """The task's own words: what lies outside its material tags (`<research>...</research>` and the like)."""
    for name in tags:
        while (start := task.find(f"<{name}>")) >= 0 and (end := task.find(f"</{name}>", start)) >= 0:
            task = task[:start] + " " + task[end + len(name) + 3:]
    return task


def read(system: str, task: str, audience: str | None = None) -> Instructions:
    """The instructions in a system prompt and a task (its words outside the material tags).

    >>> read("Give exactly 3 bullets, no sources.", "").counts, read("", "Focus on cost.").focus
    ((Count(unit='item', n=3, mode='exactly'),), ('cost',))
    """
    text = " ".join((system + "\n" + outside_tags(task)).split())
    low = text.lower()
    return Instructions(
        counts=_counts(low), layout=_layout(low), headings=_headings(low), plain=_plain(low),
        json_keys=_json_keys(text, low), audience=_audience(audience or "", low), focus=_focus(low),
        sources=_sources(low), cannot=_cannot(text),
        invent_statistics=said(r"\b(impressive|striking|invent\w*|made-up|add)\s+(statistics|stats|numbers|figures)\b",
                               low),
        persuasive=said(r"\b(be persuasive|persuade|convince the reader|sell it|salesy|marketing copy|hype it)\b", low),
        brief=said(r"\b(be (brief|concise|short)|keep it (brief|short)|as short as possible|tl;dr)\b", low),
        ignore_feedback=said(r"\b(ignore|disregard|skip)\s+(the|any|all)\s+(feedback|issues|review|comments)\b", low),
        approve_all=said(r"\b(approve (every|each|all|any)( draft)?s?|always approve|approve everything|"
                         r"approve whatever)\b(?! (that|which|with) )", low),
        strictness=_strictness(low), criteria=_criteria(low),
        criteria_only=bool(re.search(r"\b(check|checks|verify|look at)\s+(only|just)\b|\bonly (check|verify)\b", low)))


_NEGATED = re.compile(r"\b(?:not|never|don't|dont|no|without|avoid|nor)\b(?:\s+[^\s.;:!?]+){0,2}\s*$")  # one clause


def said(pattern: str, low: str) -> bool:
    """Whether the prompt asks for `pattern`: a match not negated just before it ("never add statistics",
    "do not approve any draft that still has issues")."""
    return any(not _NEGATED.search(low[max(0, m.start() - 30):m.start()]) for m in re.finditer(pattern, low))


def _counts(low: str) -> tuple[Count, ...]:
    found: dict[str, Count] = {}
    for m in _WORDS_OR_FEWER.finditer(low):
        found.setdefault("word", Count("word", _number(m.group(1)), "at most"))
    for m in _COUNT.finditer(low):
        qualifier, ranged, n, unit = m.group(1), m.group(2), _number(m.group(3)), _UNITS[m.group(4).rstrip("s")]
        if n < 1 or n > 5000:
            continue
        if ranged:  # "one or two sentences", "three to five bullets": the upper end is the limit
            qualifier = "at most"
        if qualifier in ("at most", "no more than", "up to", "under", "fewer than") or (qualifier == "in"
                                                                                      and unit == "word"):
            mode = "at most"
            n = n - 1 if qualifier in ("fewer than", "under") else n
        elif qualifier == "at least":
            mode = "at least"
        elif qualifier is None and unit == "word":
            mode = "at most"
        else:
            mode = "exactly"
        found.setdefault(unit, Count(unit, n, mode))
    return tuple(found.values())


def _number(token: str) -> int:
    return int(token.replace(",", "")) if token[0].isdigit() else NUMBERS[token]


def _layout(low: str) -> str | None:
    if said(r"\bnumbered (list|points|steps)\b|\bas a numbered\b", low):
        return "numbered"
    if said(r"\b(as a|in a|use a|markdown|with a) table\b|\btabular\b", low):
        return "table"
    if re.search(r"\b(no bullets|no lists?|without bullets|(do not|don't|never) use (bullet|bullets|lists?))\b", low) \
            or said(r"\bprose\b", low):
        return "prose"
    if said(r"\b(bullet|bullets|bulleted|bullet points)\b", low):
        return "bullets"
    return None


def _headings(low: str) -> bool | None:
    if re.search(r"\b(no|without|avoid|(do not|don't|never) use)\s+(any\s+)?(headings|headers|titles|sections)\b",
                 low):
        return False
    if said(r"\b(with|use|add)\s+(clear\s+)?(headings|section headings|headers)\b", low):
        return True
    return None


def _plain(low: str) -> bool:
    return bool(re.search(r"\b(plain text|no markdown|without markdown|not markdown)\b", low))


def _json_keys(text: str, low: str) -> tuple[str, ...] | None:
    if "json" not in low:
        return None
    keys = re.findall(r'"([A-Za-z_][A-Za-z0-9_]*)"\s*:', text)
    if not keys:
        named = re.search(r"\b(?:with|using|the|these|its)\s+(?:keys|fields)\s*:?\s+([\w\"'`, ]{1,120})", text)
        keys = re.findall(r"[A-Za-z_]\w*", named.group(1)) if named else []
        keys = [k for k in keys if k not in ("and", "or", "the")]
    return tuple(dict.fromkeys(keys)) or None


def _audience(audience: str, low: str) -> str | None:
    for text in (audience.lower(), low):
        if said(BEGINNER.pattern, text):
            return "beginner"
        if said(EXPERT.pattern, text):
            return "expert"
    return None


def _focus(low: str) -> tuple[str, ...]:
    """The aspects a prompt focuses on; a focus on something that is not an aspect is kept as its words
    ("?regulation"), so the researcher can say it has no facts filed under it."""
    aspects = []
    for m in _FOCUS.finditer(low):
        named = [ASPECT_WORDS[a.group(1)] for a in _ASPECT.finditer(m.group(1))]
        aspects += named or ["?" + m.group(1).strip(" ,:")[:40]]
    aspects += [ASPECT_WORDS[m.group(1)] for m in _ONLY_ASPECT.finditer(low)]
    return tuple(dict.fromkeys(aspects))


def focus_of_angle(angle: str) -> tuple[str, ...]:
    """The aspects an angle names ("the trade-offs in cost"), as parallel research asks for them
    (an angle that names none: "?" and its words)."""
    if not angle.strip():
        return ()
    named = tuple(dict.fromkeys(ASPECT_WORDS[a.group(1)] for a in _ASPECT.finditer(angle.lower())))
    return named or ("?" + angle.strip()[:40],)


def _sources(low: str) -> bool | None:
    if re.search(r"\b(no|without|omit|skip|leave out)\s+(the\s+)?(sources|citations|references)\b|"
                 r"\b(do not|don't|never) (cite|(include|give|add|list)( the| any)? (sources|citations|references))\b",
                 low):
        return False
    if said(r"\b(cite|citing|note|include|with|give|add|list)\s+(the\s+|its\s+|your\s+)?(sources|citations|"
            r"references)\b|\(source:", low):
        return True
    return None


def _cannot(text: str) -> tuple[str, ...]:
    out = []
    if m := _LANGUAGE.search(text):
        out.append(f"cannot write in {m.group(1).capitalize()}; this reply is in English")
    if m := _PERSONA.search(text):
        who = re.split(r"\s+(?:and|or|but|with|while|when|who|that|in|to)\b", m.group(1).strip(), maxsplit=1)[0]
        if who and not re.match(r"(a |an |the )?(list|table|bullet|json|draft|report|this|that|these|those|"
                                r"markdown|prose|plain|one|it)\b", who, re.I):
            out.append(f"cannot write in the voice of {who}; this reply is in its plain voice")
    return tuple(out)


def _strictness(low: str) -> str:
    if re.search(r"\b(lenient|lax|relaxed|forgiving|only (flag|report) (serious|major)|be generous)\b", low):
        return "lenient"
    if re.search(r"\b(strict|strictly|rigorous|pedantic|harsh|nitpick\w*)\b", low):
        return "strict"
    return "default"


CRITERIA = {  # what a validator can be told to check -> the phrases that name it
    "coverage": r"leaves? out|left out|missing|omit\w*|coverage|covers? every|every research point",
    "support": r"not support\w*|unsupported|supported by the research|invented|made[- ]up",
    "numbers": r"factual inconsistenc\w*|contradict\w*|numbers?|figures?",
    "clarity": r"unclear|clarity|clear|readab\w*|logical gaps?",
    "sources": r"sources? (on|for) every|every (claim|fact|sentence) (has|cites|with) a source|"
               r"cit\w+ (a )?sources?|uncited|unsourced",
    "length": r"length|too long|word limit|at most \S+ words|under \S+ words",
    "audience": r"audience|beginners?|jargon|reader level",
}
_CRITERIA = {name: re.compile(r"\b(?:" + phrase + r")\b") for name, phrase in CRITERIA.items()}


def _criteria(low: str) -> frozenset[str]:
    return frozenset(name for name, pattern in _CRITERIA.items() if pattern.search(low))
