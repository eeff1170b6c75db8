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
# stage 1: your code here
### END STAGE 1


def first_tick(last_event_id: str | None, start: int) -> int:
    """The number to send first: `start`, or the one after `last_event_id` (-1: nothing left).

    The header comes from the client: a bad one is a 400 that says what is wrong, never a 500,
    and never a silent restart, which would repeat every event the client already has."""
    ### BEGIN STAGE 2, stub: return start
    return start  # stage 2: your code here
    ### END STAGE 2
