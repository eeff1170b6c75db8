"""Numbered events that carry the time they were sent: what lesson 08 measures nginx with.

A proxy delivers the same bytes as the app sent; what it can change is *when*. To see that per
event, each event here says when it left the app: its data is `{"n": 3, "sent": 1767225600.25}`
(`time.time()`, seconds), so a client on the same machine computes arrival minus send for
every event, and a timeline shows exactly which events a proxy held back and for how long.

    GET /events?limit=10&interval=0.1     ids 1..10, one every 0.1 s, then the stream ends

Knobs, one per thing lesson 08 takes apart:

- `?accel=no` adds the `X-Accel-Buffering: no` header, the app's own way to tell nginx not
  to buffer this response. Without it there is no such header, so nginx's configuration
  alone decides. (The course's other apps always send it, through `server.asgi.sse_response`
  and FastAPI's `EventSourceResponse`, which is why they stream behind a default nginx.)
- `?heartbeat=1` sends a comment line every second between events, so an idle stream still
  moves bytes (what `proxy_read_timeout` needs to see).
- `?pad=1000` adds that many characters to each event (to fill buffers faster).
- `Last-Event-ID` resumes after that id, as a reconnecting browser asks; `?retry=` is the
  reconnection delay the first event asks for (ms).

Every response says which TCP connection carried it, as the app saw it: the `X-Peer-Port`
header is the client's port (behind nginx, nginx's side of the upstream connection), so a
client can count how many upstream connections nginx opened. `GET /stats` counts the streams
(`server.stream_stats`): a stream whose client left is `cancelled`, one that ran to its end
`finished`. `GET /` is a tiny page, an origin for browser tests to open streams from.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from server.event_ids import parse_counter_id
from server.sse import MEDIA_TYPE, comment, encode_json
from server.stream_stats import StreamStats

STATS = StreamStats()
PAGE = (  # a page to open EventSource from (lesson 08, in Chromium): labelled, like every page
    "<!doctype html><html lang=en><meta charset=utf-8><title>stamped events</title>"
    "<main><h1>stamped events</h1></main></html>"
)

app = FastAPI(title="SSE course: events stamped with their send time")


def resume_after(last_event_id: Annotated[str | None, Header()] = None) -> int:
    """The id the client last saw (0 for none); a malformed one is a 400, before streaming."""
    try:
        return parse_counter_id(last_event_id)
    except ValueError as error:
        raise HTTPException(status_code=400, detail=str(error)) from None


@app.get("/events")
async def events(
    request: Request,
    after: Annotated[int, Depends(resume_after)],
    limit: Annotated[int | None, Query(ge=1, description="the last id; none: endless")] = None,
    interval: Annotated[float, Query(ge=0, le=60)] = 1.0,
    heartbeat: Annotated[float | None, Query(gt=0, le=60)] = None,
    pad: Annotated[int, Query(ge=0, le=100_000)] = 0,
    accel: Annotated[str | None, Query(pattern="^(yes|no)$")] = None,
    retry: Annotated[int, Query(ge=0, le=600_000)] = 1000,
) -> StreamingResponse:
    """Events `after + 1` ... `limit`, `interval` seconds apart, each stamped when sent."""

    async def stream() -> AsyncIterator[bytes]:
        with STATS.track("events"):
            n = after
            while limit is None or n < limit:
                if n > after:  # the wait before every event but the first
                    deadline = time.monotonic() + interval
                    while heartbeat is not None and deadline - time.monotonic() > heartbeat:
                        await asyncio.sleep(heartbeat)
                        yield comment("heartbeat")
                    await asyncio.sleep(max(0.0, deadline - time.monotonic()))
                n += 1
                data = {"n": n, "sent": time.time()} | ({"pad": "x" * pad} if pad else {})
                yield encode_json(data, id=str(n), retry=retry if n == after + 1 else None)

    headers = {"Cache-Control": "no-cache", "X-Peer-Port": _peer_port(request)}
    if accel is not None:
        headers["X-Accel-Buffering"] = accel
    return StreamingResponse(stream(), media_type=MEDIA_TYPE, headers=headers)


def _peer_port(request: Request) -> str:
    return str(request.client.port) if request.client else ""


@app.get("/stats")
async def stats() -> dict[str, dict[str, int]]:
    return STATS.snapshot()


@app.post("/stats/reset")
async def stats_reset() -> dict[str, bool]:
    STATS.reset()
    return {"reset": True}


@app.get("/", response_class=HTMLResponse)
async def index(request: Request) -> HTMLResponse:
    return HTMLResponse(PAGE, headers={"X-Peer-Port": _peer_port(request)})
