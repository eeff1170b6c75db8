"""An SSE response for Starlette and FastAPI apps: the core's bytes, streamed as written.

    return sse_response(encode(Event(data=str(i))) for i in range(3))

`StreamingResponse` sends each item of the iterator as soon as it is produced. This adds
what every event stream needs and what is easy to forget: the media type `EventSource`
insists on, and the headers that stop caches and proxies from holding events back
(`server.sse.RESPONSE_HEADERS`). FastAPI's own `fastapi.sse.EventSourceResponse` does the
same for routes that yield `ServerSentEvent` objects; lesson 04 compares the two.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable, Mapping

from starlette.responses import StreamingResponse

from server.sse import MEDIA_TYPE, RESPONSE_HEADERS


def sse_response(
    body: AsyncIterable[bytes] | Iterable[bytes],
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> StreamingResponse:
    """Stream `body` (encoded events) as `text/event-stream`; `headers` adds to the usual."""
    return StreamingResponse(
        body,
        status_code=status_code,
        media_type=MEDIA_TYPE,
        headers={**RESPONSE_HEADERS, **(headers or {})},
    )
