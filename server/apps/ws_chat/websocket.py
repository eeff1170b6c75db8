"""The chat over one WebSocket: user messages in and room messages out, on the same connection.

Two tasks per connection: one reads frames (each a user message, published through the
room), one sends the room's messages as they come; whichever ends first ends the other.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import suppress

from starlette.websockets import WebSocket, WebSocketDisconnect

from server.apps.ws_chat.room import STATS, Room, Settings, TooManyMessages, user_message
from server.event_ids import parse_stream_id
from server.fanout import BrokerUnavailable, Dropped, Feed, Message
from server.query_params import whole_number

POLICY = 1008  # WebSocket close code: "policy violation", our 400
TRY_AGAIN_LATER = 1013  # WebSocket close code: a whole queue behind, or Redis away (a 503)
NOT_STORED = "the room's store (Redis) is unreachable: the message was NOT stored; send it later"


def websocket_text(message: Message) -> str:
    """A room message as one WebSocket text frame: its JSON, with its id (and event) inside,
    spliced in as text (the object is not parsed again): `{"id":"1-0","type":...}`."""
    extra = ",".join(
        f"{json.dumps(name)}:{json.dumps(value)}"
        for name, value in (("id", message.id), ("event", message.event))
        if value is not None
    )
    if not extra:
        return message.data
    rest = message.data[1:].lstrip()  # after the object's "{"
    return "{" + extra + ("" if rest.startswith("}") else ",") + rest


def close_reason(error: Exception) -> str:
    """The error as a close reason: at most 123 bytes of UTF-8 (RFC 6455 §5.5), so cut by
    bytes (a reason cut by characters, quoting a non-ASCII value, is a protocol error)."""
    return str(error).encode()[:123].decode(errors="ignore")


async def chat_socket(websocket: WebSocket) -> None:
    """The chat on one WebSocket: user messages in, room messages out, at the same time."""
    room: Room = websocket.state.room
    await websocket.accept()
    try:
        limit = whole_number(websocket.query_params, "limit")
        history = whole_number(websocket.query_params, "history") or 0
        last_id = websocket.query_params.get("last_id") if room.broker.keeps_history else None
        feed = room.broker.subscribe(parse_stream_id(last_id, "last_id"), history)
    except ValueError as error:
        await websocket.close(POLICY, close_reason(error))
        return
    feed.open()
    with STATS.track("ws"):
        sender = asyncio.create_task(_send(websocket, feed, limit, room.settings))
        receiver = asyncio.create_task(_receive(websocket, room))
        try:
            await asyncio.wait((sender, receiver), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sender, receiver):
                task.cancel()
            await asyncio.gather(sender, receiver, return_exceptions=True)
            feed.close()


async def _send(websocket: WebSocket, feed: Feed, limit: int | None, settings: Settings) -> None:
    sent = 0
    while limit is None or sent < limit:
        try:
            message = await feed.next(settings.heartbeat)
        except Dropped:
            STATS.add("ws", "dropped")
            await websocket.close(TRY_AGAIN_LATER, "more than a queue behind")
            return
        if message is None:
            continue  # idle: uvicorn's protocol-level pings keep proxies from timing out
        try:
            async with asyncio.timeout(settings.send_timeout):
                await websocket.send_text(websocket_text(message))
        except TimeoutError:
            STATS.add("ws", "stalled")
            return
        sent += 1
    await websocket.close(1000)


async def _receive(websocket: WebSocket, room: Room) -> None:
    """Each text frame is a user message; a bad one, a binary frame, or one over the client's
    rate closes with 1008 and the reason; one Redis cannot take, with 1013."""
    client = websocket.client.host if websocket.client else ""
    with suppress(WebSocketDisconnect):
        while True:
            frame = await websocket.receive()
            if frame["type"] == "websocket.disconnect":
                return
            try:
                raw = frame.get("text")
                if raw is None:
                    raise ValueError("this chat takes text frames (JSON), not binary ones")
                await room.post(*user_message(raw), client)
            except (ValueError, TooManyMessages) as error:
                await websocket.close(POLICY, close_reason(error))
                return
            except BrokerUnavailable:  # not the client's fault: as a 503, not a 400
                await websocket.close(TRY_AGAIN_LATER, NOT_STORED)
                return
