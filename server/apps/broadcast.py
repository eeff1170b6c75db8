"""Lesson 09's broadcast room: every message to every listener, on any number of workers.

Run several of these behind nginx (the launcher: `start_app("server.apps.broadcast:app",
env={"BROKER": "streams", "REDIS_URL": redis.url, "WORKER_NAME": "A"})`):

    GET  /events?limit=N&history=K   the room as SSE; `Last-Event-ID` resumes (streams only)
    POST /publish                    a JSON object; 201 {"id", "worker"}, or 503 if Redis is away
    GET  /stats                      this worker's streams and fan-out counters
    GET  /                           which worker, which broker, whether it reaches Redis

Every response names its worker in an `X-Worker` header, so a client can tell where the load
balancer sent it. The broker comes from `BROKER` (`server.fanout`): `memory` (each worker on
its own), `pubsub` (Redis pub/sub: everyone, at most once), `streams` (Redis Streams:
everyone, everything, with ids; `?history=K` starts a new listener with the last K
messages, which makes the stream the room's chat history too; K above `HISTORY_MAX`, 500,
is a 400).

Behaviour at the edges, each one a decision:

- A malformed `Last-Event-ID` is a 400 with the reason (checked before the stream starts,
  while a status can still be sent). One older than the history kept gets `event: reset`.
- A publish while Redis is unreachable is a 503 with `Retry-After` and a message saying
  nothing was stored. An `Idempotency-Key` header makes retrying safe (streams broker).
- Open streams wait through a Redis outage with heartbeats only. The stream's promise,
  every event after your last id in order, still holds once Redis is back, so there is
  nothing for a client to do; an error event would make every client handle it, and closing
  the streams would have every client reconnect into the same outage. The heartbeat comment
  says `waiting for redis`, for whoever reads the wire.
- A listener that falls a whole queue behind is dropped by the hub; one whose socket accepts
  nothing for `SEND_TIMEOUT` seconds is dropped by `server.send_deadline`. Either way its
  memory is freed and the other listeners never wait for it.

Settings, from the environment: `BROKER`, `REDIS_URL`, `WORKER_NAME` (default: the pid),
`QUEUE_SIZE` (1000), `STREAM_MAXLEN` (10000), `HEARTBEAT` (15 s), `SEND_TIMEOUT` (5 s),
`RETRY_MS` (1000: the `retry` sent with each stream's first event).
"""

from __future__ import annotations

import json
import os
import re
import resource
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from server.event_ids import parse_stream_id
from server.fanout import (
    DEFAULT_MAXLEN,
    DEFAULT_QUEUE_SIZE,
    Broker,
    BrokerUnavailable,
    Dropped,
    Feed,
    open_broker,
)
from server.json_body import BadBody, parse_json, read_body
from server.query_params import whole_number
from server.send_deadline import SendDeadline
from server.settings import number
from server.sse import Event, comment, encode
from server.sse_response import sse_response
from server.stream_slots import released_after
from server.stream_stats import StreamStats

MAX_MESSAGE = 65_536  # bytes of JSON a publish may carry (a long pasted text, say)
IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9._:-]{1,64}")

STATS = StreamStats()  # "events": active, finished, cancelled, failed, dropped, stalled


@dataclass(frozen=True)
class Settings:
    broker: str = "memory"
    redis_url: str = "redis://127.0.0.1:6379"
    worker: str = ""  # from_env: the pid
    queue_size: int = DEFAULT_QUEUE_SIZE
    maxlen: int = DEFAULT_MAXLEN
    heartbeat: float = 15.0
    send_timeout: float = 5.0
    retry_ms: int = 1000

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        return cls(
            broker=env.get("BROKER", cls.broker),
            redis_url=env.get("REDIS_URL", cls.redis_url),
            worker=env.get("WORKER_NAME", str(os.getpid())),
            queue_size=number(env, "QUEUE_SIZE", cls.queue_size, low=1),
            maxlen=number(env, "STREAM_MAXLEN", cls.maxlen, low=1),
            heartbeat=number(env, "HEARTBEAT", cls.heartbeat, low=0.05, high=3600),
            send_timeout=number(env, "SEND_TIMEOUT", cls.send_timeout, low=0.1, high=3600),
            retry_ms=number(env, "RETRY_MS", cls.retry_ms, low=0, high=600_000),
        )


class BadRequest(Exception):
    """A parameter, header or body the app refuses, with the reason (a 400, or 413)."""

    def __init__(self, detail: str, status: int = 400) -> None:
        super().__init__(detail)
        self.status = status


def _error(detail: str, status: int, headers: Mapping[str, str] | None = None) -> Response:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _worker_header(request: Request) -> dict[str, str]:
    return {"X-Worker": request.app.state.settings.worker}


# --- the stream ----------------------------------------------------------------------------


