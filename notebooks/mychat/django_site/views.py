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
# stage 5: your code here
### END STAGE 5


async def countdown(request: HttpRequest) -> HttpResponse:
    """`GET /countdown?start=10&interval=1`, resuming after `Last-Event-ID`."""
    ### BEGIN STAGE 5
    raise NotImplementedError("stage 5: your code here")
    ### END STAGE 5
