"""What a browser meets while the app behind a reverse proxy is down: 502 Bad Gateway.

During a deploy, nginx (or a cloud load balancer) answers 502 or 503 for the seconds the app
is not there. To an `EventSource` that is fatal: any answer other than a 200 with the
`text/event-stream` type closes it for good, with no more reconnection (lesson 05). Run this
app on the port of a stopped app, and a page's streams meet exactly that:

    gateway = start_app("server.apps.bad_gateway:app", port=port)

Every request, whatever its path or method, gets `502 Bad Gateway` and a small HTML page, as
nginx sends. `?status=` and `?type=` choose another status and content type instead, so a
lesson can show what a browser does with each.
"""

from __future__ import annotations

import re
from http import HTTPStatus

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

NO_BODY = {HTTPStatus.NO_CONTENT, HTTPStatus.NOT_MODIFIED}
# type/subtype, then parameters in printable ASCII: no CR, LF or NUL to split a header with.
MEDIA_TYPE = re.compile(r"[\w.+-]+/[\w.+-]+(;[ -~]*)?")


async def answer(request: Request) -> Response:
    """`?status=` (default 502) with `?type=` (default text/html) and a one-line body.

    Both are refused with a 400 unless a client can read the answer: a 1xx status cannot end a
    response, and a type holding a line break would write a header of the caller's choosing."""
    try:
        status = HTTPStatus(int(request.query_params.get("status", "502")))
        if not 200 <= status.value <= 599:
            raise ValueError(status)
    except ValueError:
        return PlainTextResponse(
            "status must be an HTTP status code from 200 to 599, e.g. 502", status_code=400
        )
    media_type = request.query_params.get("type", "text/html")
    if not MEDIA_TYPE.fullmatch(media_type):
        return PlainTextResponse(
            "type must be a media type such as text/html or text/plain; charset=utf-8",
            status_code=400,
        )
    body = b"" if status in NO_BODY else f"<h1>{status.value} {status.phrase}</h1>\n".encode()
    return Response(body, status_code=status.value, media_type=media_type)


app = Starlette(routes=[Route("/{path:path}", answer, methods=["GET", "POST"])])
