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
``EVENT_RATE`` (mean events per second, default 0.5; 0 = publish only on POST /publish),
``EVENT_SEED`` (default 0) and ``EVENT_HISTORY`` (events kept, default 10000). The gaps between
events are exponential (a Poisson process, the usual model of "things happen at random") drawn
from ``random.Random(seed)``, on an absolute schedule, so the same seed gives the same gaps
and the same prices in every run.

Bad parameters get a 400 with a JSON ``detail`` that says what was wrong. A ``since`` older
than the kept history gets 410 Gone: the events the client missed are no longer here, and
saying so beats returning a stream with a silent hole in it.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict, dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from server.sse import MEDIA_TYPE, RESPONSE_HEADERS, Event, comment, encode

DEFAULT_RATE = 0.5  # events per second
DEFAULT_HISTORY = 10_000
DEFAULT_HOLD = 20.0  # how long /long-poll holds a request when the client names no timeout
MAX_HOLD = 60.0
MAX_DURATION = 3600.0
HEARTBEAT = 15.0  # an idle SSE stream sends ": ping" this often, so proxies keep it open
START_PRICE = 100.0
NO_CACHE = {"Cache-Control": "no-store"}


@dataclass(frozen=True, slots=True)
class Tick:
    """One published event: a price at a moment."""

    id: int
    published: float  # server time.time() when it entered the log
    price: float


