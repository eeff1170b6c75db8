"""Stages 1 and 2: the seeds' countdown (10 … 1, "발사!") as Server-Sent Events.

Stage 1 streams it from an async generator (`?start=3&interval=0.5&launch=Go` changes it).
Stage 2 numbers each event with `id:` (the launch is id 0) and resumes a reconnecting client
after the last event it saw (`Last-Event-ID`), so nothing is missed or repeated; after id 0
nothing is left, and 204 No Content tells `EventSource` to stop reconnecting. Stage 2 also
changes stage 1's code: the lines marked `stage 2` below.
"""

import asyncio
from collections.abc import AsyncIterator

from fastapi import APIRouter, Header, HTTPException, Query
from fastapi.responses import Response, StreamingResponse

from server.sse import Event, encode

router = APIRouter()


### BEGIN STAGE 1
async def ticks(first: int, interval: float, launch: str) -> AsyncIterator[bytes]:
    """The events from `first` down to 1, then `launch`; says when it is closed."""
    try:
        for n in range(first, 0, -1):
            yield encode(Event(data=str(n), id=str(n)))  # b"id: 3\ndata: 3\n\n" (id: stage 2)
            await asyncio.sleep(interval)  # never time.sleep: it would stop every other client
        # Text from the query may hold a line break: the encoder makes it two data lines
        # of one event, where an f-string would let it forge a field (lesson 03).
        yield encode(Event(data=launch, id="0"))
    finally:  # runs when the countdown ends and when the client leaves early
        print("countdown closed", flush=True)


@router.get("/countdown")
async def countdown(
    start: int = Query(10, ge=1, le=100),
    interval: float = Query(1.0, ge=0, le=10),
    launch: str = Query("발사!", max_length=200),
    last_event_id: str | None = Header(None),  # stage 2: the header Last-Event-ID
) -> Response:
    first = first_tick(last_event_id, start)  # stage 2 (in stage 1, `first` is `start`)
    if first < 0:  # stage 2: the client already saw the launch, so 204 stops EventSource
        return Response(status_code=204)
    return StreamingResponse(
        ticks(first, interval, launch),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


### END STAGE 1


def first_tick(last_event_id: str | None, start: int) -> int:
    """The number to send first: `start`, or the one after `last_event_id` (-1: nothing left).

    The header comes from the client: a bad one is a 400 that says what is wrong, never a 500,
    and never a silent restart, which would repeat every event the client already has."""
    ### BEGIN STAGE 2, stub: return start
    if not last_event_id:  # a first connection
        return start
    # ASCII digits only: int() also takes "+7", " 7" and "1_000", isdigit() takes "²", and
    # int() refuses a string of over 4300 digits (lesson 04, Exercise 1).
    if not (last_event_id.isascii() and last_event_id.isdecimal()) or len(last_event_id) > 18:
        raise HTTPException(
            400, f"Last-Event-ID must be a number from 0 to {start}, got {last_event_id[:20]!r}"
        )
    seen = int(last_event_id)
    if seen > start:
        raise HTTPException(400, f"Last-Event-ID {seen} is above this countdown's start, {start}")
    return seen - 1
    ### END STAGE 2
