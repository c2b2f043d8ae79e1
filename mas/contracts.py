"""The contracts between agents, as data: what a validator must answer, what a run returns; and how a reply is read.

A contract is enforced on the way out: a reply that does not fit it is an error with a reason,
never a default. In particular a validator reply that is not exactly the JSON object is *not*
an approval (the tutorial this course follows treats non-JSON as approved; notebook 03 shows
why that is dangerous). Reading is pure: `parse_reply(text, Model)` takes a reply's text and
gives the model or raises `ReplyError`; asking again is the agent's job (`BaseAgent.ask`).
No fence stripping, no "find the braces", no key given twice: a reply that needs repair or says
two things is a reply the contract did not get. `stop_reason` "max_tokens" (the JSON is cut off) or "refusal" is never parsed as success.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal, TypeVar

import pydantic
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, model_validator

from mas.errors import ReplyError

T = TypeVar("T", bound=pydantic.BaseModel)
Status = Literal["running", "approved", "max_cycles", "failed", "no_research", "stopped", "budget_exceeded",
                 "depth_exceeded",
                 "agent_failed", "circuit_open", "rejected", "awaiting_human", "awaiting_batch"]
TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def parse_reply(text: str, schema: type[T], stop_reason: str | None = "end_turn") -> T:
    """Read a reply strictly as `schema`: exactly one JSON object, nothing around it.

    >>> from pydantic import BaseModel
    >>> class Verdict(BaseModel):
    ...     approved: bool
    >>> parse_reply('{"approved": false}', Verdict)
    Verdict(approved=False)
    >>> parse_reply('Sure! {"approved": true}', Verdict)
    Traceback (most recent call last):
    ...
    mas.errors.ReplyError: not valid JSON (it starts with 'Sure! {'; send the object alone, without code fences or prose): Invalid JSON: expected value at line 1 column 1
    """
    if stop_reason == "max_tokens":
        raise ReplyError("the reply was cut off at max_tokens, so the JSON is incomplete", text)
    if stop_reason == "refusal":
        raise ReplyError("the model refused to answer", text)
    stripped = text.strip()
    if not stripped:
        raise ReplyError("the reply was empty", text)
    try:
        parsed = schema.model_validate_json(stripped)
    except pydantic.ValidationError as err:
        raise ReplyError(explain(err, stripped), text) from None
    # Subtle: JSON parsers keep the last of two equal keys, so `{"approved": false, "approved": true}`
    # would read as an approval. An answer that says two things is not an answer.
    try:
        _PAIRS_ONCE.decode(stripped)
    except _RepeatedKey as err:
        raise ReplyError(f"the JSON repeats the key {err.key!r}, so it says two things: send each key once",
                         text) from None
    return parsed


class _RepeatedKey(Exception):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def dump_json(model: BaseModel) -> str:
    """`model.model_dump_json()`, the same text, from the model's core serializer directly.

    Subtle: the orchestrator saves a step's usage (and a verdict) right after each model call, when the caches are
    cold; there, `model_dump_json`'s own Python layer (sixteen keyword arguments passed on) cost as much as the
    serializing itself (bench/profile_call_overhead.py). For mas's own models, which do not override it.

    >>> dump_json(Usage(calls=1, input_tokens=5)) == Usage(calls=1, input_tokens=5).model_dump_json()
    True
    """
    return model.__pydantic_serializer__.to_json(model).decode()


def _no_repeated_key(pairs: list[tuple[str, object]]) -> dict:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise _RepeatedKey(key)
        seen.add(key)
    return dict(pairs)


# One decoder for every reply, as json.loads keeps one for plain loads: a decoder built per call (what
# json.loads(text, object_pairs_hook=...) does) cost as much as the decoding itself.
_PAIRS_ONCE = json.JSONDecoder(object_pairs_hook=_no_repeated_key)


def explain(err: pydantic.ValidationError, text: str) -> str:
    first = err.errors()[0]
    if first["type"] == "json_invalid":
        if "EOF while parsing" in first["msg"] and text.startswith("{"):
            return "the JSON ends before it is complete (was the reply cut off at max_tokens?)"
        hint = ""
        if not text.startswith("{") or not text.endswith("}"):
            hint = f" (it starts with {text[:7]!r}; send the object alone, without code fences or prose)"
        return f"not valid JSON{hint}: {first['msg']}"
    where = ".".join(str(p) for p in first["loc"]) or "the object"
    return f"JSON does not fit the schema: {where}: {first['msg']}"


class ValidationResult(BaseModel):
    """The validator's verdict on one draft."""

    model_config = ConfigDict(extra="forbid")

    # Strict types: "yes", 1 or "true" are not an approval; only JSON true is.
    issues: list[StrictStr] = Field(description="What is wrong with the draft; empty when nothing is.")
    approved: StrictBool = Field(description="True only when the draft can be published as it is.")
    confidence: float = Field(1.0, ge=0.0, le=1.0, description="How sure the validator is, 0 to 1.")

    @model_validator(mode="after")
    def _approval_means_no_issues(self) -> ValidationResult:
        if self.approved and self.issues:
            raise ValueError("approved is true but issues are listed: approve only a draft with no issues")
        return self


