"""The chat over SSE + POST: user messages in one request each, room messages in an event stream.

The stream is lesson 09's room stream (`server.fanout.serving.room_events`): the broker's feed,
one pre-encoded event per message, a comment as heartbeat, a send deadline for a client that
stops reading, `Last-Event-ID` to resume. This module adds the POST.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from server.apps.ws_chat.room import MAX_MESSAGE_BYTES, STATS, Room, user_message
from server.asgi.json_body import read_body
from server.fanout.serving import room_events

events = room_events(STATS)


async def post_message(request: Request) -> Response:
    """A user's message: 202 with the reply's name. Refused (`server.asgi.refusals`, mapped in
    `ws_chat.REFUSALS`): a bad body, a client over its rate, a broker that cannot publish."""
    room: Room = request.state.room
    text, tokens = user_message(await read_body(request, MAX_MESSAGE_BYTES))
    client = request.client.host if request.client else ""
    reply = await room.post(text, tokens, client)
    return JSONResponse({"reply": reply}, 202)
