"""Stage 5: the countdown of stages 1 and 2 as an async Django view, for an ASGI server.

The same events as `mychat/countdown.py`: ids from `start` down to 1, then "발사!" with id 0;
a client that reconnects with `Last-Event-ID` resumes after it, and after id 0 gets 204 No
Content, which tells `EventSource` to stop. Under ASGI the body must be an *async* generator:
given a sync one, Django warns ("StreamingHttpResponse must consume synchronous iterators")
and reads it to its end before sending a byte. When the client leaves, Django (5.0 and later)
raises `asyncio.CancelledError` in the generator at its `await`.
"""

import asyncio
import math
from collections.abc import AsyncIterator

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse

from server.sse import Event, encode

LAUNCH = "발사!"


def bounded(raw: str, name: str, high: float) -> float:
    """`raw` as a number from 0 to `high`, or a ValueError that says why it is not one."""
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 <= value <= high:  # also refuses nan
        raise ValueError(f"{name} must be a number from 0 to {high:g}, got {raw[:40]!r}")
    return value


### BEGIN STAGE 5
async def ticks(first: int, interval: float) -> AsyncIterator[bytes]:
    """The events from `first` down to 1, then the launch; says when it is closed."""
    try:
        for n in range(first, 0, -1):
            yield encode(Event(data=str(n), id=str(n)))
            await asyncio.sleep(interval)  # where Django cancels it when the client leaves
        yield encode(Event(data=LAUNCH, id="0"))
    finally:  # runs when the countdown ends and when the client leaves early
        print("countdown closed", flush=True)


### END STAGE 5


async def countdown(request: HttpRequest) -> HttpResponse:
    """`GET /countdown?start=10&interval=1`, resuming after `Last-Event-ID`."""
    ### BEGIN STAGE 5
    try:
        start = int(bounded(request.GET.get("start", "10"), "start", 100))
        interval = bounded(request.GET.get("interval", "1"), "interval", 10)
        seen = request.headers.get("Last-Event-ID")
        first = start if seen is None else int(bounded(seen, "Last-Event-ID", start)) - 1
    except ValueError as error:
        return JsonResponse({"detail": str(error)}, status=400)
    if first < 0:  # the client already saw the launch: 204 tells EventSource to stop
        return HttpResponse(status=204)
    return StreamingHttpResponse(
        ticks(first, interval),
        content_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    ### END STAGE 5
