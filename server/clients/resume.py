"""A Python client that does what a browser's `EventSource` does when a stream breaks.

When the connection ends (the server closed it, a proxy cut it, the server restarted), the
client reconnects, waits the `retry` time the server asked for, and sends the id of the last
event it got as a `Last-Event-ID` header, so the server resumes right after it. A 204 answer
means "nothing more, stop". This is lesson 04's exercise reference; it parses with
`server.sse.Decoder`, so it sees exactly what a browser would.
"""

from __future__ import annotations

import time

import httpx

from server.sse import Decoder, Event

DEFAULT_RETRY_MS = 1000  # what browsers use when the server sends no `retry`


def read_with_resume(
    url: str,
    want: int,
    *,
    client: httpx.Client | None = None,
    max_connections: int = 100,
    max_retry_ms: int = 5000,
) -> list[Event]:
    """Read `want` events from `url`, reconnecting with `Last-Event-ID` whenever it ends.

    Stops early when the server answers 204 (the stream is over). A connection that breaks or is
    refused is retried, like a browser does; any other non-200 answer raises
    `httpx.HTTPStatusError`: a 400 about a bad `Last-Event-ID` will not fix itself.
    """
    events: list[Event] = []
    last_event_id = ""
    retry_ms: int | None = None
    own_client = client is None
    http = client or httpx.Client(timeout=httpx.Timeout(10.0, read=60.0))
    try:
        for connection in range(max_connections):
            if connection and retry_ms:  # the first connection does not wait
                time.sleep(min(retry_ms, max_retry_ms) / 1000)
            headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
            if last_event_id:
                headers["Last-Event-ID"] = last_event_id
            decoder = Decoder()
            try:
                with http.stream("GET", url, headers=headers) as response:
                    if response.status_code == 204:
                        return events
                    response.raise_for_status()
                    for chunk in response.iter_bytes():
                        for event in decoder.feed(chunk):
                            events.append(event)
                            if len(events) >= want:
                                return events
            except httpx.TransportError:
                pass  # cut mid-stream or refused (a restarting server): reconnect, like a browser
            decoder.close()
            last_event_id = decoder.last_event_id or last_event_id
            if decoder.retry is not None:
                retry_ms = decoder.retry
            elif retry_ms is None:
                retry_ms = DEFAULT_RETRY_MS
        raise RuntimeError(f"gave up after {max_connections} connections with {len(events)} events")
    finally:
        if own_client:
            http.close()
