"""Event streams from Django: `StreamingHttpResponse` with the course's SSE core.

Django streams a response from any iterator, but the *kind* of iterator must match the
server. Under WSGI (gunicorn) a worker thread pulls a sync iterator, one thread per open
stream for as long as it stays open. Under ASGI (uvicorn) the event loop pulls an async
iterator, and an open stream costs no thread. Given the other kind, Django warns ("must
consume ... iterators") and reads the *whole* iterator into a list before sending the
first byte: nothing streams.

So every stream here is written once, as a *plan*: a generator of the bytes to send and
the seconds to wait between them, which does no I/O and never sleeps by itself. Two small
drivers run a plan, `run_sync` with `time.sleep` and `run_async` with `asyncio.sleep`, and
`event_stream` picks the one that matches the server the request came through.

Disconnects differ too. Under ASGI, Django cancels the response when the client leaves:
`asyncio.CancelledError` is raised inside the async driver at its `await`, and
`STATS.track` counts the stream as cancelled on its way out. Under WSGI nothing tells the
generator; only a failing write does, so a stream that sends nothing can outlive its
client by a long time, and heartbeats (`?heartbeat=`) bound that time.

Bad query parameters and a malformed `Last-Event-ID` get a 400 with a JSON `detail`.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from functools import wraps

from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse

from server.event_ids import parse_counter_id
from server.seed_texts import LIFTOFF, REPLY
from server.sse import MEDIA_TYPE, RESPONSE_HEADERS, Event, comment, encode, encode_json
from server.stream_stats import StreamStats

STATS = StreamStats()
MAX_EVENTS = 100_000  # a larger ?limit= is refused: a test or a cell never needs more

Step = bytes | float  # bytes to send, or seconds to wait
Plan = Iterator[Step]


# --- plans: what each stream sends, and when (no I/O) ------------------------------------


def countdown_plan(start: int, interval: float) -> Plan:
    """The seeds' countdown: start, ..., 1, then "발사!"."""
    for i in range(start, 0, -1):
        yield encode(Event(data=str(i)))
        yield interval
    yield encode(Event(data=LIFTOFF))


def tokens_plan(delay: float) -> Plan:
    """The seeds' fake LLM: one syllable per event, then `[DONE]`, as OpenAI ends a stream."""
    for token in REPLY:
        yield encode(Event(data=token))
        yield delay
    yield encode(Event(data="[DONE]"))


def events_plan(
    after: int, limit: int | None, interval: float, heartbeat: float | None, retry: int
) -> Plan:
    """Numbered events after id `after`; event n is `{"n": n, "square": n*n}` with id n.

    The first event also sets `retry`. With `heartbeat`, a comment goes out whenever the
    gap to the next event is longer than that, so a proxy (and, under WSGI, the server)
    sees the connection is in use.
    """
    numbers = itertools.count(after + 1) if limit is None else range(after + 1, after + 1 + limit)
    for sent, n in enumerate(numbers):
        if sent:
            gap = interval
            while heartbeat is not None and gap > heartbeat:
                yield heartbeat
                yield comment("heartbeat")
                gap -= heartbeat
            yield gap
        yield encode_json({"n": n, "square": n * n}, id=str(n), retry=None if sent else retry)


# --- drivers: the same plan, run by a thread or by the event loop ---------------------------


def run_sync(name: str, plan: Plan) -> Iterator[bytes]:
    """For WSGI: sleeps block this request's worker thread, and only this one."""
    with STATS.track(name):
        for step in plan:
            if isinstance(step, bytes):
                yield step
            else:
                time.sleep(step)


async def run_async(name: str, plan: Plan) -> AsyncIterator[bytes]:
    """For ASGI: sleeps let the event loop serve every other stream meanwhile."""
    with STATS.track(name):  # counts CancelledError (the client left) as "cancelled"
        for step in plan:
            if isinstance(step, bytes):
                yield step
            else:
                await asyncio.sleep(step)


def event_stream(
    request: HttpRequest, name: str, plan: Plan, *, wrong: bool = False
) -> HttpResponse:
    """Stream `plan` with the driver the server needs (`wrong=True`: the other one)."""
    asgi = isinstance(request, ASGIRequest)
    body = run_async(name, plan) if asgi != wrong else run_sync(name, plan)
    return StreamingHttpResponse(body, content_type=MEDIA_TYPE, headers=dict(RESPONSE_HEADERS))


# --- parameters -------------------------------------------------------------------------


def _param(
    request: HttpRequest,
    name: str,
    kind: type[int] | type[float],
    default: float | None,
    low: float,
    high: float,
) -> float | None:
    """A query parameter of `kind` within [low, high]; ValueError with the reason if not."""
    raw = request.GET.get(name)
    if raw is None:
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:  # also refuses nan
        raise ValueError(f"{name} must be a number from {low:g} to {high:g}, got {raw[:40]!r}")
    return value


