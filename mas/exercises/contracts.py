"""Checks for the exercises of notebook 04: a contract for the writer, and a reply that fails it.

Both checks try the learner's `Draft` model on the same replies the notebook uses (a fenced answer,
a bare one, one with no sections), through `writer.ask` and a `ScriptedTransport`, then compare
what the learner saw with what the contract does. See `mas.exercises` for how checks are called.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pydantic

from mas.agents import WriterAgent
from mas.client import make_client
from mas.errors import ContractError, ReplyError
from mas.exercises.core import NotYet, expect
from mas.offline import ScriptedTransport

GOOD = {"title": "Vector search", "sections": ["## Overview\n\nEmbeddings map text to vectors."]}
TASK = "<topic>Vector search</topic>\n<audience>engineers</audience>\n<research>\n- a point\n</research>"

# replies that a Draft contract must reject, and what to do when it does not
_MUST_REJECT = [
    ({**GOOD, "summary": "Short."}, ("Your Draft accepted a field nobody asked for (\"summary\"): add "
     "model_config = ConfigDict(extra=\"forbid\"), so that a misspelt key is an error, not silently dropped.")),
    ({**GOOD, "sections": []}, ("Your Draft accepted \"sections\": [], a draft with no section at all. Ask for "
     "at least one: sections: list[str] = Field(min_length=1, ...).")),
    ({**GOOD, "sections": "## Overview"}, ("Your Draft accepted one string as \"sections\": make it a list of "
     "strings, list[str].")),
    ({**GOOD, "title": ["Vector search"]}, "Your Draft accepted a list as \"title\": make it a string, str."),
    ({"sections": GOOD["sections"]}, ("Your Draft accepted a reply with no \"title\": a default such as "
     "title: str = \"Untitled\" fills in what the writer left out, and nobody notices. Give title no default, "
     "so that a missing title is an error the writer is asked to fix.")),
    ({"title": GOOD["title"]}, ("Your Draft accepted a reply with no \"sections\": a default fills in what the "
     "writer left out. Give sections no default, so that leaving them out is an error.")),
]


def _writer(replies: list[str]) -> tuple[Any, Any]:
    """A WriterAgent played by a ScriptedTransport serving `replies`, and that transport."""
    script = ScriptedTransport(replies)
    return WriterAgent(client=make_client(transport=script, max_retries=0)), script


def _contract(draft_class: Any) -> None:
    """The learner's Draft is a pydantic model with exactly the contract the exercise asks for."""
    expect(isinstance(draft_class, type) and issubclass(draft_class, pydantic.BaseModel),
           "Define Draft as a pydantic model, `class Draft(BaseModel): ...`, and pass the class itself.")
    fields = sorted(draft_class.model_fields)
    expect(fields == ["sections", "title"], f"Your Draft has the fields {fields}; the contract has exactly two, "
           "`title` and `sections`.")
    try:
        draft_class.model_validate(GOOD)
    except pydantic.ValidationError as err:
        raise NotYet(f"Your Draft rejected a valid draft, {json.dumps(GOOD)}: {err.errors()[0]['msg']}.") from None
    for reply, hint in _MUST_REJECT:
        try:
            draft_class.model_validate(reply)
        except pydantic.ValidationError:
            continue
        raise NotYet(hint)


def _text(content: Any) -> str:
    """A message's content as text: a string, or the text of its blocks.

    >>> _text([{"type": "text", "text": "```json"}, {"type": "text", "text": "{}"}])
    '```json{}'
    """
    if isinstance(content, str):
        return content
    return "".join(block.get("text", "") for block in content if isinstance(block, dict))


def check_draft_contract(draft_class: Any, result: Any, script: Any) -> str:
    """04.1: `Draft(title, sections)` rejects what it should; a fenced answer is re-asked once, then read."""
    _contract(draft_class)
    writer, own = _writer(["```json\n" + json.dumps(GOOD) + "\n```", json.dumps(GOOD)])
    expect(writer.ask(TASK, draft_class) == draft_class(**GOOD) and len(own.requests) == 2,
           "writer.ask did not read the bare answer as your Draft after the fenced one.")

    expect(isinstance(result, draft_class), f"Pass what writer.ask returned (a Draft), not "
           f"{type(result).__name__}.")
    requests = getattr(script, "requests", None)
    expect(isinstance(requests, list), "Pass the ScriptedTransport that played the writer (its `.requests` "
           "records what the writer was sent).")
    expect(len(requests) >= 2, f"Your writer was asked {len(requests)} time(s): its first reply was accepted "
           "as it was. Make that first reply the JSON inside a code fence, \"```json\\n\" + json.dumps(answer) + "
           "\"\\n```\", so that the contract rejects it and writer.ask asks again.")
    sent = requests[1].get("messages", [])
    expect(len(sent) >= 3, "The second request does not carry the first answer and the re-ask: let "
           "writer.ask(task, Draft) do the asking, with one writer.")
    first, reason = _text(sent[-2]["content"]), _text(sent[-1]["content"]).split("\n\n")[0]
    expect(first.lstrip().startswith("```"), f"Your first reply was rejected, but not for a code fence: "
           f"{reason!r}. Make it the right JSON inside a code fence, so that the re-ask is about the fence.")
    expect(len(requests) == 2, f"It took {len(requests)} requests, not 2: only the first reply should be fenced; "
           "the second, the bare JSON, is accepted.")
    return ("Draft rejects extra and missing fields, empty sections and wrong types; the fence cost one re-ask, "
            "2 requests")


def check_failing_contract(draft_class: Any, error: Any, requests: Any) -> str:
    """04.2: a writer that always answers with no sections: ContractError after 2 answers, with the reason."""
    _contract(draft_class)
    expect(isinstance(error, BaseException), "Pass the exception writer.ask raised: "
           "`except ContractError as err:` ..., then check(\"04.2\", Draft, err, requests).")
    expect(not isinstance(error, ReplyError), "A ReplyError is one answer's error: writer.ask catches it and "
           "asks again. What reaches you, when the attempts run out, is a ContractError with every answer's reason.")
    expect(not isinstance(error, pydantic.ValidationError), "You validated the reply yourself. Let "
           "writer.ask(task, Draft, attempts=2) do it, and catch what it raises.")
    expect(isinstance(error, ContractError), f"writer.ask raises a ContractError when no answer fits, not "
           f"{type(error).__name__}: {error}")
    reasons = len(error.reasons)
    expect(reasons == 2, f"Your ContractError holds {reasons} reasons, one per answer: pass attempts=2.")
    expect("sections" in error.reasons[-1] and "at least 1 item" in error.reasons[-1],
           f"The last answer failed with {error.reasons[-1]!r}, not for its empty sections: have the writer "
           "answer {\"title\": \"...\", \"sections\": []} every time.")
    expect(isinstance(requests, int) and not isinstance(requests, bool), "Pass how many requests the writer got, "
           f"a whole number (len(script.requests)), not {requests!r}.")
    writer, own = _writer([json.dumps({"title": "Vector search", "sections": []})] * 3)
    try:
        writer.ask(TASK, draft_class, attempts=2)
    except ContractError:
        pass
    expect(requests == len(own.requests), f"The writer got {len(own.requests)} requests, not {requests}: "
           "attempts=2 means two answers in all, the first and one re-ask. Count them on the transport, "
           "len(script.requests).")
    return f"ContractError after {requests} requests, one reason per answer; the last names the empty sections"


CHECKS: dict[str, Callable[..., str]] = {
    "04.1": check_draft_contract,
    "04.2": check_failing_contract,
}
