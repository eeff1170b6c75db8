"""What the streams did and what clients sent: the counters every stream of the app reports to.

Each generator of `handmade` and `native` runs inside `STATS.track(name)`, so `GET /stats`
says, per stream name, how many are active, finished, cancelled (the client left) or failed.
`GET /headers-log` shows the `Last-Event-ID`, `Origin` and cookie each stream request carried;
`POST /stats/reset` clears both; `POST /gc` runs Python's garbage collector now, which is
what the cleanup of an abandoned sync stream waits for (lesson 04).
"""

from __future__ import annotations

import gc
from typing import Any

from fastapi import APIRouter

from server.stream_stats import StreamStats

SESSION_COOKIE = "course_session"  # its presence is logged (never its value): lesson 05's CORS

STATS = StreamStats()

observability = APIRouter(tags=["observability"])


@observability.get("/stats")
async def stats() -> dict[str, dict[str, int]]:
    return STATS.snapshot()


@observability.post("/stats/reset")
async def stats_reset() -> dict[str, bool]:
    STATS.reset()
    return {"reset": True}


@observability.get("/headers-log")
async def headers_log() -> list[dict[str, Any]]:
    return STATS.requests()


@observability.post("/gc")
async def collect_garbage() -> dict[str, int]:
    """Run Python's cycle collector now. A sync generator abandoned by its client is closed
    (its `finally` and `with` blocks run) only when the collector frees it: lesson 04 calls
    this to show that, instead of waiting for the collector to run on its own schedule."""
    return {"unreachable": gc.collect()}
