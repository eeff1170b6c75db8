"""Compression for pages, never for event streams.

Django's `GZipMiddleware` compresses streaming responses too, and on an event stream that
goes wrong either way (lesson 07 measures both): a sync stream is held in the compressor's
buffer until enough text piles up (events arrive late, in bursts), and an async stream has
each event compressed as its own gzip member (bigger than the event, and clients that read
only the first member, httpx2 among them, silently lose the rest). Starlette's middleware
skips `text/event-stream` since 0.46; this does the same for Django.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponseBase
from django.middleware.gzip import GZipMiddleware

from server.sse import MEDIA_TYPE


class EventStreamSafeGZipMiddleware(GZipMiddleware):
    """`GZipMiddleware` that passes `text/event-stream` responses through untouched."""

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        if response.get("Content-Type", "").startswith(MEDIA_TYPE):
            return response
        return super().process_response(request, response)
