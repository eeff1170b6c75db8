"""One source of events, served three ways: short polling, long polling and SSE.

Lesson 02 compares the three ways a browser can learn about something that happened on the
server. To compare them fairly they must watch the *same* events, so this app runs one
publisher per process (an asyncio task started in the lifespan) that appends price ticks to
an in-memory log at random, seeded times, and three endpoints read that log:

    GET  /poll?since=ID                   JSON list of the events after ID, at once ([] if none)
    GET  /long-poll?since=ID&timeout=S    the same, but held until an event after ID or S seconds
    GET  /sse?since=ID&limit=N&duration=S an SSE stream of the events after ID (or Last-Event-ID)
    POST /publish?price=P                 publish one event now (for demos and tests)
    GET  /                                status: newest id, rate, seed

Every event is a JSON object ``{"id": 7, "published": 1700000000.123, "price": 100.42}``.
``id`` counts up from 1 with no gaps, so ``since`` is simply "the last id I have".
``published`` is the server's ``time.time()`` when the event entered the log: a client on the
same machine subtracts it from its own ``time.time()`` on arrival to get the delivery delay.

Configuration comes from the environment, since there is one publisher per process:
``EVENT_RATE`` (mean events per second, default 0.5, at most 1000; 0 = publish only on POST
/publish), ``EVENT_SEED`` (default 0) and ``EVENT_HISTORY`` (events kept, default 10000, at most
1,000,000), checked at start (`server.settings.number`: a bad one stops the app, naming it).
The gaps between events are exponential (a Poisson process, the usual model of "things happen
at random") drawn from ``random.Random(seed)``, on an absolute schedule, so the same seed gives
the same gaps and the same prices in every run.

Bad parameters get a 400 with a JSON ``detail`` that says what was wrong. A ``since`` older
than the kept history gets 410 Gone: the events the client missed are no longer here, and
saying so beats returning a stream with a silent hole in it. The log and its publisher are in
`event_log.py`, with no HTTP in them: the log raises `IdAhead` or `IdTooOld`, and this module
maps them to those statuses.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.apps.price_feed.event_log import (
    DEFAULT_HISTORY,
    START_PRICE,
    EventLog,
    IdAhead,
    IdTooOld,
    Tick,
    publish_forever,
)
from server.asgi.sse_response import sse_response
from server.event_ids import parse_counter_id
from server.settings import number
from server.sse import comment, encode_json

DEFAULT_RATE = 0.5  # events per second
MAX_RATE = 1000.0  # more is a busy loop, not a price feed
MAX_HISTORY = 1_000_000  # events kept: a Tick and its numbers take about 150 bytes
DEFAULT_HOLD = 20.0  # how long /long-poll holds a request when the client names no timeout
MAX_HOLD = 60.0
MAX_DURATION = 3600.0
HEARTBEAT = 15.0  # an idle SSE stream sends ": ping" this often, so proxies keep it open
NO_CACHE = {"Cache-Control": "no-store"}


def as_json(tick: Tick) -> dict[str, Any]:
    return asdict(tick)


# --- parameters ----------------------------------------------------------------------------


def _since(request: Request, *, header: bool = False) -> int:
    """`?since=`, else (for SSE) the `Last-Event-ID` header, else 0."""
    raw, name = request.query_params.get("since"), "since"
    if raw is None and header:
        raw, name = request.headers.get("last-event-id"), "Last-Event-ID"
    try:
        return parse_counter_id(raw, name)
    except ValueError as error:
        raise HTTPException(400, str(error)) from None


def _count(raw: str, name: str) -> int:
    """A query parameter that counts something: an integer >= 1."""
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 18 and int(raw) >= 1):
        raise HTTPException(400, f"{name} must be an integer >= 1, got {raw!r}")
    return int(raw)


def _seconds(request: Request, name: str, default: float, *, most: float) -> float:
    """An optional query parameter: a number of seconds, 0 < value <= most."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 < value <= most:  # also false for nan
        raise HTTPException(400, f"{name} must be seconds, > 0 and <= {most:g}, got {raw!r}")
    return value


# --- endpoints -----------------------------------------------------------------------------


async def status(request: Request) -> Response:
    settings = request.state.settings
    return JSONResponse({"last_id": request.state.log.last_id, **settings}, headers=NO_CACHE)


async def poll(request: Request) -> Response:
    """Short polling: answer at once with whatever is new (often nothing)."""
    events = request.state.log.after(_since(request))
    return JSONResponse([as_json(e) for e in events], headers=NO_CACHE)


