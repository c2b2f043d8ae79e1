"""Hierarchical orchestration: a research team that behaves like one agent, and a depth limit.

    team = ResearchTeam(["Multi-agent LLM systems",
                         ResearchTeam(["Vector databases", "Prompt caching"], angle="Retrieval and cost")])
    Orchestrator(researcher=team).run(topic)      # the orchestrator sees one "researcher"

A `ResearchTeam` has `.run(task) -> str`, `.reset()`, `.usage` and `.name`, so an `Orchestrator`
(or another team) delegates to it as to an agent. For each angle it spins up a sub-team: a
researcher with a check on its notes (bullet points, or a re-ask with the problem), or a nested
`ResearchTeam` that does the same one level down. It merges the bullets of every angle, without
duplicates, under one heading per angle, which is what the writer and validator read.

Guards, both explicit:
- depth: the top orchestrator is depth 0, a team it calls runs at depth 1, a team inside that
  one at depth 2, and so on (a context variable carries the depth down the calls). Before any
  call, a team measures how deep its tree goes; if that passes `max_depth` (the smallest limit
  of the teams on the way down), `DepthLimitExceeded` is raised and nothing is created or sent.
  A team that contains itself is just an infinitely deep tree, refused the same way.
- budget: `mas.budget.Budget` around the whole run covers every agent of the tree.
Both are `RunStopped`, so the orchestrator ends the run with their status and reason. Each
finished angle is checkpointed (in the team's `memory`, or in-process) under a hash of everything that
defines its work (`work_key`), so a resumed run repeats no call of the angles already done, and an angle
whose inputs changed is done again; the checkpoints are dropped once the team's research is whole.

Simplified on purpose: the angles run one after another (notebook 06 shows the parallel fan-out)
and the tree is declared up front; the check on notes is local code, not another model call.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import anthropic

from mas.agents import DEFAULT_MAX_TOKENS, ResearcherAgent
from mas.client import default_model, make_client
from mas.contracts import Usage
from mas.errors import AgentReplyError, DepthLimitExceeded
from mas.hooks import call_hook
from mas.prompts import DEFAULT_AUDIENCE, NO_RESEARCH, SYSTEM_PROMPTS, bullets, is_no_research, tag, tagged

if TYPE_CHECKING:
    from mas.memory import Memory

DEFAULT_MAX_DEPTH = 3
CHECK_ATTEMPTS = 2  # the first notes, plus one re-ask with the problem fed back

# (depth of the team running now, the tightest max_depth on the way down); 0 = not in a team
_depth: ContextVar[tuple[int, int | None]] = ContextVar("mas_team_depth", default=(0, None))


def current_depth() -> int:
    """The depth of the team running now: 0 outside any team (the top orchestrator's own agents)."""
    return _depth.get()[0]


@contextmanager
def calls_by_depth() -> Iterator[Counter]:
    """Count the model calls answered inside the `with`, by the depth they were made at."""
    counts: Counter = Counter()

    def hook(agent: Any, request: dict):
        depth = current_depth()
        return lambda message, error: counts.update([depth]) if message is not None else None

    with call_hook(hook):
        yield counts


def check_notes(text: str) -> list[str]:
    """What is wrong with a researcher's notes (empty: nothing), the team's check before merging.

    >>> check_notes("- a fact")
    []
    >>> check_notes("Vector databases are great.")
    ['the notes have no bullet points (one fact per bullet is required)']
    """
    if not text.strip():
        return ["the notes are empty"]
    if is_no_research(text):  # an honest "nothing known" is a usable answer: it is not asked again
        return []
    if not bullets(text):
        return ["the notes have no bullet points (one fact per bullet is required)"]
    return []


def merge(topic: str, parts: Sequence[tuple[str, str]]) -> str:
    """One research text from (angle, notes) pairs: a heading per angle, each bullet once.

    >>> print(merge("T", [("A", "- x\\n- y"), ("B", "- y\\n- z")]))
    ## Research: T
    <BLANKLINE>
    ### A
    - x
    - y
    <BLANKLINE>
    ### B
    - z
    """
    known = [(angle, notes) for angle, notes in parts if not is_no_research(notes)]
    if parts and not known:  # no angle found anything: say so, rather than merge the admissions
        return f"{NO_RESEARCH} none of the {len(parts)} angles of {topic!r} has notes ({parts[0][1].strip()})"
    seen: set[str] = set()
    sections = [f"## Research: {topic}"]
    for angle, notes in known:
        fresh = []
        for point in bullets(notes):
            key = " ".join(point.lower().split())
            if key not in seen:
                seen.add(key)
                fresh.append(f"- {point}")
        if fresh:
            sections.append(f"### {angle}\n" + "\n".join(fresh))
    if len(known) < len(parts):
        sections.append(f"_No notes on: {', '.join(angle for angle, notes in parts if is_no_research(notes))}._")
    return "\n\n".join(sections)


def angle_task(angle: str, audience: str, context: str) -> str:
    """What one sub-team is asked: its angle as the topic, the wider research as context (each escaped,
    so an angle or a topic cannot open or close a tag of the task).

    >>> print(angle_task("Cost", "engineers", "AI</topic>"))
    <topic>Cost</topic>
    <audience>engineers</audience>
    <context>One angle of a wider research on: AI&lt;/topic></context>
    <BLANKLINE>
    Research this angle for this audience.
    """
    return (f"{tagged('topic', angle)}\n{tagged('audience', audience)}\n"
            f"{tagged('context', f'One angle of a wider research on: {context}')}\n\n"
            "Research this angle for this audience.")


def work_key(name: str, work: Any) -> str:
    """A checkpoint's key: the team's name and a short, stable hash of everything that defines the work,
    so a changed input (topic, angle, audience, prompt, model) never finds another input's notes.

    >>> work_key("ResearchTeam", {"task": "t", "model": "m"})
    'ResearchTeam:ad53bf40cace'
    """
    text = json.dumps(work, sort_keys=True, ensure_ascii=False)
    return f"{name}:{hashlib.sha256(text.encode()).hexdigest()[:12]}"


class ResearchTeam:
    """A research orchestrator with one sub-team per angle; it behaves like a researcher agent."""

    role = "researcher"

    def __init__(self, angles: Sequence[str | ResearchTeam], *, angle: str | None = None,
                 client: anthropic.Anthropic | None = None, model: str | None = None,
                 max_tokens: int = DEFAULT_MAX_TOKENS, max_depth: int = DEFAULT_MAX_DEPTH, memory: Memory | None = None,
                 name: str | None = None, check_attempts: int = CHECK_ATTEMPTS):
        if not angles:
            raise ValueError("a ResearchTeam needs at least one angle")
        for a in angles:
            if isinstance(a, ResearchTeam) and not a.angle:
                raise ValueError("a nested ResearchTeam needs angle=... (what it researches for its parent)")
            if not isinstance(a, (str, ResearchTeam)):
                raise TypeError(f"an angle is a string or a ResearchTeam, got {type(a).__name__}")
            if isinstance(a, str) and not a.strip():
                raise ValueError("an angle must be a non-empty string")
        if max_depth < 1 or check_attempts < 1:
            raise ValueError(f"max_depth and check_attempts must be >= 1, got {max_depth} and {check_attempts}")
        self.angles, self.angle = list(angles), angle
        self.name = name or (f"ResearchTeam ({angle})" if angle else "ResearchTeam")
        self.model, self.max_tokens, self.max_depth = model, max_tokens, max_depth
        self.check_attempts = check_attempts
        self.memory = memory  # where finished angles are checkpointed; None: in this process only
        self.usage = Usage()
        self._client = client
        self._local: dict[str, str] = {}

    @property
    def client(self) -> anthropic.Anthropic:
        if self._client is None:
            self._client = make_client()
        return self._client

    def height(self, cap: int = 100) -> int:
        """Levels of teams in this tree, itself included, counted up to `cap` (a cycle reaches it).

        >>> ResearchTeam(["a", ResearchTeam(["b"], angle="c")]).height()
        2
        """
        subs = [a for a in self.angles if isinstance(a, ResearchTeam)]
        if cap <= 1 or not subs:
            return 1
        return 1 + max(sub.height(cap - 1) for sub in subs)

    def reset(self) -> None:
        """Nothing to forget: every run starts its researchers afresh (checkpoints are kept for a resume)."""

    def run(self, task: str) -> str:
        depth, inherited = _depth.get()
        level = depth + 1
        limit = self.max_depth if inherited is None else min(inherited, self.max_depth)
        allowed = limit - level + 1  # team levels this tree may still have, this one included
        levels = self.height(cap=max(allowed, 0) + 1)  # enough to see it is too deep, and no further
        if levels > allowed:
            raise DepthLimitExceeded(
                f"depth limit: {self.name} at depth {level} would take the team tree to depth "
                f"{level + levels - 1}, past max_depth={limit}; nothing was sent (flatten the tree or raise max_depth)")
        token = _depth.set((level, limit))
        try:
            return self._research(task)
        finally:
            _depth.reset(token)

    # ------------------------------------------------------------------ inside the team

    def _research(self, task: str) -> str:
        if not task.strip():
            raise ValueError(f"{self.name} was given an empty task: give it <topic>...</topic> "
                             "(mas.prompts.research_task)")
        topic = tag(task, "topic") or task.strip().splitlines()[0]
        audience = tag(task, "audience") or DEFAULT_AUDIENCE
        context = tag(task, "context")
        wider = f"{context.removeprefix('One angle of a wider research on: ')} > {topic}" if context else topic
        parts, keys = [], []
        for angle in self.angles:
            sub_task = angle_task(_label(angle), audience, wider)
            # keyed by the angle's whole definition, not its place: a resume with a changed angle, topic,
            # audience, prompt or model re-does that angle and reuses the others
            key = work_key(self.name, {"task": sub_task, "by": self._worker(angle)})
            notes = self._load(key)
            if notes is None:
                notes = self._sub_team(angle, sub_task)
                self._save(key, notes)
            parts.append((_label(angle), notes))
            keys.append(key)
        for key in keys:  # the caller keeps the merged research from here
            self._drop(key)
        return merge(topic, parts)

    def _worker(self, angle: str | ResearchTeam) -> dict[str, Any]:
        """What, besides its task, makes an angle's notes: the researcher's model, prompt and limits, or the
        whole definition of a nested team (its angles and their workers, recursively). The tree is finite
        here: `run` refused a cycle before any research began."""
        if isinstance(angle, ResearchTeam):
            return {"team": [{"angle": _label(a), "by": angle._worker(a)} for a in angle.angles]}
        return {"model": self.model or default_model(), "max_tokens": self.max_tokens,
                "system": SYSTEM_PROMPTS["researcher"], "check_attempts": self.check_attempts}

    def _sub_team(self, angle: str | ResearchTeam, task: str) -> str:
        if isinstance(angle, ResearchTeam):
            if angle._client is None:  # a nested team without its own client shares its parent's
                angle._client = self.client
            if angle.memory is None:
                angle.memory = self.memory
            return self._measured(angle, lambda: angle.run(task))
        researcher = ResearcherAgent(client=self.client, model=self.model, max_tokens=self.max_tokens,
                                     name=f"Researcher ({angle})")
        return self._measured(researcher, lambda: self._checked(researcher, task))

    def _checked(self, researcher: ResearcherAgent, task: str) -> str:
        """The researcher's notes once they pass `check_notes`, re-asked with the problem at most
        `check_attempts` answers in all; notes that never pass are an error, never merged."""
        for _ in range(self.check_attempts):
            notes = researcher.run(task)
            problems = check_notes(notes)
            if not problems:
                return notes
            task = (f"Your notes could not be used: {problems[0]}. Answer again with concise bullet points, "
                    "one fact per bullet.")
        raise AgentReplyError(researcher.name, "invalid",
                              f"no usable notes after {self.check_attempts} answers; last: {problems[0]}", notes)

    def _measured(self, member: Any, work) -> str:
        before = member.usage.model_copy()
        try:
            return work()
        finally:  # what a member used counts even when it failed half-way
            self.usage += member.usage - before

    def _load(self, key: str) -> str | None:
        return self.memory.get(key) if self.memory is not None else self._local.get(key)

    def _save(self, key: str, notes: str) -> None:
        if self.memory is not None:
            self.memory.set(key, notes)
        else:
            self._local[key] = notes

    def _drop(self, key: str) -> None:
        if self.memory is not None:
            self.memory.delete(key)
        else:
            self._local.pop(key, None)


def _label(angle: str | ResearchTeam) -> str:
    return angle.angle if isinstance(angle, ResearchTeam) else angle
