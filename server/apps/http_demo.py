"""The small server lessons 00 and 01 talk to by hand: a page, a chunked stream, a WebSocket.

    start_app("server.apps.http_demo:app")

- `GET /hello`: a fixed short text with a `Content-Length` (the ordinary response).
- `GET /chunks?n=5&interval=0.2`: a body sent in pieces as it is produced. With no length
  known in advance, HTTP/1.1 frames it with `Transfer-Encoding: chunked`.
- `GET /event?text=hi`: one Server-Sent Event holding `text`, then the end of the stream: its
  bytes on the wire, next to a WebSocket frame carrying the same text.
- `WS /echo`: a WebSocket that echoes text messages, to see the upgrade handshake and frames.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import FastAPI, Query, WebSocket
from fastapi.responses import PlainTextResponse, StreamingResponse

from server.asgi.sse_response import sse_response
from server.sse import Event, encode

app = FastAPI(title="HTTP basics demo")


@app.get("/hello", response_class=PlainTextResponse)
def hello() -> str:
    return "Hello, HTTP!\n"


@app.get("/chunks")
def chunks(
    n: Annotated[int, Query(ge=1, le=1000)] = 5,
    interval: Annotated[float, Query(ge=0, le=10)] = 0.2,
) -> StreamingResponse:
    async def pieces() -> AsyncIterator[bytes]:
        for i in range(1, n + 1):
            yield f"piece {i} of {n}\n".encode()
            if i < n:
                await asyncio.sleep(interval)

    return StreamingResponse(pieces(), media_type="text/plain")


@app.get("/event")
def event(text: Annotated[str, Query(max_length=1000)] = "hi") -> StreamingResponse:
    return sse_response([encode(Event(data=text))])


UNSUPPORTED_DATA = 1003  # RFC 6455 §7.4.1: a type of data the endpoint cannot accept


@app.websocket("/echo")
async def echo(websocket: WebSocket) -> None:
    """Each text frame back as it came; a binary frame closes the socket with 1003."""
    await websocket.accept()
    while True:
        frame = await websocket.receive()
        if frame["type"] == "websocket.disconnect":
            return
        if frame.get("text") is None:
            await websocket.close(UNSUPPORTED_DATA, "this echo takes text frames only")
            return
        await websocket.send_text(frame["text"])
