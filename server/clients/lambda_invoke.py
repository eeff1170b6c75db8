"""Call an ASGI app the way AWS Lambda calls a mangum handler, and time what comes back.

Seed 000 deploys its FastAPI chatbot on Lambda with mangum. Whether that streams is a
question about mangum, not about AWS: Lambda hands the handler an event (a function URL's
payload format 2.0 here) and gets back one dictionary. `invoke` builds that event, calls
``Mangum(app)(event, None)`` in the calling thread (mangum runs its own event loop, so call it
from a thread: ``await asyncio.to_thread(invoke, app, "/path")``), and returns when the
handler started and returned, so a lesson can compare them with when the app wrote each event.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from mangum import Mangum
from mangum.types import ASGI


def url_event(path: str, method: str = "GET") -> dict[str, Any]:
    """The event a Lambda function URL passes to the handler (payload format 2.0)."""
    return {
        "version": "2.0",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"host": "abc.lambda-url.eu-west-1.on.aws", "accept": "text/event-stream"},
        "requestContext": {"http": {"method": method, "path": path, "sourceIp": "203.0.113.7"}},
        "isBase64Encoded": False,
    }


@dataclass(frozen=True)
class Invocation:
    """What one call of the handler returned, and when (``time.perf_counter`` seconds)."""

    started: float
    returned: float
    result: dict[str, Any]


def invoke(app: ASGI, path: str) -> Invocation:
    """Call `Mangum(app)` as Lambda would, in this thread, and time it."""
    handler = Mangum(app, lifespan="off")  # sets up an event loop in this thread
    started = time.perf_counter()
    try:
        # No Lambda context outside Lambda: mangum only passes it on, in the ASGI scope.
        result = handler(url_event(path), None)  # type: ignore[arg-type]
    finally:  # mangum leaves its loop open: close it, so the next call here makes a new one
        asyncio.get_event_loop().close()
        asyncio.set_event_loop(None)
    return Invocation(started, time.perf_counter(), dict(result))
