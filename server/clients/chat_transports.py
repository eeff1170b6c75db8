"""One chat, two transports: what a lesson 10 client does over a WebSocket and over SSE + POST.

`server.apps.ws_chat` serves one room both ways. A user's message is JSON,
`{"text": ..., "tokens": n}`; the room then carries the message, a message per token of the
reply, and `done`. Over a WebSocket the message goes up the connection the reply comes down;
over SSE the stream only goes down, and the message goes up in a `POST /messages`. Each
function here is one thing lesson 10 does to the room, so a cell reads "call, result":

- `over_websocket` / `over_sse`: send messages, read the room until every reply is done;
- `opening_times`: how long each transport takes to open, and to answer a first message;
- `room_counts`: users on one URL (behind a load balancer), each sends one message: how many
  messages did each see?
- `idle_lifetimes`: how long a silent WebSocket and a silent stream stay open (behind a proxy
  with a read timeout).

Loopback course servers only: `proxy=None` so an `HTTP_PROXY` in the environment is not used.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import httpx2
from websockets.asyncio.client import connect

from server.sse import Decoder

DEADLINE = 30.0  # seconds any one request may take


def ws_url(url: str, path: str) -> str:
    """`http://host:port` + `path` as the `ws://` URL of the same server."""
    return url.replace("http://", "ws://", 1) + path


def reply_text(messages: list[dict[str, Any]]) -> str:
    """The assistant's reply: the text of every token message, in order."""
    return "".join(m["text"] for m in messages if m["type"] == "token")


async def over_websocket(
    url: str, texts: list[str], tokens: int, **options: Any
) -> list[dict[str, Any]]:
    """Send each text as a user message on one WebSocket; read the room until every reply is
    done. `options` go to `websockets`' `connect` (`compression=None`, say)."""
    want = len(texts) * (tokens + 2)  # the user's message, the tokens, "done"
    async with connect(ws_url(url, f"/ws?limit={want}"), proxy=None, **options) as socket:
        for text in texts:
            await socket.send(json.dumps({"text": text, "tokens": tokens}))
        return [json.loads(message) async for message in socket]


async def over_sse(
    url: str,
    texts: list[str],
    tokens: int,
    *,
    poster: httpx2.AsyncClient | None = None,
    post_url: str | None = None,
) -> list[dict[str, Any]]:
    """The same over SSE + POST: join the room's stream, POST each message, read to the end.

    `post_url` sends the POSTs elsewhere (around a wiretap, to count the stream alone), and
    `poster` with another client (one whose transport counts bytes)."""
    want = len(texts) * (tokens + 2)
    async with httpx2.AsyncClient(timeout=DEADLINE) as http:
        request = http.build_request("GET", f"{url}/events?limit={want}")
        events = await http.send(request, stream=True)
        for text in texts:
            body = {"text": text, "tokens": tokens}
            await (poster or http).post(f"{post_url or url}/messages", json=body)
        return [json.loads(event.data) for event in Decoder().feed(await events.aread())]


async def opening_times(url: str, n: int = 30) -> dict[str, list[float]]:
    """Seconds to open each transport, and from a user's message to the first message back,
    `n` times each, every time on a new connection."""
    times: dict[str, list[float]] = {
        "WebSocket open": [],
        "SSE open": [],
        "WebSocket send→first": [],
        "POST→first event": [],
    }
    message = {"text": "hi", "tokens": 0}
    for _ in range(n):
        started = time.perf_counter()
        async with connect(ws_url(url, "/ws?limit=1"), proxy=None) as socket:
            times["WebSocket open"].append(time.perf_counter() - started)
            started = time.perf_counter()
            await socket.send(json.dumps(message))
            await socket.recv()
            times["WebSocket send→first"].append(time.perf_counter() - started)
        async with httpx2.AsyncClient(timeout=DEADLINE) as http:
            started = time.perf_counter()
            request = http.build_request("GET", f"{url}/events?limit=1")
            events = await http.send(request, stream=True)
            times["SSE open"].append(time.perf_counter() - started)
            started = time.perf_counter()
            await http.post(f"{url}/messages", json=message)
            await events.aread()
            times["POST→first event"].append(time.perf_counter() - started)
    return times


async def room_counts(url: str, users: int = 4, quiet: float = 1.0) -> list[int]:
    """`users` WebSockets to `url`; each sends one message. How many user messages did each
    see before the room was `quiet` seconds? (All `users` if every message reached everyone.)"""
    sockets = [await connect(ws_url(url, "/ws"), proxy=None) for _ in range(users)]
    for socket in sockets:
        await socket.send(json.dumps({"text": "hello room", "tokens": 0}))
    seen = []
    for socket in sockets:
        count = 0
        with contextlib.suppress(TimeoutError):
            while True:
                message = json.loads(await asyncio.wait_for(socket.recv(), quiet))
                count += message["type"] == "user"
        await socket.close()
        seen.append(count)
    return seen


async def idle_lifetimes(url: str, wait: float = 2.5) -> dict[str, float]:
    """Seconds a WebSocket and an event stream at `url` stayed open with nothing to say (at
    most `wait`): the client sends no pings, so only the server or a proxy ends them."""
    lasted = {}
    started = time.perf_counter()
    async with connect(ws_url(url, "/ws"), proxy=None, ping_interval=None) as socket:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(socket.wait_closed(), wait)
    lasted["WebSocket"] = time.perf_counter() - started
    started = time.perf_counter()
    async with httpx2.AsyncClient(timeout=DEADLINE) as http:
        with contextlib.suppress(TimeoutError, httpx2.RemoteProtocolError):  # cut: no last chunk
            async with asyncio.timeout(wait):
                await http.get(f"{url}/events")
    lasted["SSE"] = time.perf_counter() - started
    return lasted
