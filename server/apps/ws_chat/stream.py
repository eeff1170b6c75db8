"""The chat over SSE + POST: user messages in one request each, room messages in an event stream.

The stream is lesson 09's: the broker's feed, one pre-encoded event per message, a comment
as heartbeat, a send deadline for a client that stops reading, `Last-Event-ID` to resume.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp

from server.apps.ws_chat.room import MAX_TEXT, STATS, Room, user_message
from server.event_ids import parse_stream_id
from server.fanout import BrokerUnavailable, Dropped, Feed
from server.json_body import BadBody, read_body
from server.query_params import whole_number
from server.send_deadline import SendDeadline
from server.sse import comment
from server.sse_response import sse_response
from server.stream_slots import released_after

MAX_BODY = 4 * MAX_TEXT + 1024  # the longest text, each character up to 4 bytes, and the rest


async def post_message(request: Request) -> Response:
    room: Room = request.state.room
    try:
        text, tokens = user_message(await read_body(request, MAX_BODY))
    except BadBody as error:
        return JSONResponse({"detail": str(error)}, error.status)
    except ValueError as error:
        return JSONResponse({"detail": str(error)}, 400)
    try:
        reply = await room.post(text, tokens)
    except BrokerUnavailable as error:
        return JSONResponse({"detail": f"{error}: not stored"}, 503, {"Retry-After": "1"})
    return JSONResponse({"reply": reply}, 202)


async def events(request: Request) -> Response | ASGIApp:
    """The room as an event stream, after a `Last-Event-ID` (streams broker)."""
    room: Room = request.state.room
    try:
        limit = whole_number(request.query_params, "limit")
        history = whole_number(request.query_params, "history") or 0
        header = request.headers.get("last-event-id") if room.broker.keeps_history else None
        feed = room.broker.subscribe(parse_stream_id(header), history)
    except ValueError as error:
        return JSONResponse({"detail": str(error)}, 400)
    feed.open()  # before the 200: nothing published after it is missed

    def stalled() -> None:
        feed.close()
        STATS.add("events", "stalled")

    body = _stream(feed, limit, room.settings.heartbeat)
    response = SendDeadline(sse_response(body), room.settings.send_timeout, stalled)
    return released_after(response, feed.close)  # left even if the body never starts


async def _stream(feed: Feed, limit: int | None, heartbeat: float) -> AsyncIterator[bytes]:
    sent = 0
    with STATS.track("events"):
        while limit is None or sent < limit:
            try:
                message = await feed.next(heartbeat)
            except Dropped:
                STATS.add("events", "dropped")
                return
            if message is None:
                yield comment("ping")
                continue
            yield message.sse
            sent += 1
