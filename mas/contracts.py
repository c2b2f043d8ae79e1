"""Agent contracts enforced on the way out: a reply fits its pydantic model, or it is an error.

Two ways to get a structured answer, one rule for both:

- `ask_structured(agent, task, Model)`: the agent answers in plain text; the text must be the
  JSON object and nothing else (`parse_reply`). No fence stripping, no "find the braces": a
  reply that needs repair is a reply the contract did not get, so the model is asked again
  with the error fed back, at most `attempts` answers in all.
- `parse_structured(client, Model, ...)`: the SDK's structured outputs,
  `client.messages.parse(output_format=Model)`, where the API constrains the JSON to the schema.
  The same re-ask applies when the parse still fails.

Either way, `stop_reason` "max_tokens" (the JSON is cut off) or "refusal" is never parsed as
success, and nothing is ever filled in with a default.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import pydantic

if TYPE_CHECKING:
    import anthropic

    from mas.agents import BaseAgent

T = TypeVar("T", bound=pydantic.BaseModel)
ATTEMPTS = 3  # the first answer plus two re-asks


class ReplyError(ValueError):
    """A reply that does not fit its contract; `reason` says why in one line."""

    def __init__(self, reason: str, reply: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.reply = reply


class ContractError(RuntimeError):
    """No answer fitted the contract within the allowed attempts; `reasons` holds each one's."""

    def __init__(self, schema: type, reasons: list[str]):
        super().__init__(f"no valid {schema.__name__} after {len(reasons)} answers; last: {reasons[-1]}")
        self.reasons = reasons


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
    mas.contracts.ReplyError: not valid JSON (it starts with 'Sure! {'; send the object alone, without code fences or prose): Invalid JSON: expected value at line 1 column 1
    """
    if stop_reason == "max_tokens":
        raise ReplyError("the reply was cut off at max_tokens, so the JSON is incomplete", text)
    if stop_reason == "refusal":
        raise ReplyError("the model refused to answer", text)
    stripped = text.strip()
    if not stripped:
        raise ReplyError("the reply was empty", text)
    try:
        return schema.model_validate_json(stripped)
    except pydantic.ValidationError as err:
        raise ReplyError(_explain(err, stripped), text) from None


def _explain(err: pydantic.ValidationError, text: str) -> str:
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


def reask(schema: type[pydantic.BaseModel], reason: str) -> str:
    """What the model hears after an answer that did not fit: the error, and the contract again."""
    fields = ", ".join(f'"{name}"' for name in schema.model_fields)
    return (f"Your answer could not be used: {reason}\n\nAnswer again with exactly one JSON object with the "
            f"fields {fields} and nothing else: no code fences, no prose.")


def ask_structured(agent: BaseAgent, task: str, schema: type[T], attempts: int = ATTEMPTS,
                   reask_task: Any = None) -> T:
    """Ask `agent` and read its answer as `schema`; re-ask with the error, at most `attempts` answers.

    Starts from an empty history, so a repeated question costs the same each time. Raises
    `ContractError` when no answer fits.
    """
    from mas.agents import AgentReplyError

    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    agent.reset()
    reasons: list[str] = []
    for _ in range(attempts):
        try:
            text = agent.run(task)
            return parse_reply(text, schema, agent.last_message.stop_reason if agent.last_message else None)
        except ReplyError as err:
            reasons.append(err.reason)
        except AgentReplyError as err:
            if err.kind not in ("refusal", "max_tokens", "empty"):
                raise
            reasons.append(str(err).split(": ", 1)[1])
            # the unusable answer stays in the conversation, so the re-ask reads naturally
            agent.history += [{"role": "user", "content": task}, {"role": "assistant", "content": err.reply or "(empty)"}]
        task = reask_task(reasons[-1]) if reask_task else reask(schema, reasons[-1])
    raise ContractError(schema, reasons)


def parse_structured(client: anthropic.Anthropic, schema: type[T], *, model: str, max_tokens: int,
                     messages: list[dict], system: str | None = None, attempts: int = ATTEMPTS) -> T:
    """`client.messages.parse(output_format=schema)` with the same contract: the stop reason is
    checked before the JSON is trusted, and a failed parse is re-asked with the error."""
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    messages = list(messages)
    extra: dict[str, Any] = {"system": system} if system is not None else {}
    reasons: list[str] = []
    for _ in range(attempts):
        try:
            message = client.messages.parse(model=model, max_tokens=max_tokens, messages=messages,
                                            output_format=schema, **extra)
            text = "".join(block.text for block in message.content if block.type == "text")
            if message.stop_reason in ("max_tokens", "refusal"):
                parse_reply(text, schema, message.stop_reason)  # raises with the reason, even if the JSON parsed
            if message.parsed_output is None:
                raise ReplyError("the reply had no text block to parse", text)
            return message.parsed_output
        except pydantic.ValidationError as err:
            # the SDK parses inside parse(): a truncated or refused reply fails here. For invalid
            # JSON the error carries the text itself; otherwise the reason says what was wrong.
            first = err.errors()[0]
            text = first["input"] if first["type"] == "json_invalid" and isinstance(first["input"], str) else ""
            reasons.append(_explain(err, text.strip()))
        except ReplyError as err:
            text = err.reply
            reasons.append(err.reason)
        messages += [{"role": "assistant", "content": text or "(an answer that did not fit the schema)"},
                     {"role": "user", "content": reask(schema, reasons[-1])}]
    raise ContractError(schema, reasons)
