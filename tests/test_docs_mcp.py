"""`mas mcp`: the document search as an MCP server (stdio, the official `mcp` package), reached by a researcher
through the Anthropic SDK's MCP helper; the same tool, and the same notes, as in process."""

from __future__ import annotations

import asyncio
import sys

import pytest

pytest.importorskip("mcp", reason="the mcp extra: pip install -e '.[mcp]'")

from mas.agents import ResearcherAgent  # noqa: E402
from mas.client import make_client  # noqa: E402
from mas.docs_mcp import mcp_tools  # noqa: E402
from mas.offline import OfflineTransport, ScriptedTransport, text_message  # noqa: E402
from mas.prompts import CITATION, GROUNDED_RESEARCHER_PROMPT, research_task  # noqa: E402
from mas.search import DocumentIndex  # noqa: E402
from mas.tools import GroundedResearcherAgent, search_tools  # noqa: E402

TASK = research_task("How vector databases enable semantic search", "engineers")
SERVER = [sys.executable, "-m", "mas.cli", "mcp"]


def test_one_tool_two_ways_the_mcp_researcher_writes_the_same_notes_as_the_in_process_one():
    async def through_mcp():
        async with mcp_tools(SERVER) as tools:
            definitions = [(t.name, t.description, t.input_schema) for t in tools]
            agent = ResearcherAgent(async_client=make_client(transport=OfflineTransport(), asynchronous=True),
                                    tools=tools, system_prompt=GROUNDED_RESEARCHER_PROMPT)
            return definitions, await agent.arun(TASK), agent

    definitions, notes, agent = asyncio.run(through_mcp())
    index = DocumentIndex()
    index.add_knowledge_base()
    local = search_tools(index)
    assert [(name, description) for name, description, _ in definitions] == [(t.name, t.description) for t in local]
    assert [schema["required"] for _, _, schema in definitions] == [["query"], ["doc_id"]]
    in_process = GroundedResearcherAgent(index, client=make_client(transport=OfflineTransport())).run(TASK)
    assert notes == in_process and len(CITATION.findall(notes)) >= 3
    # the MCP result came back as content blocks (the SDK helper's shape), and went to the model as such
    [result] = agent.history[-2]["content"]
    assert result["type"] == "tool_result" and result["content"][0]["type"] == "text"


def test_an_mcp_tool_error_reaches_the_model_as_an_error_result():
    transport = ScriptedTransport([{
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-opus-4-6", "stop_reason": "tool_use",
        "stop_sequence": None, "usage": {"input_tokens": 1, "output_tokens": 1},
        "content": [{"type": "tool_use", "id": "toolu_1", "name": "read", "input": {"doc_id": "no-such-doc"}}]},
        text_message("No research: the document is not there.")])

    async def read_missing():
        async with mcp_tools(SERVER) as tools:
            agent = ResearcherAgent(async_client=make_client(transport=transport, asynchronous=True), tools=tools)
            return await agent.arun(TASK)

    assert asyncio.run(read_missing()).startswith("No research:")
    [result] = transport.requests[1]["messages"][-1]["content"]
    assert result["is_error"] is True and result["tool_use_id"] == "toolu_1"
    assert result["content"] == [{"type": "text", "text": "Error executing tool read: no document 'no-such-doc'; "
                                                          "search first, and use an id "
                                                          "it returns"}]


def test_mas_mcp_with_a_folder_it_cannot_use_says_so_in_one_line(tmp_path):
    import subprocess

    done = subprocess.run([*SERVER, "--docs", str(tmp_path / "absent")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines()[-1].endswith("not a folder -> give --docs a folder of .md or .txt files")
