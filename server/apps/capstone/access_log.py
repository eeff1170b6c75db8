"""One JSON line per request, with a request id that follows it from nginx to the app's logs.

nginx makes an id per request (``$request_id``) and passes it as ``X-Request-ID`` (the
capstone's location adds ``proxy_set_header X-Request-ID $request_id;``); without a proxy the
app makes one. Every response carries it back (``X-Request-ID``) with the worker's name
(``X-Worker``), so a user's report ("it failed at 10:02, id 3f2a...") leads to the one line in
one worker's log, and the browser's network tab shows which worker answered.

The line is written when the response ends, so for a stream it says how long the stream
lasted and how many bytes it sent. It never holds a query string or a body: prompts are not
logged. (Behind a log shipper, one JSON object per line is what CloudWatch Logs Insights or
Loki parse without a pattern.)
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

log = logging.getLogger("capstone.access")


def configure() -> None:
    """Send the access log to stderr (the server's log file), one bare JSON line each."""
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


class AccessLog:
    """ASGI middleware, inside Starlette: a request id in, the id and worker out, one line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        start, status, sent = time.monotonic(), 500, 0
        worker = scope["state"]["settings"].worker  # the lifespan's state, a copy per request

        async def send_logged(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                extra = [(b"x-request-id", request_id.encode()), (b"x-worker", worker.encode())]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_logged)
        finally:
            line = {
                "time": round(time.time(), 3),
                "request_id": request_id,
                "worker": worker,
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "bytes": sent,
                "duration_ms": round((time.monotonic() - start) * 1000, 1),
                "user": scope["state"].get("user"),
            }
            log.info(json.dumps(line))