async def events(request: Request) -> Response | ASGIApp:
    """The room as an event stream, from a `Last-Event-ID` or `?history=K` on (streams)."""
    settings: Settings = request.app.state.settings
    broker: Broker = request.state.broker
    try:
        limit = whole_number(request.query_params, "limit")
        history = whole_number(request.query_params, "history") or 0
        # Only a streams broker sends ids, so only its clients can send one back.
        header = request.headers.get("last-event-id") if broker.keeps_history else None
        feed = broker.subscribe(parse_stream_id(header), history)
    except (BadRequest, ValueError) as error:  # ValueError: the id, or history without one
        status = error.status if isinstance(error, BadRequest) else 400
        return _error(str(error), status, _worker_header(request))
    feed.open()  # join the hub now, before the 200 goes out: nothing published after is missed

    def stalled() -> None:
        feed.close()
        STATS.add("events", "stalled")

    body = _stream(feed, broker, settings, limit)
    response = sse_response(body, headers=_worker_header(request))
    # Left however the response ends, even if its body never starts (the client left first).
    return released_after(SendDeadline(response, settings.send_timeout, stalled), feed.close)


async def _stream(
    feed: Feed, broker: Broker, settings: Settings, limit: int | None
) -> AsyncIterator[bytes]:
    sent = 0
    with STATS.track("events"):
        while limit is None or sent < limit:
            try:
                message = await feed.next(settings.heartbeat)
            except Dropped:
                STATS.add("events", "dropped")
                return
            if message is None:
                yield comment("ping" if broker.healthy else "waiting for redis")
                continue
            if sent == 0:  # the first event also tells the client how soon to reconnect
                first = Event(message.data, message.event, message.id, settings.retry_ms)
                yield encode(first)
            else:
                yield message.sse
            sent += 1


# --- publishing ----------------------------------------------------------------------------


async def publish(request: Request) -> Response:
    """Publish one JSON object to the room: 201 with its id (streams) and the worker."""
    broker: Broker = request.state.broker
    headers = _worker_header(request)
    try:
        data = _message(await read_body(request, MAX_MESSAGE))
        key = request.headers.get("idempotency-key")
        if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
            raise BadRequest("Idempotency-Key must be 1-64 letters, digits or ._:-")
    except (BadRequest, BadBody) as error:
        return _error(str(error), error.status, headers)
    try:
        message_id = await broker.publish(data, key=key)
    except BrokerUnavailable as error:
        STATS.add("publish", "refused")
        detail = f"{error}: the message was NOT stored. Retry later (same Idempotency-Key)."
        return _error(detail, 503, {**headers, "Retry-After": "1"})
    STATS.add("publish", "accepted")
    return JSONResponse({"id": message_id, "worker": headers["X-Worker"]}, 201, headers)


def _message(body: bytes) -> str:
    """The body (at most MAX_MESSAGE bytes, read by `read_body`) as compact JSON text: it must
    be one JSON object, strictly parsed (`parse_json`)."""
    try:
        value = parse_json(body)
    except BadBody as error:
        raise BadRequest(
            f'{error}; the body must be a JSON object, e.g. {{"text": "hi"}}'
        ) from None
    if not isinstance(value, dict):
        raise BadRequest(f"the body must be a JSON object, got {type(value).__name__}")
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# --- status --------------------------------------------------------------------------------


async def status(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    broker: Broker = request.state.broker
    body = {"worker": settings.worker, "broker": broker.kind, "healthy": broker.healthy}
    return JSONResponse(body, headers=_worker_header(request))


async def stats(request: Request) -> Response:
    """Counters, and what this worker costs: CPU seconds so far, and memory now."""
    broker: Broker = request.state.broker
    body = {
        "worker": request.app.state.settings.worker,
        "hub": asdict(broker.hub.stats()),
        "queue_size": broker.hub.queue_size,
        "cpu_seconds": time.process_time(),
        "rss_kib": _resident_kib(),
        **STATS.snapshot(),
    }
    return JSONResponse(body, headers=_worker_header(request))


def _resident_kib() -> int:
    """This process's resident memory now, in KiB (Linux); elsewhere its peak so far (macOS
    has no /proc, and the standard library only reports the peak there)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS
        return peak // 1024 if sys.platform == "darwin" else peak


routes = [
    Route("/", status),
    Route("/events", events),
    Route("/publish", publish, methods=["POST"]),
    Route("/stats", stats),
]


def create_app(settings: Settings) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        broker = open_broker(
            settings.broker,
            settings.redis_url,
            queue_size=settings.queue_size,
            maxlen=settings.maxlen,
        )
        await broker.start()
        try:
            yield {"broker": broker}
        finally:
            await broker.stop()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.settings = settings
    return app


app = create_app(Settings.from_env())
