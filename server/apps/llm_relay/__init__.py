"""A relay between the browser and an LLM: upstream deltas in, Server-Sent Events out.

The browser must never hold the API key, so it talks to this relay, which talks to an
OpenAI-compatible upstream with the `openai` client and forwards each piece of text as an
SSE event the moment it arrives:

- ``GET /chat?message=...`` for `EventSource` (which can only GET), and
- ``POST /chat`` with ``{"messages": [{"role": "user", "content": "..."}, ...]}`` for `fetch`
  (a whole conversation does not fit in a URL, and URLs end up in logs).

Both answer ``text/event-stream``: one event per delta, ``data: {"delta": "..."}``, then
``event: done`` with ``{"finish_reason": ..., "usage": {...}}``, or ``event: error`` with
``{"message": ..., "status": ...}``: exactly one of the two, whatever fails (`relay`). The 200
has gone out before the upstream is even asked, so every upstream failure (a rejected key, a
429, a model that breaks mid-reply) travels as that error event; an `EventSource` could not
read a non-200 body anyway. The browser must close its `EventSource` on ``done`` and
``error``, or it reconnects and pays for the reply again. While the upstream is silent, a
``: ping`` comment goes out every ``RELAY_HEARTBEAT`` seconds (`heartbeat`).

When the browser leaves, Starlette cancels the response; the relay then closes the upstream
response, and the upstream stops generating (and billing) within milliseconds.

The work is in `relay` (`chat_events`); `plain` is the same relay written the obvious way, over
the `openai` client's parsed chunks, which lesson 06 shows first and measures against it.

Which upstream, which model, and how long to wait come from the environment (`config`):
``OPENAI_BASE_URL``, ``OPENAI_API_KEY``, ``OPENAI_MODEL``, ``RELAY_HEARTBEAT``,
``RELAY_TIMEOUT``, ``RELAY_MAX_RETRIES``. With no upstream configured the relay refuses to
start, saying what to set. ``GET /config`` and the relay's log say what is in use. The chat
page is ``GET /`` (`server/apps/static/chat.html`, with `chat.js`, `sse.js`, `markdown.js`,
`chat_view.js`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import openai
from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from server.apps.llm_relay.heartbeat import HeartbeatResponse
from server.apps.llm_relay.relay import chat_events, log
from server.asgi.json_body import json_model, openapi_body
from server.llm.config import CONNECT_TIMEOUT, Settings, read_env, upstream_from_env
from server.llm.upstream import Upstream

STATIC = Path(__file__).parent.parent / "static"


class Message(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=20_000)


class Conversation(BaseModel):
    messages: list[Message] = Field(min_length=1, max_length=100)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    """The upstream, the settings and one client for all requests, as each request's
    `request.state` (Starlette's lifespan state); a bad setting stops the relay here."""
    env = read_env()
    upstream, settings = upstream_from_env(env), Settings.from_env(env)
    log.info(
        "LLM relay upstream: %s, model %s; heartbeat every %g s, timeout %g s, %d retries",
        upstream.label, upstream.model, settings.heartbeat, settings.timeout,
        settings.max_retries,
    )  # fmt: skip
    client = openai.AsyncOpenAI(
        base_url=upstream.base_url,
        api_key=upstream.api_key,
        timeout=openai.Timeout(settings.timeout, connect=min(CONNECT_TIMEOUT, settings.timeout)),
        max_retries=settings.max_retries,
    )
    try:
        yield {"upstream": upstream, "settings": settings, "client": client}
    finally:
        await client.close()


app = FastAPI(title="LLM relay", lifespan=lifespan)


def stream_chat(request: Request, messages: list[dict[str, str]]) -> HeartbeatResponse:
    state = request.state
    events = chat_events(state.client, state.upstream, messages)
    return HeartbeatResponse(events, state.settings.heartbeat)


@app.get("/chat")
async def chat_get(
    request: Request, message: str = Query(min_length=1, max_length=4000)
) -> HeartbeatResponse:
    """One question, for `EventSource` (GET only)."""
    return stream_chat(request, [{"role": "user", "content": message}])


# The longest conversation the model allows (100 messages of 20,000 characters, up to 4 bytes
# each), read strictly: FastAPI's own parsing answers deep nesting and lone surrogates with 500.
conversation_body = json_model(Conversation, limit=4 * 20_000 * 100 + 65_536)


@app.post("/chat", openapi_extra=openapi_body(Conversation))
async def chat_post(
    request: Request, conversation: Annotated[Conversation, Depends(conversation_body)]
) -> HeartbeatResponse:
    """A whole conversation, for `fetch` (SSE works over POST; only `EventSource` can't)."""
    return stream_chat(request, [m.model_dump() for m in conversation.messages])


@app.get("/config")
async def config(request: Request) -> dict[str, str | int | float]:
    """Which upstream and model the relay uses, and how long it waits (never the key)."""
    upstream: Upstream = request.state.upstream
    settings: Settings = request.state.settings
    return {
        "upstream": upstream.label,
        "model": upstream.model,
        "heartbeat": settings.heartbeat,
        "timeout": settings.timeout,
        "max_retries": settings.max_retries,
    }


@app.get("/")
@app.get("/chat.html")
async def chat_page() -> FileResponse:
    return FileResponse(STATIC / "chat.html")


@app.get("/chat.js")
async def chat_script() -> FileResponse:
    return FileResponse(STATIC / "chat.js", media_type="text/javascript")


@app.get("/sse.js")
async def sse_script() -> FileResponse:
    """The SSE parser `chat.js` imports (shared with lesson 05's page)."""
    return FileResponse(STATIC / "sse.js", media_type="text/javascript")


@app.get("/chat_view.js")
async def chat_view_script() -> FileResponse:
    """The page helpers `chat.js` shares with the capstone's page."""
    return FileResponse(STATIC / "chat_view.js", media_type="text/javascript")


@app.get("/markdown.js")
async def markdown_script() -> FileResponse:
    """The small, safe Markdown renderer `chat.js` imports."""
    return FileResponse(STATIC / "markdown.js", media_type="text/javascript")
