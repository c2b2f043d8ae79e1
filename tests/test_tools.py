"""Tool use through the agent's one call site (mas.tools): rounds, results, errors, limits, hooks."""

from __future__ import annotations

import asyncio

import anthropic
import pytest

from mas.agents import BaseAgent, ResearcherAgent
from mas.client import make_client
from mas.errors import AgentReplyError
from mas.hooks import call_hook
from mas.offline import ScriptedTransport, text_message
from mas.tools import MAX_RESULT_CHARS, MAX_TOOL_ROUNDS

MODEL = "claude-opus-4-6"


def tool_use(*calls: tuple[str, dict], text: str = "") -> dict:
    """A reply that calls tools, as the API sends it: optional text, then tool_use blocks."""
    content = [{"type": "text", "text": text}] if text else []
    content += [{"type": "tool_use", "id": f"toolu_{i}", "name": name, "input": args}
                for i, (name, args) in enumerate(calls)]
    return {"id": "msg_t", "type": "message", "role": "assistant", "model": MODEL, "content": content,
            "stop_reason": "tool_use", "stop_sequence": None, "usage": {"input_tokens": 10, "output_tokens": 5}}


def agent_with(transport, tools, **kwargs) -> BaseAgent:
    return ResearcherAgent(client=make_client(transport=transport), model=MODEL, tools=tools, **kwargs)


@anthropic.beta_tool
def add(a: int, b: int) -> str:
    """Add two whole numbers.

    Args:
        a: the first number
        b: the second number
    """
    return str(a + b)


def test_a_round_of_tool_calls_sends_the_results_back_and_keeps_every_turn():
    transport = ScriptedTransport([tool_use(("add", {"a": 2, "b": 3}), ("add", {"a": 1, "b": 1}), text="Adding."),
                                   text_message("2 + 3 = 5 and 1 + 1 = 2.")])
    agent = agent_with(transport, [add])
    assert agent.run("What are 2 + 3 and 1 + 1?") == "2 + 3 = 5 and 1 + 1 = 2."
    first, second = transport.requests
    # the API's own definition of the tool, from the SDK's helper: name, docstring, schema
    assert first["tools"] == [add.to_dict()] and first["tools"][0]["input_schema"]["required"] == ["a", "b"]
    assert second["messages"][-2]["role"] == "assistant"
    assert [b["type"] for b in second["messages"][-2]["content"]] == ["text", "tool_use", "tool_use"]
    assert second["messages"][-1] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_0", "content": "5"},
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "2"}]}
    # the history holds the whole exchange, so a follow-up continues it; usage counts both calls
    assert [turn["role"] for turn in agent.history] == ["user", "assistant", "user", "assistant"]
    assert agent.usage.calls == 2 and agent.usage.input_tokens == 10


def test_a_plain_function_becomes_an_sdk_tool_and_names_must_differ():
    def lookup(term: str) -> str:
        """Look a term up."""
        return term.upper()

    agent = agent_with(ScriptedTransport(), [lookup])
    assert agent.tools[0].to_dict() == anthropic.beta_tool(lookup).to_dict()
    with pytest.raises(ValueError, match="distinct"):
        agent_with(ScriptedTransport(), [lookup, lookup])


@pytest.mark.parametrize("call, said", [
    (("add", {"a": 1}), "ValueError: Invalid arguments for function add"),  # the SDK's own validation
    (("divide", {"a": 1}), "LookupError: no tool named 'divide'; the tools are: add, explode"),
    (("explode", {}), "RuntimeError: boom"),
])
def test_a_failing_or_unknown_tool_goes_back_to_the_model_as_an_error_result(call, said):
    @anthropic.beta_tool
    def explode() -> str:
        """Always fails."""
        raise RuntimeError("boom\nsecond line never sent")

    transport = ScriptedTransport([tool_use(call), text_message("I could not compute it.")])
    assert agent_with(transport, [add, explode]).run("compute") == "I could not compute it."
    [result] = transport.requests[1]["messages"][-1]["content"]
    assert result == {"type": "tool_result", "tool_use_id": "toolu_0", "content": said, "is_error": True}


def test_the_round_limit_is_explicit_and_a_model_past_it_is_an_error_not_an_answer():
    transport = ScriptedTransport([tool_use(("add", {"a": 1, "b": 1}))] * 3)
    agent = agent_with(transport, [add], max_tool_rounds=2)
    with pytest.raises(AgentReplyError, match=r"still calling tools \(add\) after 2 rounds.*max_tool_rounds=2"):
        agent.run("loop forever")
    assert len(transport.requests) == 3 and agent.history == []  # nothing of a failed run is kept
    assert agent_with(ScriptedTransport(), [add]).max_tool_rounds == MAX_TOOL_ROUNDS
    with pytest.raises(ValueError, match="max_tool_rounds must be >= 1"):
        agent_with(ScriptedTransport([]), [add], max_tool_rounds=0).run("x")


def test_every_round_goes_through_the_hooks():
    seen = []

    def hook(agent, request):
        seen.append(len(request["messages"]))
        return lambda message, error: seen.append(message.stop_reason)

    transport = ScriptedTransport([tool_use(("add", {"a": 1, "b": 2})), text_message("3")])
    with call_hook(hook):
        agent_with(transport, [add]).run("1 + 2?")
    assert seen == [1, "tool_use", 3, "end_turn"]


def test_a_tracer_sees_each_round_and_labels_the_rounds_that_send_tool_results():
    from mas.tracing import Tracer

    transport = ScriptedTransport([tool_use(("add", {"a": 1, "b": 2})), tool_use(("add", {"a": 3, "b": 3})),
                                   text_message("3, then 6")])
    with Tracer() as tracer:
        agent_with(transport, [add]).run("<topic>sums</topic>")
    assert [(s.step, s.stop_reason) for s in tracer.spans] == [
        ("research", "tool_use"), ("tool results", "tool_use"), ("tool results", "end_turn")]


def test_a_huge_result_is_cut_with_a_note_the_model_reads():
    @anthropic.beta_tool
    def dump() -> str:
        """Returns a lot."""
        return "x" * (MAX_RESULT_CHARS + 10)

    transport = ScriptedTransport([tool_use(("dump", {})), text_message("done")])
    agent_with(transport, [dump]).run("dump it")
    content = transport.requests[1]["messages"][-1]["content"][0]["content"]
    assert content.endswith("[cut: 10 more characters]") and len(content) < MAX_RESULT_CHARS + 40


def test_arun_awaits_async_tools_and_calls_sync_ones():
    @anthropic.beta_async_tool
    async def slow_add(a: int, b: int) -> str:
        """Add, slowly."""
        await asyncio.sleep(0)
        return str(a + b)

    transport = ScriptedTransport([tool_use(("slow_add", {"a": 2, "b": 2}), ("add", {"a": 3, "b": 3})),
                                   text_message("4 and 6")])
    agent = ResearcherAgent(async_client=make_client(transport=transport, asynchronous=True), model=MODEL,
                            tools=[slow_add, add])
    assert asyncio.run(agent.arun("sums")) == "4 and 6"
    assert [r["content"] for r in transport.requests[1]["messages"][-1]["content"]] == ["4", "6"]
