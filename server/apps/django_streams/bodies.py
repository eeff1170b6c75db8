"""Seed 001's other two uses of `StreamingHttpResponse`: a large download and a log tail.

An event stream is one reason to stream a response; the seed names two more. A large file
sent as an `HttpResponse` is built whole in the server's memory before the first byte goes
out (200 MB of file, 200 MB more resident memory, per download at once). Streamed, it is
read and sent a block at a time, and memory stays flat. A log tail is a response that is
never "built" at all: each line goes out as it is written, like `tail -f`.

Both follow the lesson's rule: the iterator's kind must match the server (`?how=wrong` on
the download shows what the other kind costs: Django collects it into a list first).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse

from server.sse import MEDIA_TYPE, RESPONSE_HEADERS, Event, encode

BLOCK = 64 * 1024
MAX_MB = 1024
HOW = ("whole", "stream", "wrong")
PATTERN = bytes(range(256))  # the "file" repeats it: generated, so no disk is needed


def blocks(mb: int) -> Iterator[bytes]:
    """A generated "file" of `mb` MiB, one 64 KiB block at a time (each a new object)."""
    for _ in range(mb * (1024 * 1024 // BLOCK)):
        yield PATTERN * (BLOCK // len(PATTERN))


async def ablocks(mb: int) -> AsyncIterator[bytes]:
    """The same blocks from an async generator, for ASGI."""
    for block in blocks(mb):
        yield block


def download(request: HttpRequest) -> HttpResponse:
    """`?mb=200&how=whole|stream|wrong`: the same bytes as one `HttpResponse` or streamed.

    `stream` uses the iterator the server needs (async under ASGI, sync under WSGI); `wrong`
    uses the other kind, which Django reads into a list before it sends anything.
    """
    how = request.GET.get("how", "stream")
    raw_mb = request.GET.get("mb", "1")
    if how not in HOW or not raw_mb.isdigit() or not 1 <= int(raw_mb) <= MAX_MB:
        detail = f"how must be one of {', '.join(HOW)} and mb a whole number from 1 to {MAX_MB}"
        return JsonResponse({"detail": detail}, status=400)
    mb = int(raw_mb)
    headers = {"Content-Disposition": 'attachment; filename="generated.bin"'}
    if how == "whole":
        whole = PATTERN * (mb * 1024 * 1024 // len(PATTERN))  # the file in memory, as f.read()
        return HttpResponse(whole, content_type="application/octet-stream", headers=headers)
    asgi = isinstance(request, ASGIRequest)
    body = ablocks(mb) if asgi == (how == "stream") else blocks(mb)
    headers["Content-Length"] = str(mb * 1024 * 1024)  # known up front, so a browser shows progress
    return StreamingHttpResponse(body, content_type="application/octet-stream", headers=headers)


async def follow(path: Path, limit: int, poll: float = 0.05) -> AsyncIterator[bytes]:
    """Each complete line of `path` as an event, from the first, waiting for new ones."""
    with path.open("rb") as log:
        partial = b""
        for _ in range(limit):
            while not (partial := partial + log.readline()).endswith(b"\n"):
                await asyncio.sleep(poll)  # at the end of the file: wait for the writer
            yield encode(Event(data=partial.rstrip(b"\r\n").decode(errors="replace")))
            partial = b""


async def log_tail(request: HttpRequest) -> HttpResponse:
    """The lines of `settings.LOG_TAIL_FILE` as events, as they are written: `?limit=100`.

    ASGI only (an async generator). The file is the server's setting, never the client's
    choice: a path in the query string would let anyone read any file.
    """
    path = settings.LOG_TAIL_FILE
    raw_limit = request.GET.get("limit", "100")
    if not path:
        return JsonResponse({"detail": "no log file is set (DJANGO_LOG_TAIL)"}, status=404)
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 100_000:
        return JsonResponse({"detail": "limit must be a whole number from 1 to 100000"}, status=400)
    body = follow(Path(path), int(raw_limit))
    return StreamingHttpResponse(body, content_type=MEDIA_TYPE, headers=dict(RESPONSE_HEADERS))