def _rejects_bad_input(
    view: Callable[[HttpRequest], HttpResponse],
) -> Callable[[HttpRequest], HttpResponse]:
    """Turn a ValueError raised while reading the request into a 400 that says why."""

    @wraps(view)
    def checked(request: HttpRequest) -> HttpResponse:
        try:
            return view(request)
        except ValueError as error:
            return JsonResponse({"detail": str(error)}, status=400)

    return checked


# --- views ---------------------------------------------------------------------------------


def _page(request: HttpRequest) -> HttpResponse:
    """ "ok", padded with `?size=` dots; `X-Thread` names the thread that ran the view."""
    size = int(_param(request, "size", int, 0, 0, 100_000) or 0)
    response = HttpResponse("ok\n" + "." * size, content_type="text/plain")
    response["X-Thread"] = threading.current_thread().name
    return response


@_rejects_bad_input
def plain(request: HttpRequest) -> HttpResponse:
    """A plain page. Its latency shows whether open streams have taken the server's capacity.

    A sync view: under ASGI, Django runs it in a worker thread (a hop there and back).
    """
    return _page(request)


async def async_plain(request: HttpRequest) -> HttpResponse:
    """The same page as an async view: under ASGI it runs on the event loop, no thread hop."""
    try:
        return _page(request)
    except ValueError as error:
        return JsonResponse({"detail": str(error)}, status=400)


@_rejects_bad_input
def seed_countdown(request: HttpRequest) -> HttpResponse:
    """The seed notes' view, as they wrote it: a sync generator that sleeps between events.

    Under WSGI it streams, holding a worker thread throughout. Under ASGI Django must read
    the whole generator before sending anything (and says so in the server's log). Only
    `?interval=` is new, so a lesson need not wait five seconds.
    """
    interval = _param(request, "interval", float, 1.0, 0, 10) or 0.0

    def event_stream() -> Iterator[str]:
        for i in range(5, 0, -1):
            yield f"data: {i}\n\n"
            time.sleep(interval)
        yield "data: 발사!\n\n"

    return StreamingHttpResponse(event_stream(), content_type="text/event-stream")


@_rejects_bad_input
def seed_countdown_async(request: HttpRequest) -> HttpResponse:
    """The seed's view made right for ASGI: `async def` and `await asyncio.sleep`, nothing else."""
    interval = _param(request, "interval", float, 1.0, 0, 10) or 0.0

    async def event_stream() -> AsyncIterator[str]:
        for i in range(5, 0, -1):
            yield f"data: {i}\n\n"
            await asyncio.sleep(interval)
        yield "data: 발사!\n\n"

    return StreamingHttpResponse(event_stream(), content_type="text/event-stream")


@_rejects_bad_input
def slow(request: HttpRequest) -> HttpResponse:
    """A sync view that takes `?seconds=1` (a slow query, say), then answers like `plain`."""
    time.sleep(_param(request, "seconds", float, 1.0, 0, 10) or 0.0)
    return _page(request)


@_rejects_bad_input
def countdown(request: HttpRequest) -> HttpResponse:
    """The countdown, streamed by the right driver for the server: `?start=5&interval=1`."""
    start = int(_param(request, "start", int, 5, 0, 100) or 0)
    interval = _param(request, "interval", float, 1.0, 0, 10) or 0.0
    return event_stream(request, "countdown", countdown_plan(start, interval))


@_rejects_bad_input
def wrong_kind_countdown(request: HttpRequest) -> HttpResponse:
    """The countdown with the driver the server does *not* want: nothing streams."""
    start = int(_param(request, "start", int, 5, 0, 100) or 0)
    interval = _param(request, "interval", float, 1.0, 0, 10) or 0.0
    return event_stream(request, "wrong-kind", countdown_plan(start, interval), wrong=True)


@_rejects_bad_input
def tokens(request: HttpRequest) -> HttpResponse:
    """The fake LLM reply, one syllable per event: `?delay=0.05`."""
    delay = _param(request, "delay", float, 0.05, 0, 5) or 0.0
    return event_stream(request, "tokens", tokens_plan(delay))


@_rejects_bad_input
def events(request: HttpRequest) -> HttpResponse:
    """Numbered events, resuming after `Last-Event-ID`: `?limit=&interval=1&heartbeat=&retry=`.

    The id is read before the response starts, so a malformed one still gets its 400.
    """
    after = parse_counter_id(request.headers.get("Last-Event-ID"))
    limit = _param(request, "limit", int, None, 1, MAX_EVENTS)
    interval = _param(request, "interval", float, 1.0, 0, 60) or 0.0
    heartbeat = _param(request, "heartbeat", float, None, 0.01, 60)
    retry = int(_param(request, "retry", int, 1000, 0, 600_000) or 0)
    plan = events_plan(after, None if limit is None else int(limit), interval, heartbeat, retry)
    return event_stream(request, "events", plan)


def stats(request: HttpRequest) -> JsonResponse:
    """Streams by name: how many are open now, and how the others ended."""
    return JsonResponse(STATS.snapshot())
