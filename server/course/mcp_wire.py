"""MCP's Streamable HTTP by hand: JSON-RPC over POST, answers read with the course's decoder.

Lesson 12 reads the bytes before it uses the official client, so its cells call these:

    answer = await post(client, url, call("add", {"a": 2, "b": 3}))
    answer.status, answer.media_type, answer.message            # 200 application/json {...}
    answer = await post(client, url, call("count_down", {"n": 3}, progress_token="p"))
    [e.data for e in answer.events]                              # progress, progress, ..., result

`call` builds a 2026-07-28 request: the revision puts its version, and the client's
capabilities, in every request's ``params._meta``, and repeats the version, the method and the
tool's name as headers (``MCP-Protocol-Version``, ``Mcp-Method``, ``Mcp-Name``). `open_session`
does the session-era handshake instead (``initialize``, then ``notifications/initialized``)
and returns the headers every later request of that session carries (``Mcp-Session-Id``).

An `Answer` keeps the raw body as well as what it means, so a cell can print the bytes. An
event stream is decoded with `server.sse.Decoder` (lesson 03), whose `last_event_id` and
`retry` are what a reconnection needs.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import httpx2
from mcp_types.version import LATEST_HANDSHAKE_VERSION, LATEST_MODERN_VERSION

from server.sse import MEDIA_TYPE, Decoder, Event

__all__ = [
    "ACCEPT",
    "Answer",
    "Request",
    "call",
    "call_to_the_end",
    "open_session",
    "post",
    "progress_values",
    "resume",
    "session_call",
]

ACCEPT = f"application/json, {MEDIA_TYPE}"
"""The Accept header a Streamable HTTP client sends on every POST: either answer will do."""


@dataclass(frozen=True, slots=True)
class Request:
    """One JSON-RPC request and the HTTP headers it goes with."""

    body: dict[str, Any]
    headers: dict[str, str]


@dataclass(slots=True)
class Answer:
    """What came back: status, type, headers, the raw body and, for a stream, its events."""

    status: int
    media_type: str
    headers: httpx2.Headers
    raw: bytes
    events: list[Event] = field(default_factory=list)
    last_event_id: str = ""
    retry: int | None = None

    @property
    def message(self) -> Any:
        """The JSON-RPC message of a JSON answer, or the last one of a stream (the result)."""
        if self.media_type == MEDIA_TYPE:
            return json.loads(self.events[-1].data) if self.events else None
        return json.loads(self.raw) if self.raw else None

    @property
    def messages(self) -> list[Any]:
        """Every JSON-RPC message of a stream, in order; events with empty data carry none."""
        return [json.loads(event.data) for event in self.events if event.data]


def call(
    tool: str,
    arguments: dict[str, Any],
    *,
    request_id: int = 1,
    progress_token: str | int | None = None,
    version: str = LATEST_MODERN_VERSION,
) -> Request:
    """A 2026-07-28 ``tools/call``: the envelope in ``params._meta`` and its three headers."""
    meta: dict[str, Any] = {
        "io.modelcontextprotocol/protocolVersion": version,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "lesson-12", "version": "1"},
    }
    if progress_token is not None:
        meta["progressToken"] = progress_token
    body = {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments, "_meta": meta},
    }
    headers = {
        "Accept": ACCEPT,
        "MCP-Protocol-Version": version,
        "Mcp-Method": "tools/call",
        "Mcp-Name": tool,
    }
    return Request(body, headers)


async def post(client: httpx2.AsyncClient, url: str, request: Request) -> Answer:
    """POST one request; read the answer to its end, decoding it if it is an event stream."""
    async with client.stream("POST", url, json=request.body, headers=request.headers) as response:
        return await _read(response)


async def resume(
    client: httpx2.AsyncClient, url: str, session: dict[str, str], last_event_id: str
) -> Answer:
    """GET with ``Last-Event-ID``: what a client sends to get the rest of a cut stream."""
    headers = {**session, "Accept": MEDIA_TYPE, "Last-Event-ID": last_event_id}
    async with client.stream("GET", url, headers=headers) as response:
        return await _read(response)


async def open_session(
    client: httpx2.AsyncClient, url: str, *, version: str = LATEST_HANDSHAKE_VERSION
) -> dict[str, str]:
    """The session-era handshake; returns the headers the session's requests carry."""
    hello = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": version,
            "capabilities": {},
            "clientInfo": {"name": "lesson-12", "version": "1"},
        },
    }
    answer = await post(client, url, Request(hello, {"Accept": ACCEPT}))
    if answer.status != 200 or "mcp-session-id" not in answer.headers:
        raise RuntimeError(f"initialize was answered {answer.status}: {answer.raw[:200]!r}")
    session = {
        "Accept": ACCEPT,
        "Mcp-Session-Id": answer.headers["mcp-session-id"],
        "MCP-Protocol-Version": answer.message["result"]["protocolVersion"],
    }
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    await client.post(url, json=initialized, headers=session)
    return session


def session_call(
    session: dict[str, str],
    tool: str,
    arguments: dict[str, Any],
    *,
    request_id: int = 1,
    progress_token: str | int | None = None,
) -> Request:
    """A session-era ``tools/call``: no envelope, the session's headers instead."""
    params: dict[str, Any] = {"name": tool, "arguments": arguments}
    if progress_token is not None:
        params["_meta"] = {"progressToken": progress_token}
    body = {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}
    return Request(body, dict(session))


async def call_to_the_end(
    client: httpx2.AsyncClient, url: str, session: dict[str, str], request: Request
) -> list[Any]:
    """POST a session-era call and resume it until its result: every message, in order.

    Lesson 12's second exercise. While an answer ends without the call's result, wait the
    ``retry`` the stream asked for (1 s if none: the SDK's default) and send ``GET`` with the
    last event id; a stream that gave no id cannot be resumed, which is an error."""
    answer = await post(client, url, request)
    messages, last_id, retry = answer.messages, answer.last_event_id, answer.retry
    while not any(m.get("id") == request.body["id"] for m in messages):
        if not last_id:
            raise RuntimeError("the answer ended without the result and gave no id to resume")
        await asyncio.sleep((1000 if retry is None else retry) / 1000)
        answer = await resume(client, url, session, last_id)
        messages = messages + answer.messages
        last_id = answer.last_event_id or last_id
        retry = answer.retry if answer.retry is not None else retry
    return messages


def progress_values(body: bytes) -> list[float]:
    """The ``progress`` of each ``notifications/progress`` in an SSE answer's bytes, in order.

    Lesson 12's exercise. An event with empty data (a priming event) carries no message."""
    decoder = Decoder()
    events = decoder.feed(body) + decoder.close()
    messages = [json.loads(event.data) for event in events if event.data]
    notes = [m for m in messages if m.get("method") == "notifications/progress"]
    return [note["params"]["progress"] for note in notes]


async def _read(response: httpx2.Response) -> Answer:
    media_type = response.headers.get("content-type", "").split(";")[0].strip()
    raw = b""
    decoder = Decoder()
    events: list[Event] = []
    async for chunk in response.aiter_bytes():
        raw += chunk
        if media_type == MEDIA_TYPE:
            events += decoder.feed(chunk)
    return Answer(
        response.status_code,
        media_type,
        response.headers,
        raw,
        events,
        decoder.last_event_id,
        decoder.retry,
    )
