"""Stage 8 (lesson 10, optional): stage 7's chat room over one WebSocket, at /room/ws.

    WS /room/ws?last_id=ID   up: a text frame per message, {"user": "지민", "text": "안녕"}
                             down: a frame per room message, {"id": ..., "user": ..., "text": ...}

The room is stage 7's Redis stream, written with `add` and read with `entries_after`, so a
message sent over a socket reaches the SSE listeners, and a posted one reaches the sockets, on
every worker. A socket has no `Last-Event-ID`: a client that reconnects sends the last id it saw
in `?last_id=`. A malformed id or message closes the socket with 1008 and the reason (the
WebSocket's 400); idle sockets are kept open by uvicorn's pings (`--ws-ping-interval`, 20 s).
"""

import asyncio
import json

from fastapi import APIRouter, WebSocket
from pydantic import ValidationError
from redis.exceptions import RedisError

from mychat.room import MAX_BODY, Message, add, entries_after, start_after

router = APIRouter()
POLICY = 1008  # close code "policy violation": a malformed id or message
TOO_BIG = 1009  # close code "message too big"
UNAVAILABLE = 1011  # close code "internal error": Redis is away, the message was not stored


@router.websocket("/room/ws")
async def room_socket(websocket: WebSocket, last_id: str | None = None) -> None:
    ### BEGIN STAGE 8
    await websocket.accept()  # a close code and its reason only reach a client once accepted
    try:
        start = await start_after(last_id)
    except ValueError as error:
        await websocket.close(POLICY, f"last_id: {error}"[:120])  # a reason is at most 123 bytes
        return
    # Two loops on one connection (lesson 10, section 1): whichever ends first ends the other.
    tasks = {
        asyncio.create_task(send_room(websocket, start)),
        asyncio.create_task(receive_messages(websocket)),
    }
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in done:
        task.result()  # an error in either loop goes to the server's log
    ### END STAGE 8


async def send_room(websocket: WebSocket, start: str) -> None:
    """Every room message after `start` as a text frame, its id inside the JSON."""
    ### BEGIN STAGE 8
    async for entry in entries_after(start):
        if entry is not None:  # None: a quiet HEARTBEAT; uvicorn's pings keep the socket open
            entry_id, data = entry
            frame = {"id": entry_id, **json.loads(data)}
            await websocket.send_text(json.dumps(frame, ensure_ascii=False))
    ### END STAGE 8


async def receive_messages(websocket: WebSocket) -> None:
    """Add each text frame to the room, until the client leaves or sends something wrong."""
    ### BEGIN STAGE 8
    while True:
        frame = await websocket.receive()
        if frame["type"] == "websocket.disconnect":
            return
        text = frame.get("text")
        if text is None:
            await websocket.close(POLICY, "send each message as a text frame of JSON")
            return
        if len(text.encode()) > MAX_BODY:
            await websocket.close(TOO_BIG, f"a message is at most {MAX_BODY} bytes of JSON")
            return
        try:
            await add(Message.model_validate_json(text))
        except ValidationError as error:
            await websocket.close(POLICY, str(error.errors()[0]["msg"])[:120])
            return
        except RedisError:
            await websocket.close(UNAVAILABLE, "the room is unavailable: not stored")
            return
    ### END STAGE 8
