"""Stage 7 (lesson 09): the chat room on any number of workers, through one Redis stream.

    POST /room/messages  {"user": "지민", "text": "안녕하세요"}: 201 {"id": "1700000000000-0"}
    GET  /room/events    the room as Server-Sent Events, each event's id its Redis entry id;
                         a reconnection with `Last-Event-ID` gets every message after that id

Every worker reads the same stream, so a message posted to one worker reaches the listeners of
all of them, and a listener that reconnects to any worker resumes where it was. Each open
stream holds one Redis connection while it waits (redis-py's pool allows 100 per worker by
default); lesson 09's `server/fanout` reads the stream once per worker for thousands.
`room_ws.py` (stage 8) serves the same room over a WebSocket, through `add`, `start_after`
and `entries_after`.
"""

import os
import re
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from fastapi import APIRouter, Header, HTTPException, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, ValidationError
from redis.exceptions import RedisError

from server.sse import Event, comment, encode

router = APIRouter()
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
REDIS = aioredis.from_url(REDIS_URL, decode_responses=True)  # connects on first use
ROOM = "mychat:room"  # the stream's key
KEEP = 1000  # MAXLEN ~: the stream keeps about this many messages, the room's history
HEARTBEAT = float(os.environ.get("CHAT_HEARTBEAT") or 15)  # seconds of silence: as chat.py
MAX_BODY = 32_768  # bytes of JSON in one post: 2,000 characters fit, however they are escaped


class Message(BaseModel):
    """A message as a user posts it (`read_message` refuses anything else, with the reason)."""

    user: str = Field(min_length=1, max_length=40)
    text: str = Field(min_length=1, max_length=2000)


async def read_message(request: Request) -> Message:
    """The posted message, or an HTTPException: 413 past MAX_BODY bytes, 422 with the reason.

    Why not a `message: Message` parameter? FastAPI then reads the whole body, however large,
    and its 422 answer echoes what was sent, which fails (a 500) on a lone surrogate such as
    `"\\ud800"`. pydantic's own JSON parser refuses that, bad UTF-8 and deep nesting alike."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise HTTPException(413, f"a message is at most {MAX_BODY} bytes of JSON")
    try:
        return Message.model_validate_json(body)
    except ValidationError as error:
        reasons = error.errors(include_url=False, include_context=False, include_input=False)
        raise HTTPException(422, reasons) from None


async def add(message: Message) -> str:
    """Append `message` to the room's stream: its id, `<milliseconds>-<sequence>`."""
    ### BEGIN STAGE 7
    fields = {"data": message.model_dump_json()}
    return await REDIS.xadd(ROOM, fields, maxlen=KEEP, approximate=True)
    ### END STAGE 7


async def start_after(last_id: str | None) -> str:
    """Where a listener starts: after its last id (checked: ValueError), else after the newest."""
    ### BEGIN STAGE 7
    if last_id is None:  # a new listener: only what is posted from now on
        newest = await REDIS.xrevrange(ROOM, count=1)
        return newest[0][0] if newest else "0-0"
    # [0-9], not \d: \d also matches other scripts' digits ("٣"), which Redis refuses.
    if not re.fullmatch(r"[0-9]{1,19}-[0-9]{1,19}", last_id):
        raise ValueError(f"it must look like 1700000000000-0, got {last_id[:40]!r}")
    return last_id
    ### END STAGE 7


async def entries_after(last_id: str) -> AsyncIterator[tuple[str, str] | None]:
    """(id, data) of every message after `last_id`, with no end; None after HEARTBEAT s of none.

    XREAD from an id returns the entries after it: those already there at once (the replay),
    else, with BLOCK, the next one as soon as it is added (the follow). One loop does both,
    so nothing can fall between them."""
    ### BEGIN STAGE 7
    while True:
        found = await REDIS.xread({ROOM: last_id}, count=100, block=int(HEARTBEAT * 1000))
        if not found:
            yield None
        for _key, entries in found:
            for entry_id, fields in entries:
                yield entry_id, fields["data"]
                last_id = entry_id  # the next XREAD reads after it
    ### END STAGE 7


@router.post("/room/messages", status_code=201)
async def post_message(request: Request) -> dict[str, str]:
    ### BEGIN STAGE 7
    message = await read_message(request)
    try:
        return {"id": await add(message)}
    except RedisError:
        raise HTTPException(503, "the room is unavailable: not stored, try again") from None
    ### END STAGE 7


@router.get("/room/events")
async def room_events(last_event_id: str | None = Header(None)) -> StreamingResponse:
    ### BEGIN STAGE 7
    try:  # before the 200: a malformed id gets its 400, and a new listener its place
        start = await start_after(last_event_id)
    except ValueError as error:
        raise HTTPException(400, f"Last-Event-ID: {error}") from None

    async def events() -> AsyncIterator[bytes]:
        async for entry in entries_after(start):
            yield comment("ping") if entry is None else encode(Event(entry[1], id=entry[0]))

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    ### END STAGE 7