def parse_validation(text: str, stop_reason: str | None = "end_turn") -> ValidationResult:
    """Read a validator reply strictly: exactly the JSON object, nothing around it.

    >>> parse_validation('{"issues": [], "approved": true}').approved
    True
    >>> parse_validation('```json\\n{"issues": [], "approved": true}\\n```')
    Traceback (most recent call last):
    ...
    mas.errors.ReplyError: not valid JSON (it starts with '```json'; send the object alone, without code fences or prose): Invalid JSON: expected value at line 1 column 1
    """
    return parse_reply(text, ValidationResult, stop_reason)


COUNTS = ("calls", *TOKEN_FIELDS)


class Usage(BaseModel):
    """Tokens and calls, added up over a run (or one agent)."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    def add(self, usage: dict[str, int]) -> None:
        """Count one call with this usage (a dict as `mas.usage_of` gives)."""
        # Subtle: straight into the fields' dict, as every figure here is an int: pydantic's own
        # __setattr__ costs about a microsecond a field, and this runs after every model call.
        figures = self.__dict__
        figures["calls"] += 1
        for key in TOKEN_FIELDS:
            figures[key] += usage.get(key, 0)

    def counts(self) -> dict[str, int]:
        """The figures as plain numbers (a snapshot for `add_since`)."""
        return {key: self.__dict__[key] for key in COUNTS}

    def add_since(self, current: Usage, before: dict[str, int]) -> None:
        """Add what `current` counted since the snapshot `before` (`current.counts()` earlier).

        >>> total, agent = Usage(), Usage(calls=2, input_tokens=5)
        >>> before = agent.counts(); agent.add({"input_tokens": 3}); total.add_since(agent, before)
        >>> total.calls, total.input_tokens
        (1, 3)
        """
        figures, now = self.__dict__, current.__dict__  # plain ints: see `add`
        for key, value in before.items():
            figures[key] += now[key] - value

    def __add__(self, other: Usage) -> Usage:
        """Field by field.

        >>> (Usage(calls=1, input_tokens=10) + Usage(calls=2, output_tokens=5)).model_dump()["calls"]
        3
        """
        return Usage(**{f: getattr(self, f) + getattr(other, f) for f in Usage.model_fields})

    def __iadd__(self, other: Usage) -> Usage:
        """In place, so a count shared with others (a run's total) is updated where it is."""
        for f in Usage.model_fields:
            setattr(self, f, getattr(self, f) + getattr(other, f))
        return self

    def __sub__(self, other: Usage) -> Usage:
        """What was added since `other` (an earlier copy of the same count)."""
        return Usage(**{f: getattr(self, f) - getattr(other, f) for f in Usage.model_fields})


class CheckedVerdict(ValidationResult):
    """A verdict as the orchestrator saves it: bound to the draft it judged by that text's sha256, so
    no verdict can approve a draft it did not read (one written over by another process, say)."""

    draft_sha256: str | None = Field(None, description="sha256 of the draft judged; None in runs saved by older mas.")

    @classmethod
    def of(cls, verdict: ValidationResult, draft: str) -> CheckedVerdict:
        # the verdict's own field values (no model_dump: no serializing to copy them), validated again as this model
        return cls(**verdict.__dict__, draft_sha256=sha256_of(draft))

    def judged(self, draft: str | None) -> bool:
        """Whether this is a verdict on exactly `draft`."""
        return draft is not None and self.draft_sha256 == sha256_of(draft)


def sha256_of(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class RunResult(BaseModel):
    """What `Orchestrator.run` returns: the report and how the run went.

    Only a finished run has a `report`: the approved draft, or at the revision limit (`max_cycles`, `approved`
    False) the draft with the fewest issues. A run that stopped (failed, no_research, a budget...) has none: its
    latest draft, never validated as a report, is `draft`."""

    run_id: str
    topic: str
    report: str = Field(description="The approved draft; for max_cycles the best draft (not approved); '' for a run "
                        "that stopped before either (see `draft`).")
    approved: bool
    cycles: int = Field(description="Revisions made (each one a validate -> revise cycle).")
    issues: list[str] = Field(description="The validator's remaining issues: of `report` for max_cycles, else of the "
                              "last draft judged; empty when approved.")
    status: Status = Field(description="approved | max_cycles | failed | no_research, or what stopped it: "
                           "budget_exceeded | depth_exceeded | agent_failed | circuit_open | rejected | awaiting_human | "
                           "awaiting_batch")
    reason: str = Field("", description="Why the run stopped, in one line.")
    usage: Usage = Field(default_factory=Usage, description="Tokens and calls of the whole run, resumes included.")
    draft: str = Field("", description="The latest draft written, whatever the status ('' when none); for a run "
                       "that stopped, its work so far, unvalidated.")
    report_draft: int = Field(0, description="Which draft `report` is (1 for draft_1); 0 when there is no report.")
