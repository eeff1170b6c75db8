"""The FastAPI app of lessons 04 and 05: every way of streaming, side by side.

Run it with the launcher (`start_app("server.apps.fastapi_streams:app")`) or
`uvicorn server.apps.fastapi_streams:app`. It is laid out as the seed notes lay out theirs
(`routers/sse_router.py`, registered in `main.py`): one module per `APIRouter`, and this
module, which registers them on the app (`create_app`):

- `handmade`: the seeds' way, `StreamingResponse` and a generator of `server.sse` bytes;
- `native`: FastAPI's own SSE, `EventSourceResponse` and `ServerSentEvent`;
- `observability`: what the streams did (`/stats`) and what clients sent (`/headers-log`).

`GET /` is lesson 05's page (`server/apps/static/`). `COURSE_CORS_ORIGINS` (comma-separated
origins, in the server's environment) lets those origins read the streams with cookies.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from server.apps.fastapi_streams.handmade import (
    countdown,
    countdown_plain,
    fake_llm,
    handmade,
    ping,
    ping_sync,
    slow_async,
    slow_sync,
)
from server.apps.fastapi_streams.native import event_for, events, native, resume_after
from server.apps.fastapi_streams.observability import STATS, observability

__all__ = [
    "STATS",
    "app",
    "countdown",
    "countdown_plain",
    "create_app",
    "event_for",
    "events",
    "fake_llm",
    "handmade",
    "native",
    "observability",
    "ping",
    "ping_sync",
    "resume_after",
    "slow_async",
    "slow_sync",
]

STATIC = Path(__file__).parent.parent / "static"

page = APIRouter(include_in_schema=False)


@page.get("/")
def index() -> FileResponse:
    """Lesson 05's page; its script and styles are under `/static`."""
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


def create_app(cors_origins: list[str] | None = None) -> FastAPI:
    """The lessons' app; `cors_origins` are origins allowed to read its streams with cookies."""
    api = FastAPI(title="SSE course: streaming with FastAPI")
    for router in (handmade, native, observability, page):
        api.include_router(router)
    api.mount("/static", StaticFiles(directory=STATIC), name="static")
    if cors_origins:
        api.add_middleware(
            CORSMiddleware,
            allow_origins=cors_origins,
            allow_credentials=True,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "Last-Event-ID"],
        )
    return api


def _cors_from_env() -> list[str]:
    origins = os.environ.get("COURSE_CORS_ORIGINS", "")
    return [origin.strip() for origin in origins.split(",") if origin.strip()]


app = create_app(_cors_from_env())
