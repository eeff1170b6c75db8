"""A Python client that does what a browser's `EventSource` does when a stream breaks.

When the connection ends (the server closed it, a proxy cut it, the server restarted), the
client reconnects, waits the `retry` time the server asked for, and sends the id of the last
event it got as a `Last-Event-ID` header, so the server resumes right after it; an event with
an empty `id:` resets that id, and the next reconnection sends none. A 204 answer means
"nothing more, stop". This is lesson 04's exercise reference; it parses with
`server.sse.Decoder`, so it sees exactly what a browser would.

`next_ready_state` is the browser's rule for an answer, the reference of lesson 05's
exercise: only a 200 event stream is read; no answer at all is retried; any other answer,
a 204 or a proxy's 502 alike, ends the stream for good.
"""

from __future__ import annotations

import time

import httpx2

from server.sse import MEDIA_TYPE, Decoder, Event

DEFAULT_RETRY_MS = 1000  # what browsers use when the server sends no `retry`


def next_ready_state(status: int | None, content_type: str = "") -> str:
    """The `readyState` an `EventSource` moves to after a connection attempt (redirects followed).

    `status` is None when there was no answer at all (refused, reset, timed out): "CONNECTING",
    the browser tries again after the `retry` time. A 200 whose media type is
    `text/event-stream` (any case, parameters such as `charset` allowed): "OPEN", it reads the
    stream. Any other answer: "CLOSED", for good (WHATWG HTML 9.2.3, "fail the connection").
    """
    if status is None:
        return "CONNECTING"
    media_type = content_type.split(";", 1)[0].strip().lower()
    return "OPEN" if status == 200 and media_type == MEDIA_TYPE else "CLOSED"


def read_with_resume(
    url: str,
    want: int,
    *,
    client: httpx2.Client | None = None,
    max_connections: int = 100,
    max_retry_ms: int = 5000,
) -> list[Event]:
    """Read `want` events from `url`, reconnecting with `Last-Event-ID` whenever it ends.

    Stops early when the server answers 204 (the stream is over). A connection that breaks or is
    refused is retried, like a browser does; any other answer a browser would not read (see
    `next_ready_state`) raises `httpx2.HTTPStatusError`: a 400 about a bad `Last-Event-ID` will
    not fix itself.
    """
    events: list[Event] = []
    last_event_id = ""
    retry_ms: int | None = None
    own_client = client is None
    http = client or httpx2.Client(timeout=httpx2.Timeout(10.0, read=60.0))
    try:
        for connection in range(max_connections):
            if connection and retry_ms:  # the first connection does not wait
                time.sleep(min(retry_ms, max_retry_ms) / 1000)
            headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
            if last_event_id:
                headers["Last-Event-ID"] = last_event_id
            decoder = Decoder(last_event_id=last_event_id)  # kept across connections, as a browser
            try:
                with http.stream("GET", url, headers=headers) as response:
                    content_type = response.headers.get("content-type", "")
                    if next_ready_state(response.status_code, content_type) == "CLOSED":
                        if response.status_code == 204:
                            return events
                        raise httpx2.HTTPStatusError(
                            f"{response.status_code} {content_type!r}: not an event stream",
                            request=response.request,
                            response=response,
                        )
                    for chunk in response.iter_bytes():
                        for event in decoder.feed(chunk):
                            events.append(event)
                            if len(events) >= want:
                                return events
            except httpx2.TransportError:
                pass  # cut mid-stream or refused (a restarting server): reconnect, like a browser
            decoder.close()
            last_event_id = decoder.last_event_id  # "" after an empty `id`: the server reset it
            if decoder.retry is not None:
                retry_ms = decoder.retry
            elif retry_ms is None:
                retry_ms = DEFAULT_RETRY_MS
        raise RuntimeError(f"gave up after {max_connections} connections with {len(events)} events")
    finally:
        if own_client:
            http.close()
