"""HISTORICAL: MCP's 2024-11-05 "HTTP with SSE" transport, course-written, for lesson 12.

Deprecated since 2025-03-26; kept to show, on lesson 09's cluster, why it was replaced. The
2024-11-05 text: "When a client connects, the server MUST send an `endpoint` event containing a
URI for the client to use for sending messages. All subsequent client messages MUST be sent as
HTTP POST requests to this endpoint." So:

    GET /sse                        ->  event: endpoint / data: /messages?session_id=<hex>
    POST /messages?session_id=<hex> ->  202 Accepted; the JSON-RPC answer goes out as an
                                        `event: message` on that session's GET stream

The session is a queue in this process's memory, so a POST that a load balancer sends to
another worker finds no session: a 404 saying so. (The SDK's own `mcp.server.sse` does the
same with more machinery; this is the few screens a learner can read in one go.)

Enough JSON-RPC for one call: `initialize`, notifications (ignored), and the tool `count`
(`steps` progress notifications, one every `MCP_STEP_SECONDS`, then the result).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from server.asgi.json_body import BadBody, read_json
from server.asgi.sse_response import sse_response
from server.settings import number
from server.sse import Event, encode, encode_json

WORKER_NAME = os.environ.get("WORKER_NAME", str(os.getpid()))
STEP_SECONDS = number(os.environ, "MCP_STEP_SECONDS", 0.1, low=0.0, high=10.0)
MAX_BODY = 64 * 1024
MAX_STEPS = 1000
sessions: dict[str, asyncio.Queue[dict[str, Any]]] = {}


async def open_stream(request: Request) -> Response:
    """The GET stream: first the endpoint to POST to, then every answer for this session."""
    session_id = uuid.uuid4().hex
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    sessions[session_id] = queue

    async def events() -> AsyncIterator[bytes]:
        try:
            yield encode(Event(data=f"/messages?session_id={session_id}", event="endpoint"))
            while True:
                yield encode_json(await queue.get(), event="message")
        finally:
            sessions.pop(session_id, None)

    return sse_response(events())


async def post_message(request: Request) -> Response:
    """Accept one JSON-RPC message for a session this worker holds; answer on its stream."""
    session_id = request.query_params.get("session_id", "")
    queue = sessions.get(session_id)
    if queue is None:
        return PlainTextResponse(
            f"no session {session_id!r} on worker {WORKER_NAME}: its GET /sse stream is held "
            "by another process (2024-11-05 sessions live in one process's memory)",
            status_code=404,
        )
    try:
        message = await read_json(request, limit=MAX_BODY)
    except BadBody as error:
        return PlainTextResponse(str(error), status_code=error.status)
    if not isinstance(message, dict) or not isinstance(message.get("method"), str):
        reason = 'send one JSON-RPC message: an object with a "method" string'
        return PlainTextResponse(reason, status_code=400)
    if "id" in message:  # a request; notifications need no answer
        asyncio.get_running_loop().create_task(answer(message, queue))
    return Response(status_code=202)


async def answer(request: dict[str, Any], queue: asyncio.Queue[dict[str, Any]]) -> None:
    """The JSON-RPC response to `request`, with `count`'s progress notifications before it."""
    reply: dict[str, Any] = {"jsonrpc": "2.0", "id": request["id"]}
    params = request.get("params") or {}
    if request["method"] == "initialize":
        reply["result"] = {
            "protocolVersion": "2024-11-05",
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "course-legacy", "version": "1"},
        }
    elif request["method"] == "tools/call" and params.get("name") == "count":
        steps = (params.get("arguments") or {}).get("steps")
        if not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
            message = f"arguments.steps must be a whole number from 1 to {MAX_STEPS}"
            reply["error"] = {"code": -32602, "message": message}
            return await queue.put(reply)
        token = params.get("_meta", {}).get("progressToken")
        for step in range(1, steps + 1):
            await asyncio.sleep(STEP_SECONDS)  # the work one step stands for
            if token is not None:
                progress = {"progressToken": token, "progress": step, "total": steps}
                note = {"method": "notifications/progress", "params": progress}
                await queue.put({"jsonrpc": "2.0", **note})
        text = f"counted to {steps} on worker {WORKER_NAME}"
        reply["result"] = {"content": [{"type": "text", "text": text}], "isError": False}
    else:
        reply["error"] = {"code": -32601, "message": f"no method {request['method']!r} here"}
    await queue.put(reply)


app: ASGIApp = Starlette(
    routes=[
        Route("/sse", open_stream, methods=["GET"]),
        Route("/messages", post_message, methods=["POST"]),
    ]
)