class EventLog:
    """The published events, newest last, and a way to wait for the next one.

    Waiting uses one `asyncio.Event` per "generation": `publish` sets the current one and
    puts a fresh one in its place, so every waiter wakes exactly once per publish and then
    re-checks whether an event it wants has arrived.
    """

    def __init__(self, history: int = DEFAULT_HISTORY) -> None:
        self._events: deque[Tick] = deque(maxlen=history)
        self._next_id = 1
        self._published = asyncio.Event()

    @property
    def newest(self) -> Tick | None:
        return self._events[-1] if self._events else None

    @property
    def last_id(self) -> int:
        """The id of the newest event, 0 before the first."""
        return self._next_id - 1

    def publish(self, price: float) -> Tick:
        tick = Tick(self._next_id, time.time(), price)
        self._events.append(tick)
        self._next_id += 1
        self._published.set()
        self._published = asyncio.Event()
        return tick

    def after(self, since: int) -> list[Tick]:
        """The events with id > since (ids have no gaps, so this is a slice)."""
        if since > self.last_id:
            raise HTTPException(
                400,
                f"since={since} is ahead of the newest event ({self.last_id}); "
                "ids restart at 1 when the server restarts, so start again from since=0",
            )
        oldest = self._events[0].id if self._events else self._next_id
        if since < oldest - 1:
            raise HTTPException(
                410,
                f"events {since + 1} to {oldest - 1} are no longer kept (the log holds the "
                f"last {self._events.maxlen}); start again from since={oldest - 1}",
            )
        start = since - oldest + 1
        return [self._events[i] for i in range(start, len(self._events))]

    async def wait_after(self, since: int, timeout: float) -> list[Tick]:
        """The events after `since`, waiting up to `timeout` seconds for one if there are none."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not (events := self.after(since)):
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return []
            with suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._published.wait()
        return events


async def publish_forever(log: EventLog, rate: float, seed: int) -> None:
    """Publish price ticks at random times: exponential gaps, mean 1/rate seconds.

    The schedule is absolute (each tick is due at the previous due time plus a gap), so a
    slow loop delays a tick without shifting all the ones after it.
    """
    gaps = random.Random(seed)
    prices = random.Random(seed + 1)
    price = START_PRICE
    loop = asyncio.get_running_loop()
    due = loop.time()
    while True:
        due += gaps.expovariate(rate)
        await asyncio.sleep(max(0.0, due - loop.time()))
        price = round(price * (1 + prices.gauss(0, 0.002)), 2)
        log.publish(price)


def as_json(tick: Tick) -> dict[str, Any]:
    return asdict(tick)


# --- parameters ----------------------------------------------------------------------------


def _since(request: Request, *, header: bool = False) -> int:
    """`?since=`, else (for SSE) the `Last-Event-ID` header, else 0."""
    raw, name = request.query_params.get("since"), "since"
    if raw is None and header:
        raw, name = request.headers.get("last-event-id") or None, "Last-Event-ID"
    return 0 if raw is None else _integer(raw, name, minimum=0)


def _integer(raw: str, name: str, *, minimum: int) -> int:
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 18 and int(raw) >= minimum):
        raise HTTPException(400, f"{name} must be an integer >= {minimum}, got {raw!r}")
    return int(raw)


def _seconds(request: Request, name: str, default: float | None, *, most: float) -> float | None:
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


def _log(request: Request) -> EventLog:
    return request.state.log


async def status(request: Request) -> Response:
    log = _log(request)
    settings = request.app.state.settings
    return JSONResponse({"last_id": log.last_id, **settings}, headers=NO_CACHE)


async def poll(request: Request) -> Response:
    """Short polling: answer at once with whatever is new (often nothing)."""
    events = _log(request).after(_since(request))
    return JSONResponse([as_json(e) for e in events], headers=NO_CACHE)


async def long_poll(request: Request) -> Response:
    """Long polling: hold the request until something is new or the timeout passes."""
    since = _since(request)
    timeout = _seconds(request, "timeout", DEFAULT_HOLD, most=MAX_HOLD)
    events = await _log(request).wait_after(since, timeout or DEFAULT_HOLD)
    return JSONResponse([as_json(e) for e in events], headers=NO_CACHE)


async def sse(request: Request) -> Response:
    """SSE: one response that stays open and carries each event as it is published.

    Finite on request, for tests and cells: `limit` events, or `duration` seconds.
    """
    log = _log(request)
    since = _since(request, header=True)
    log.after(since)  # validate now, while a 400 can still be sent
    raw_limit = request.query_params.get("limit")
    limit = None if raw_limit is None else _integer(raw_limit, "limit", minimum=1)
    duration = _seconds(request, "duration", None, most=MAX_DURATION)
    return StreamingResponse(
        _stream(log, since, limit, duration),
        media_type=MEDIA_TYPE,
        headers=RESPONSE_HEADERS,
    )


async def _stream(
    log: EventLog, since: int, limit: int | None, duration: float | None
) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    end = math.inf if duration is None else loop.time() + duration
    sent = 0
    while True:
        wait = min(HEARTBEAT, end - loop.time())
        if wait <= 0:
            return
        try:
            events = await log.wait_after(since, wait)
        except HTTPException:  # a client so slow that the log dropped what it had not read:
            return  # end the stream; its reconnect with Last-Event-ID then gets the 410
        if not events:
            if loop.time() < end:
                yield comment("ping")
            continue
        if limit is not None:
            events = events[: limit - sent]
        # Everything that is ready goes out in one chunk: one write, one TCP segment.
        yield b"".join(
            encode(Event(data=json.dumps(as_json(e), separators=(",", ":")), id=str(e.id)))
            for e in events
        )
        since = events[-1].id
        sent += len(events)
        if limit is not None and sent >= limit:
            return


async def publish(request: Request) -> Response:
    """Publish one event now; `?price=` sets its price, else the last price is repeated."""
    log = _log(request)
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
    return JSONResponse(as_json(log.publish(price)), status_code=201)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    return JSONResponse({"detail": error.detail}, status_code=error.status_code)


def create_app(
    rate: float = DEFAULT_RATE, seed: int = 0, history: int = DEFAULT_HISTORY
) -> Starlette:
    """The event source app. `rate=0` publishes only on POST /publish."""
    if rate < 0 or history < 1:
        raise ValueError(f"rate must be >= 0 and history >= 1, got rate={rate}, {history=}")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[Mapping[str, Any]]:
        log = EventLog(history)
        task = asyncio.create_task(publish_forever(log, rate, seed)) if rate else None
        try:
            yield {"log": log}
        finally:
            if task is not None:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task

    app = Starlette(
        routes=[
            Route("/", status),
            Route("/poll", poll),
            Route("/long-poll", long_poll),
            Route("/sse", sse),
            Route("/publish", publish, methods=["POST"]),
        ],
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error},
    )
    app.state.settings = {"rate": rate, "seed": seed, "history": history}
    return app


def _from_env(env: Mapping[str, str] = os.environ) -> Starlette:
    return create_app(
        rate=float(env.get("EVENT_RATE", DEFAULT_RATE)),
        seed=int(env.get("EVENT_SEED", 0)),
        history=int(env.get("EVENT_HISTORY", DEFAULT_HISTORY)),
    )


app = _from_env()