async def long_poll(request: Request) -> Response:
    """Long polling: hold the request until something is new or the timeout passes."""
    since = _since(request)
    timeout = _seconds(request, "timeout", DEFAULT_HOLD, most=MAX_HOLD)
    events = await request.state.log.wait_after(since, timeout)
    return JSONResponse([as_json(e) for e in events], headers=NO_CACHE)


async def sse(request: Request) -> Response:
    """SSE: one response that stays open and carries each event as it is published.

    Finite on request, for tests and cells: `limit` events, or `duration` seconds.
    """
    log: EventLog = request.state.log
    since = _since(request, header=True)
    log.after(since)  # check now, while a 400 or 410 can still be sent
    raw_limit = request.query_params.get("limit")
    limit = None if raw_limit is None else _count(raw_limit, "limit")
    duration = _seconds(request, "duration", math.inf, most=MAX_DURATION)
    return sse_response(_stream(log, since, limit, duration))


async def _stream(
    log: EventLog, since: int, limit: int | None, duration: float
) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    end = loop.time() + duration
    sent = 0
    while True:
        wait = min(HEARTBEAT, end - loop.time())
        if wait <= 0:
            return
        try:
            events = await log.wait_after(since, wait)
        except IdTooOld:  # a client so slow that the log dropped what it had not read:
            return  # end the stream; its reconnect with Last-Event-ID then gets the 410
        if not events:
            if loop.time() < end:
                yield comment("ping")
            continue
        if limit is not None:
            events = events[: limit - sent]
        # Everything that is ready goes out in one chunk: one write, one TCP segment.
        yield b"".join(encode_json(as_json(e), id=str(e.id)) for e in events)
        since = events[-1].id
        sent += len(events)
        if limit is not None and sent >= limit:
            return


async def publish(request: Request) -> Response:
    """Publish one event now; `?price=` sets its price, else the last price is repeated."""
    log: EventLog = request.state.log
    raw = request.query_params.get("price")
    if raw is None:
        price = log.newest.price if log.newest else START_PRICE
    else:
        try:
            price = float(raw)
        except ValueError:
            price = math.nan
        if not math.isfinite(price):
            raise HTTPException(400, f"price must be a number, got {raw!r}")
    return JSONResponse(as_json(await log.publish(price)), status_code=201)


# What the log's errors mean to an HTTP client: a since it cannot have got from this server
# is a bad request; one whose events were dropped names something that is gone.
STATUS_OF: dict[type[Exception], int] = {IdAhead: 400, IdTooOld: 410}


async def _error(request: Request, error: Exception) -> Response:
    """A bad parameter or a `since` the log cannot answer for, as JSON: `{"detail": why}`."""
    if isinstance(error, HTTPException):
        return JSONResponse({"detail": error.detail}, status_code=error.status_code)
    return JSONResponse({"detail": str(error)}, status_code=STATUS_OF[type(error)])


def create_app(
    rate: float = DEFAULT_RATE, seed: int = 0, history: int = DEFAULT_HISTORY
) -> Starlette:
    """The event source app. `rate=0` publishes only on POST /publish."""
    if rate < 0 or history < 1:
        raise ValueError(f"rate must be >= 0 and history >= 1, got rate={rate}, {history=}")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[Mapping[str, Any]]:
        """The log and the settings, as each request's `request.state` (Starlette's way)."""
        log = EventLog(history)
        task = asyncio.create_task(publish_forever(log, rate, seed)) if rate else None
        try:
            yield {"log": log, "settings": {"rate": rate, "seed": seed, "history": history}}
        finally:
            if task is not None:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task

    return Starlette(
        routes=[
            Route("/", status),
            Route("/poll", poll),
            Route("/long-poll", long_poll),
            Route("/sse", sse),
            Route("/publish", publish, methods=["POST"]),
        ],
        lifespan=lifespan,
        exception_handlers=dict.fromkeys([HTTPException, *STATUS_OF], _error),
    )


def _from_env(env: Mapping[str, str] = os.environ) -> Starlette:
    """The app the environment asks for; a bad setting stops it here, naming the variable."""
    return create_app(
        rate=number(env, "EVENT_RATE", DEFAULT_RATE, low=0.0, high=MAX_RATE),
        seed=number(env, "EVENT_SEED", 0, low=0),
        history=number(env, "EVENT_HISTORY", DEFAULT_HISTORY, low=1, high=MAX_HISTORY),
    )


app = _from_env()
