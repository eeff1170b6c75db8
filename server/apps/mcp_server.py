"""A small MCP server written with the official SDK: what lesson 12 reads byte by byte.

Two tools, one per shape of answer that MCP's Streamable HTTP transport gives a POST:

- ``add(a, b)`` answers at once. On the 2026-07-28 revision (a request carrying
  ``MCP-Protocol-Version: 2026-07-28``) a handler that sends nothing before its result is
  answered as ``application/json``.
- ``count_down(n, close_after=0)`` reports progress ``n`` times (when the call carries a
  ``progressToken``) and then returns the seeds' "발사!". Its first progress notification commits
  the answer to ``text/event-stream``: notifications, the result, and the end of the stream.

The app is the SDK's own Starlette app (``MCPServer.streamable_http_app``) at ``/mcp``, with a
`ScopedEventStore` (`server.asgi.mcp_event_store`) behind the session-era transport, so a call made
after an ``initialize`` that offered 2025-11-25 gets a priming event (an id, empty data and
``retry:``) and can be resumed with ``Last-Event-ID``. ``close_after=k`` is the lesson's
deterministic cut: after ``k`` progress reports the tool asks the SDK to close the call's stream
(``ctx.close_sse_stream()``, SEP-1699's "SSE polling"); the client reconnects after ``retry``
ms and the store replays the rest. The 2026-07-28 wire has no event ids and no resumption, so
there the knob does nothing.

Both tools answer plain text (``structured_output=False``): a structured result carries an
output schema, and the SDK's client then validates every result with ``jsonschema``, whose first
import here takes seconds (Jupyter pulls in ``rfc3987-syntax``, which compiles its grammars on
import).

Settings (environment, checked at start): ``MCP_STEP_SECONDS`` (0.02) between two progress
reports, so a stream visibly streams; ``MCP_RETRY_MS`` (300) the ``retry:`` of priming events.

    start_app("server.apps.mcp_server:app", ready_path="/mcp")   # then POST /mcp
"""

from __future__ import annotations

import logging
import os

import anyio
from mcp.server.mcpserver import Context, MCPServer

from server.asgi.mcp_event_store import OwnerScope, ScopedEventStore
from server.settings import number

__all__ = ["LIFTOFF", "PATH", "add", "app", "count_down", "mcp"]

PATH = "/mcp"
LIFTOFF = "발사!"
STEP_SECONDS = number(os.environ, "MCP_STEP_SECONDS", 0.02, low=0.0, high=10.0)
RETRY_MS = number(os.environ, "MCP_RETRY_MS", 300, low=0, high=60_000)

_root = logging.getLogger()
_handlers, _level = list(_root.handlers), _root.level
mcp: MCPServer = MCPServer("sse-course", instructions="Lesson 12's tools: add and count_down.")
_root.handlers[:] = _handlers  # MCPServer() calls logging.basicConfig: importing this module
_root.setLevel(_level)  # must not configure the importer's logging (a notebook's, a test's)


@mcp.tool(structured_output=False)
def add(a: int, b: int) -> int:
    """Add two numbers: a call that is over before it could stream anything."""
    return a + b


@mcp.tool(structured_output=False)
async def count_down(ctx: Context, n: int = 5, close_after: int = 0) -> str:
    """Count down from `n`, reporting progress at each step, then say liftoff.

    `close_after` > 0 closes the call's SSE stream after that many reports (session-era
    transport only): the client resumes with Last-Event-ID and gets the rest from the store."""
    if not 0 <= n <= 1000:
        raise ValueError(f"n must be from 0 to 1000, got {n}")
    for step in range(1, n + 1):
        await ctx.report_progress(step, n, f"{n - step + 1}...")
        if step == close_after:
            await ctx.close_sse_stream()
        await anyio.sleep(STEP_SECONDS)
    return LIFTOFF


app = OwnerScope(
    mcp.streamable_http_app(
        streamable_http_path=PATH,
        event_store=ScopedEventStore(),
        retry_interval=RETRY_MS,
    )
)
