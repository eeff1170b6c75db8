"""An MCP event store whose replay reaches only the session that owns the stream.

The official SDK (`mcp` 2.3.0) makes a session-era Streamable HTTP answer resumable when it is
given an `EventStore`: every message of a POST's SSE answer is stored first and sent with the
id the store returns, and a client that lost the stream sends `GET` with `Last-Event-ID` to get
the rest. The SDK hands the store two things only, a *stream id* and the message, and the
stream id is the JSON-RPC request id the client chose: two sessions that each send request
``2`` both write to stream ``"2"``. A store that keeps streams by that id alone mixes sessions,
and replays one client's events to another (lesson 09's resume done wrong, and a published
advisory against an MCP server). Which session is asking is the store's job to know.

Theory of operation
-------------------
`OwnerScope` wraps the SDK's ASGI app and gives every request a fresh `_Owner` cell in a
context variable, filled with the request's ``Mcp-Session-Id`` or, for the ``initialize``
request that opens a session, with the id the answer carries. The SDK runs a session's message
router in a task started while serving that ``initialize``, so the router's copy of the context
holds the same cell, filled by the time any later request is routed. The store reads the cell
whenever it stores or replays, and keys each stream by (owner, stream id).

An event id is ``<token>:<n>``: a random token per stream and a counter, so the id names its
stream and nothing about the session. A replay looks the token up and answers only when the
stream's owner is the session asking; any other request gets nothing, as if the id never
existed. An event stored before its owner is known (the priming event of ``initialize``
itself) gets an id but is not kept: nobody could be allowed to replay it.

A replay of a request's stream does not stop at the events stored so far: it follows the
stream until its response (or error) has been sent, then returns ``None`` so the SDK ends the
answer. The SDK would otherwise register the stream for live messages only after the replay
returns, and a message stored in between would be kept but never sent (its own comment calls
that window "pre-existing"). Following the log is the Redis Streams pattern of lesson 09.

Bounded: at most `max_streams` streams (the oldest is forgotten first) of `max_events` events.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from contextvars import ContextVar
from dataclasses import dataclass, field

import anyio
from mcp.server.streamable_http import (
    GET_STREAM_KEY,
    MCP_SESSION_ID_HEADER,
    EventCallback,
    EventId,
    EventMessage,
    EventStore,
    StreamId,
)
from mcp_types import JSONRPCError, JSONRPCMessage, JSONRPCResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["OwnerScope", "ScopedEventStore", "current_owner"]


@dataclass(slots=True)
class _Owner:
    """The session a request (or a session's router) acts for; None until known."""

    session_id: str | None = None


_owner: ContextVar[_Owner | None] = ContextVar("mcp_event_owner", default=None)


def current_owner() -> str | None:
    """The session id of the request being served, if `OwnerScope` knows it."""
    cell = _owner.get()
    return cell.session_id if cell is not None else None


class OwnerScope:
    """ASGI middleware: each request gets an `_Owner` cell, filled from its session id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = MCP_SESSION_ID_HEADER.encode()
        asked = next((v.decode("latin-1") for k, v in scope["headers"] if k == header), None)
        cell = _Owner(asked)
        token = _owner.set(cell)

        async def note_session(message: Message) -> None:
            if message["type"] == "http.response.start" and cell.session_id is None:
                given = dict(message.get("headers", [])).get(header)
                if given is not None:
                    cell.session_id = given.decode("latin-1")
            await send(message)

        try:
            await self.app(scope, receive, note_session)
        finally:
            _owner.reset(token)


@dataclass(slots=True)
class _Stream:
    owner: str
    stream_id: StreamId
    token: str
    events: list[EventMessage] = field(default_factory=list)
    count: int = 0
    ended: bool = False  # the request's response (or error) is stored
    changed: anyio.Event = field(default_factory=anyio.Event)


class ScopedEventStore(EventStore):
    """Events kept per (session, stream); replayed only to the session that owns them."""

    def __init__(self, *, max_streams: int = 10_000, max_events: int = 1_000) -> None:
        self.max_streams = max_streams
        self.max_events = max_events
        self._streams: OrderedDict[tuple[str, StreamId], _Stream] = OrderedDict()
        self._by_token: dict[str, _Stream] = {}

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        """Keep `message` (None: a priming event) and return its id, ``<token>:<n>``."""
        owner = current_owner()
        if owner is None:  # nobody may replay it, so it is not kept
            return f"{secrets.token_hex(8)}:0"
        stream = self._streams.get((owner, stream_id))
        if stream is None or (stream.ended and stream_id != GET_STREAM_KEY):
            stream = self._open(owner, stream_id)  # a request id the client used again
        stream.count += 1
        event_id = f"{stream.token}:{stream.count}"
        if message is not None:
            if len(stream.events) >= self.max_events:
                del stream.events[0]
            stream.events.append(EventMessage(message, event_id))
            stream.ended = isinstance(message, JSONRPCResponse | JSONRPCError)
        stream.changed.set()
        stream.changed = anyio.Event()
        return event_id

    async def replay_events_after(
        self, last_event_id: EventId, send_callback: EventCallback
    ) -> StreamId | None:
        """Send the owner's events after `last_event_id`; anyone else gets nothing.

        A request's stream is followed until its response is sent (then None: the answer
        ends); the standalone GET stream returns its id so the SDK goes on live."""
        token, _, number = last_event_id.partition(":")
        stream = self._by_token.get(token)
        owner = current_owner()
        if stream is None or owner is None or stream.owner != owner or not number.isdigit():
            return None
        sent = int(number)
        while True:
            changed = stream.changed
            for event in stream.events:
                if int(str(event.event_id).rpartition(":")[2]) > sent:
                    await send_callback(event)
                    sent = int(str(event.event_id).rpartition(":")[2])
            if stream.stream_id == GET_STREAM_KEY:
                return stream.stream_id
            if stream.ended:
                return None
            await changed.wait()

    def _open(self, owner: str, stream_id: StreamId) -> _Stream:
        old = self._streams.pop((owner, stream_id), None)
        if old is not None:
            del self._by_token[old.token]
        while len(self._streams) >= self.max_streams:
            _, oldest = self._streams.popitem(last=False)
            del self._by_token[oldest.token]
        stream = _Stream(owner, stream_id, secrets.token_hex(8))
        self._streams[(owner, stream_id)] = stream
        self._by_token[stream.token] = stream
        return stream
