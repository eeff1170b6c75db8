"""The library option, for comparison: django-eventstream on the same project.

Lesson 04 compares the course's hand-made stream with sse-starlette; lesson 07 does the same
with django-eventstream, the SSE library most Django projects reach for. Its stream is at
`/library/events` (channel "demo"); `POST /library/publish` sends one event to it. What it
puts on the wire (a 2 KB padding comment, a `stream-open` event, keep-alives sent as events,
ids of the form `demo:3`) is for the lesson to show; its Redis option is lesson 09's subject.
"""

from __future__ import annotations

import itertools

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_POST
from django_eventstream import send_event

CHANNEL = "demo"
_numbers = itertools.count(1)


@require_POST
def publish(request: HttpRequest) -> JsonResponse:
    """Send the next numbered event to everyone on the "demo" channel."""
    n = next(_numbers)
    send_event(CHANNEL, "message", {"n": n})
    return JsonResponse({"published": n})
