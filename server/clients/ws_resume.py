"""A WebSocket client that does for itself what `EventSource` does for SSE: reconnect and resume.

An `EventSource` reconnects when its stream breaks and sends `Last-Event-ID`, and the server
resumes after it (`server.clients.resume` is that in Python). A WebSocket has none of it: when
the connection ends, `onclose` fires and that is all. The `websockets` library can reconnect
(`async for ws in connect(url)`), but it knows nothing of ids, so what was sent while it was
away is gone unless the client asks for it. The chat (`server.apps.ws_chat`) puts each room
message's id inside its JSON and takes `?last_id=` on a new connection: this module keeps the
id and sends it back. `read_with_resume` is lesson 10's exercise reference; `read_room`, the
client without it, shows what is lost.

Loopback course servers only: `proxy=None` so an `HTTP_PROXY` in the environment is not used.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

POLICY = 1008  # the server refused what we sent (a bad last_id): retrying will not help


def with_last_id(url: str, last_id: str) -> str:
    """`url` with its `last_id` query parameter set to `last_id` (replaced if present)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "last_id"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("last_id", last_id)])))


async def read_room(url: str, want: int, **options: Any) -> list[dict[str, Any]]:
    """Up to `want` room messages from one connection, until it ends: no reconnection."""
    messages: list[dict[str, Any]] = []
    async with connect(url, proxy=None, **options) as socket:
        try:
            async for text in socket:
                messages.append(json.loads(text))
                if len(messages) >= want:
                    break
        except ConnectionClosed:
            pass  # cut: what follows is lost to this client
    return messages


async def read_with_resume(
    url: str, want: int, *, retry: float = 0.5, max_connections: int = 100, **options: Any
) -> list[dict[str, Any]]:
    """Read `want` room messages from `url`, reconnecting with `?last_id=` whenever it ends.

    After a connection ends (cut, refused, closed by the server), wait `retry` seconds and
    connect again, sending the id of the last message received, so the server sends what came
    after it. A close with 1008 means the server refused the request (a malformed or unknown
    id): raise, as retrying the same request would not help.
    """
    messages: list[dict[str, Any]] = []
    last_id = ""
    for connection in range(max_connections):
        if connection:
            await asyncio.sleep(retry)
        target = with_last_id(url, last_id) if last_id else url
        try:
            async with connect(target, proxy=None, **options) as socket:
                try:
                    async for text in socket:
                        message = json.loads(text)
                        messages.append(message)
                        last_id = message.get("id") or last_id
                        if len(messages) >= want:
                            return messages
                except ConnectionClosed:
                    pass  # cut: reconnect below
                if socket.close_code == POLICY:
                    raise ValueError(f"the server refused: {socket.close_reason}")
        except (OSError, ConnectionClosed, InvalidStatus, TimeoutError):
            pass  # cut, refused, or a proxy's error page: try again after `retry`
    raise RuntimeError(f"gave up after {max_connections} connections with {len(messages)}")
