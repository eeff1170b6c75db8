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
- A publish while Redis is unreachable, or hung (each command is bounded), is a 503 with
  `Retry-After` and a message saying nothing was stored. An `Idempotency-Key` header
  (`server.idempotency`) makes retrying safe (streams broker).
- Open streams wait through a Redis outage with heartbeats only. The stream's promise,
  every event after your last id in order, still holds once Redis is back, so there is
  nothing for a client to do; an error event would make every client handle it, and closing
  the streams would have every client reconnect into the same outage. The heartbeat comment
  says `waiting for redis`, for whoever reads the wire.
- A listener that falls a whole queue behind is dropped by the hub; one whose socket accepts
  nothing for `SEND_TIMEOUT` seconds is dropped by `server.asgi.send_deadline`. Either way its
  memory is freed and the other listeners never wait for it.

Every refusal is a JSON `{"detail", "error"}` saying what is wrong and how to fix it
(`server.asgi.refusals`: the domain raises, `REFUSALS` maps each error to its status once).

The stream, the settings and the broker's lifespan are the room's, shared with lesson 10's
chat (`server.fanout.serving`); per-app state is the lifespan's state dict. Settings, from the
environment: `BROKER`, `REDIS_URL`, `WORKER_NAME` (default: the pid), `QUEUE_SIZE` (1000),
`STREAM_MAXLEN` (10000), `HEARTBEAT` (15 s), `SEND_TIMEOUT` (5 s), `RETRY_MS` (1000: the `retry`
sent with each stream's first event).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from dataclasses import asdict

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.asgi.json_body import BadBody, parse_json, read_body
from server.asgi.refusals import Refusal, refusal_handlers
from server.fanout import Broker, BrokerUnavailable
from server.fanout.serving import RoomSettings, room_events, room_lifespan, worker_header
from server.idempotency import BadIdempotencyKey, idempotency_key
from server.stream_stats import StreamStats

MAX_MESSAGE = 65_536  # bytes of JSON a publish may carry (a long pasted text, say)

STATS = StreamStats()  # "events": active, finished, cancelled, failed, dropped, stalled
Settings = RoomSettings  # this app's settings are the room's, nothing more
REFUSALS = {
    BadBody: Refusal(400, "bad_body"),  # or its own 413
    BadIdempotencyKey: Refusal(400, "bad_request"),
    BrokerUnavailable: Refusal(503, "unavailable", {"Retry-After": "1"}),
}


# --- publishing ----------------------------------------------------------------------------


async def publish(request: Request) -> Response:
    """Publish one JSON object to the room: 201 with its id (streams) and the worker."""
    broker: Broker = request.state.broker
    data = _message(await read_body(request, MAX_MESSAGE))
    key = idempotency_key(request.headers)
    try:
        message_id = await broker.publish(data, key=key)
    except BrokerUnavailable:
        STATS.add("publish", "refused")
        raise
    STATS.add("publish", "accepted")
    return JSONResponse({"id": message_id, "worker": request.state.settings.worker}, 201)


def _message(body: bytes) -> str:
    """The body (at most MAX_MESSAGE bytes, read by `read_body`) as compact JSON text: it must
    be one JSON object, strictly parsed (`parse_json`)."""
    try:
        value = parse_json(body)
    except BadBody as error:
        raise BadBody(
            400, f'{error}; the body must be a JSON object, e.g. {{"text": "hi"}}'
        ) from None
    if not isinstance(value, dict):
        raise BadBody(400, f"the body must be a JSON object, got {type(value).__name__}")
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# --- status --------------------------------------------------------------------------------


async def status(request: Request) -> Response:
    broker: Broker = request.state.broker
    body = {
        "worker": request.state.settings.worker,
        "broker": broker.kind,
        "healthy": broker.healthy,
    }
    return JSONResponse(body)


async def stats(request: Request) -> Response:
    """Counters, and what this worker costs: CPU seconds so far, and memory now."""
    broker: Broker = request.state.broker
    body = {
        "worker": request.state.settings.worker,
        "hub": asdict(broker.hub.stats()),
        "queue_size": broker.hub.queue_size,
        "cpu_seconds": time.process_time(),
        "rss_kib": _resident_kib(),
        **STATS.snapshot(),
    }
    return JSONResponse(body)


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
    Route("/events", room_events(STATS)),
    Route("/publish", publish, methods=["POST"]),
    Route("/stats", stats),
]


def create_app(settings: RoomSettings) -> Starlette:
    return Starlette(
        routes=routes,
        lifespan=room_lifespan(settings),
        exception_handlers=refusal_handlers(REFUSALS),
        middleware=[Middleware(worker_header, worker=settings.worker)],
    )


app = create_app(RoomSettings.from_env())
