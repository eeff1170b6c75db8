"""The MCP server each cluster worker runs in lesson 12's scaling section (official SDK).

One app serves both Streamable HTTP shapes, because the SDK routes each POST by its
`MCP-Protocol-Version` header:

- session era (2025-03-26 to 2025-11-25): `initialize` mints an `Mcp-Session-Id`, and the
  session (its server task, its streams) lives in this process's memory only;
- sessionless (2026-07-28, SEP-2567): every POST stands alone, so any worker can answer it.

Two tools. `new_job` mints a handle (the 2026-07-28 changelog: "Servers that need cross-call
state use explicit, server-minted handles passed as ordinary tool arguments"); `count` counts
a job up to `steps`, one step every `MCP_STEP_SECONDS`, reporting progress with this worker's
name, and keeps the step reached in Redis under the handle. A call re-issued after its worker
died goes on from that step on whichever worker gets it, so the progress a client sees never
goes back. (It also waits after each step while the key `mcp:hold` exists:
`server.course.mcp_scaling` holds every call there, to kill a worker with all of them in
flight.) Two calls of one job at the same time are not guarded against: here a job is
counted again only once its first worker is dead.

`named_sessions` is the session era's routing aid: it writes this worker's name in front of
every session id it mints (`A.3f2c...`) and takes it off again on the way in, so that nginx
can send each session's requests to the worker that holds it (`server.course.mcp_scaling`).

Settings: `WORKER_NAME`, `REDIS_URL`, `MCP_STEP_SECONDS` (0.1).
"""

from __future__ import annotations

import asyncio
import os
import uuid

import redis.asyncio as aioredis
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.settings import number

WORKER_NAME = os.environ.get("WORKER_NAME", str(os.getpid()))
STEP_SECONDS = number(os.environ, "MCP_STEP_SECONDS", 0.1, low=0.0, high=10.0)
JOB_SECONDS = 600  # a job handle and its step are forgotten this long after it was minted
MAX_STEPS = 1000
HOLD = "mcp:hold"
SESSION_HEADER = b"mcp-session-id"

mcp = MCPServer("course-cluster", log_level="WARNING")  # not a line per request
# At most 32 connections, and a call waits for a free one: a few hundred held calls checking
# `HOLD` at once would otherwise each open its own.
redis = aioredis.Redis(
    connection_pool=aioredis.BlockingConnectionPool.from_url(
        os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"), max_connections=32, timeout=30
    )
)


@mcp.tool(structured_output=False)  # text only: no output schema for the client to check
async def new_job() -> str:
    """A fresh job handle for `count`; its progress is kept in Redis, not in a session."""
    job = uuid.uuid4().hex
    await redis.set(f"mcp:job:{job}", 0, ex=JOB_SECONDS)
    return job


@mcp.tool(structured_output=False)  # text only: no output schema for the client to check
async def count(job: str, steps: int, ctx: Context) -> str:
    """Count `job` up to `steps`, reporting each step; resumes from the step Redis holds."""
    if not 1 <= steps <= MAX_STEPS:
        raise ToolError(f"steps must be from 1 to {MAX_STEPS}, not {steps}")
    key = f"mcp:job:{job}"
    reached = await redis.get(key)
    if reached is None:
        raise ToolError(f"unknown job {job!r}: get a handle from new_job first")
    for step in range(int(reached) + 1, steps + 1):
        await asyncio.sleep(STEP_SECONDS)  # the work one step stands for
        await redis.set(key, step, ex=JOB_SECONDS)
        await ctx.report_progress(step, steps, f"worker {WORKER_NAME}")
        await held()
    return f"counted to {steps}; last step on worker {WORKER_NAME}"


async def held() -> None:
    """The course's knob for a deterministic kill: while the key `HOLD` exists in Redis, no
    call goes on to its next step, so every call is still in flight when the kill comes."""
    while await redis.exists(HOLD):
        await asyncio.sleep(0.02)


def named_sessions(app: ASGIApp, name: str) -> ASGIApp:
    """`app`, with `name.` in front of the session ids it sends and off the ones it receives."""
    prefix = f"{name}.".encode()

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await app(scope, receive, send)
        headers = [
            (k, v.removeprefix(prefix) if k == SESSION_HEADER else v) for k, v in scope["headers"]
        ]

        async def named(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (k, prefix + v if k == SESSION_HEADER else v) for k, v in message["headers"]
                ]
            await send(message)

        await app({**scope, "headers": headers}, receive, named)

    return wrapped


# The SDK's DNS-rebinding check: nginx forwards `Host: 127.0.0.1` (its `$host`, no port),
# which the SDK's loopback default ("127.0.0.1:*") refuses with a 421.
LOOPBACK_ONLY = TransportSecuritySettings(
    allowed_hosts=["127.0.0.1", "127.0.0.1:*"], allowed_origins=["http://127.0.0.1:*"]
)
app = named_sessions(mcp.streamable_http_app(transport_security=LOOPBACK_ONLY), WORKER_NAME)
