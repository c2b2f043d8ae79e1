"""The document search of `mas.search` as an MCP server, and a researcher that reaches it through MCP.

    mas mcp                       # an MCP server on stdin/stdout: search and read over the bundled notes
    mas mcp --docs DIR            # ... over your own .md/.txt files

    async with mcp_tools([sys.executable, "-m", "mas.cli", "mcp"]) as tools:
        researcher = ResearcherAgent(async_client=client, tools=tools, system_prompt=GROUNDED_RESEARCHER_PROMPT)
        notes = await researcher.arun(research_task(topic, audience))

One tool, two ways: the server offers the very functions `mas.tools.search_tools` gives an agent in process
(same names, descriptions and JSON results), so a researcher gets the same passages either way. The server is
the official `mcp` package's `MCPServer` over stdio; the client side is the Anthropic SDK's own MCP helper,
`anthropic.lib.tools.mcp.async_mcp_tool`, which turns each MCP tool into an SDK tool that calls the server.
The `mcp` package is an extra (`pip install -e '.[mcp]'`), loaded only here.
"""

from __future__ import annotations

import functools
import io
import os
import sys
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable, Sequence

from mas.tools import search_tools

INSTRUCTIONS = ("Search documents for passages about a query, and read a whole document by its id. Results are "
                "JSON data; cite a passage by its id, as (source: ID).")


def server(index: Any) -> Any:
    """An MCP server offering `search` and `read` over `index` (a `mas.search.DocumentIndex`)."""
    from mcp.server.mcpserver import MCPServer

    mcp = MCPServer(name="mas-docs", instructions=INSTRUCTIONS, log_level="WARNING")
    for tool in search_tools(index):
        mcp.tool(name=tool.name, description=tool.description)(_anticipated(tool.func))
    return mcp


def _anticipated(func: Callable[..., Any]) -> Callable[..., Any]:
    """The tool, with the failures it means to report (an unknown id, a bad argument) raised as the MCP SDK's
    ToolError: the model reads their message. Anything else is a crash, which MCP reports without details."""
    from mcp.server.mcpserver.exceptions import ToolError

    @functools.wraps(func)
    def tool(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (LookupError, ValueError) as err:
            raise ToolError(str(err)) from None

    return tool


@asynccontextmanager
async def mcp_tools(command: Sequence[str]) -> AsyncIterator[list[Any]]:
    """The tools of the MCP server that `command` starts (over stdio), as SDK tools for an agent: each call
    goes to the server while the context is open."""
    from anthropic.lib.tools.mcp import async_mcp_tool
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(command=command[0], args=list(command[1:]))
    async with stdio_client(params, errlog=_errlog()) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        listed = await session.list_tools()
        yield [async_mcp_tool(tool, session) for tool in listed.tools]


def _errlog() -> Any:
    """Where the server's stderr goes: ours, or, in a notebook kernel (whose stderr is no file a subprocess can
    write to), the kernel process's own."""
    try:
        sys.stderr.fileno()
        return sys.stderr
    except (AttributeError, OSError, io.UnsupportedOperation):
        return sys.__stderr__ or open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
