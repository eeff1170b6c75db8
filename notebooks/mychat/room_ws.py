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
    raise NotImplementedError("stage 8: your code here")
    ### END STAGE 8


async def send_room(websocket: WebSocket, start: str) -> None:
    """Every room message after `start` as a text frame, its id inside the JSON."""
    ### BEGIN STAGE 8
    raise NotImplementedError("stage 8: your code here")
    ### END STAGE 8


async def receive_messages(websocket: WebSocket) -> None:
    """Add each text frame to the room, until the client leaves or sends something wrong."""
    ### BEGIN STAGE 8
    raise NotImplementedError("stage 8: your code here")
    ### END STAGE 8
