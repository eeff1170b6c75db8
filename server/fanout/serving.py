"""Serving a room over HTTP, written once: its settings, its broker's lifespan, `GET /events`.

Lesson 09's broadcast (`server.apps.broadcast`) and lesson 10's chat (`server.apps.ws_chat`)
serve the same room from the same brokers; what they share lives here, so each idea has one
copy (the copies used to drift: only one said `waiting for redis` while Redis was away).

    settings = RoomSettings.from_env()
    app = Starlette(routes=[Route("/events", room_events(STATS)), ...],
                    lifespan=room_lifespan(settings), exception_handlers=refusal_handlers(...))

Per-app state is the lifespan's state dict (Starlette's documented way): `request.state.broker`
and `request.state.settings`, set once at start, never module globals or `app.state` mutation.

`GET /events?limit=N&history=K` answers, in order: a malformed `Last-Event-ID`, `limit` or
`history` (or `history` above `HISTORY_MAX`, or from a broker that keeps none) is a 400 naming
it, raised before the 200; the client joins the hub before the 200 goes out (nothing published
after it is missed); the body is one pre-encoded event per message, the first carrying the
`retry` time, and a comment after `heartbeat` seconds of silence (`ping`, or `waiting for
redis` while the broker cannot reach it); a client a queue behind is dropped, one whose socket
takes nothing for `send_timeout` seconds is ended; the subscription is given back around the
whole response call, even when the body never starts (`server.asgi.stream_slots.released_after`).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.asgi.refusals import Refused
from server.asgi.send_deadline import SendDeadline
from server.asgi.sse_response import sse_response
from server.asgi.stream_slots import released_after
from server.event_ids import parse_stream_id
from server.fanout import DEFAULT_MAXLEN, DEFAULT_QUEUE_SIZE, Broker, Dropped, Feed, open_broker
from server.query_params import whole_number
from server.settings import number
from server.sse import Event, comment, encode
from server.stream_stats import StreamStats

__all__ = ["RoomSettings", "feed_events", "room_events", "room_lifespan", "worker_header"]


@dataclass(frozen=True)
class RoomSettings:
    """A room's settings, each from the environment variable named beside it, checked at start."""

    broker: str = "memory"  # BROKER: memory, pubsub or streams
    redis_url: str = "redis://127.0.0.1:6379"  # REDIS_URL
    worker: str = ""  # WORKER_NAME (default: the pid)
    queue_size: int = DEFAULT_QUEUE_SIZE  # QUEUE_SIZE: messages a client may be behind
    maxlen: int = DEFAULT_MAXLEN  # STREAM_MAXLEN: entries the stream keeps, about
    heartbeat: float = 15.0  # HEARTBEAT: seconds of silence before a comment
    send_timeout: float = 5.0  # SEND_TIMEOUT: seconds a client's socket may take nothing
    retry_ms: int | None = 1000  # RETRY_MS: the `retry` sent with each stream's first event

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> RoomSettings:
        return RoomSettings(**room_fields(env))


def room_fields(env: Mapping[str, str], retry_ms: int | None = 1000) -> dict[str, Any]:
    """`RoomSettings`' fields from `env`, for a class that adds its own (ws_chat's `Settings`);
    `retry_ms` when `RETRY_MS` is unset (None: send no `retry`, the browser's default holds)."""
    if env.get("RETRY_MS"):
        retry_ms = number(env, "RETRY_MS", 1000, low=0, high=600_000)
    return {
        "broker": env.get("BROKER", RoomSettings.broker),
        "redis_url": env.get("REDIS_URL", RoomSettings.redis_url),
        "worker": env.get("WORKER_NAME") or str(os.getpid()),
        "queue_size": number(env, "QUEUE_SIZE", DEFAULT_QUEUE_SIZE, low=1),
        "maxlen": number(env, "STREAM_MAXLEN", DEFAULT_MAXLEN, low=1),
        "heartbeat": number(env, "HEARTBEAT", 15.0, low=0.05, high=3600),
        "send_timeout": number(env, "SEND_TIMEOUT", 5.0, low=0.1, high=3600),
        "retry_ms": retry_ms,
    }


State = dict[str, Any]


def room_lifespan(
    settings: RoomSettings,
    more: Callable[[Broker], AbstractAsyncContextManager[State]] | None = None,
) -> Callable[[Any], AbstractAsyncContextManager[State]]:
    """A Starlette lifespan: the broker started (and stopped), its state `{"broker",
    "settings"}`, plus whatever `more(broker)` yields (ws_chat's room), stopped first."""

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[State]:
        broker = open_broker(
            settings.broker, settings.redis_url, queue_size=settings.queue_size,
            maxlen=settings.maxlen,
        )  # fmt: skip
        await broker.start()
        try:
            state: State = {"broker": broker, "settings": settings}
            if more is None:
                yield state
            else:
                async with more(broker) as extra:
                    yield {**state, **extra}
        finally:
            await broker.stop()

    return lifespan


def room_events(stats: StreamStats) -> Callable[[Request], Awaitable[ASGIApp]]:
    """The `GET /events` endpoint (see above), counting its streams in `stats` ("events")."""

    async def events(request: Request) -> ASGIApp:
        broker: Broker = request.state.broker
        settings: RoomSettings = request.state.settings
        try:
            limit = whole_number(request.query_params, "limit")
            history = whole_number(request.query_params, "history") or 0
            # Only a streams broker sends ids, so only its clients can send one back.
            header = request.headers.get("last-event-id") if broker.keeps_history else None
            feed = broker.subscribe(parse_stream_id(header), history)
        except ValueError as error:  # a parameter, the id, or history without one
            raise Refused(400, str(error)) from None
        feed.open()  # join the hub now, before the 200 goes out: nothing published after is missed

        def stalled() -> None:
            feed.close()
            stats.add("events", "stalled")

        body = feed_events(feed, broker, settings, limit, stats)
        response = SendDeadline(sse_response(body), settings.send_timeout, stalled)
        # Left however the response ends, even if its body never starts (the client left first).
        return released_after(response, feed.close)

    return events


async def feed_events(
    feed: Feed, broker: Broker, settings: RoomSettings, limit: int | None, stats: StreamStats
) -> AsyncIterator[bytes]:
    """A feed as SSE bytes: one pre-encoded event per message, a comment while it is quiet."""
    sent = 0
    with stats.track("events"):
        while limit is None or sent < limit:
            try:
                message = await feed.next(settings.heartbeat)
            except Dropped:
                stats.add("events", "dropped")
                return
            if message is None:
                yield comment("ping" if broker.healthy else "waiting for redis")
                continue
            # The first event also tells the client how soon to reconnect.
            if sent == 0 and settings.retry_ms is not None:
                first = Event(message.data, message.event, message.id, settings.retry_ms)
                yield encode(first)
            else:
                yield message.sse
            sent += 1


def worker_header(app: ASGIApp, worker: str) -> ASGIApp:
    """`app`, with an `X-Worker: worker` header on every response (refusals included), so a
    client behind a load balancer can tell which worker answered."""
    name = worker.encode()

    async def named(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await app(scope, receive, send)

        async def send_named(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-worker", name)]
            await send(message)

        await app(scope, receive, send_named)

    return named
