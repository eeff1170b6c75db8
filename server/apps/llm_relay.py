"""A relay between the browser and an LLM: upstream deltas in, Server-Sent Events out.

The browser must never hold the API key, so it talks to this relay, which talks to an
OpenAI-compatible upstream with the `openai` client and forwards each piece of text as an
SSE event the moment it arrives:

- ``GET /chat?message=...`` for `EventSource` (which can only GET), and
- ``POST /chat`` with ``{"messages": [{"role": "user", "content": "..."}, ...]}`` for `fetch`
  (a whole conversation does not fit in a URL, and URLs end up in logs).

Both answer ``text/event-stream``: one event per delta, ``data: {"delta": "..."}``, then
``event: done`` with ``{"finish_reason": ..., "usage": {...}}``, or ``event: error`` with
``{"message": ..., "status": ...}``. The 200 has gone out before the upstream is even asked,
so every upstream failure (a rejected key, a 429, a model that breaks mid-reply) travels as
that error event; an `EventSource` could not read a non-200 body anyway. The browser must
close its `EventSource` on ``done`` and ``error``, or it reconnects and pays for the reply
again.

When the browser leaves, Starlette cancels the response; `chat_events` then closes the
upstream response, and the upstream stops generating (and billing) within milliseconds.

Upstream, from the environment or a ``.env`` file (python-dotenv; the environment wins):

- ``OPENAI_BASE_URL`` set: that server (the course's `fake_openai`, Ollama at
  ``http://localhost:11434/v1``, vLLM at ``http://localhost:8000/v1``); the key is
  ``OPENAI_API_KEY``, or a placeholder if unset, since local servers ignore it.
- only ``OPENAI_API_KEY`` set: OpenAI itself.
- neither: the relay starts the course's local fake server itself (`server.apps.fake_openai`).

``OPENAI_MODEL`` names the model (default ``gpt-4o-mini``). ``GET /config`` and the relay's
log say which upstream is in use. The chat page is ``GET /`` (`server/static/chat.html`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import anyio
import httpx2
import openai
from dotenv import dotenv_values, find_dotenv
from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, StreamingResponse
from openai import AsyncAPIResponse
from pydantic import BaseModel, Field

from server.sse import MEDIA_TYPE, RESPONSE_HEADERS, Decoder, Event, encode

log = logging.getLogger("uvicorn.error")

STATIC = Path(__file__).parent / "static"
DEFAULT_MODEL = "gpt-4o-mini"
LOCAL_KEY = "sk-local-no-key-needed"


# --- where the tokens come from --------------------------------------------------------------


@dataclass(frozen=True)
class Upstream:
    """The OpenAI-compatible server the relay asks, and how it says so to the learner."""

    base_url: str | None  # None: the client's default, OpenAI
    api_key: str
    model: str
    label: str


def upstream_from_env(
    env: Mapping[str, str | None] | None = None, dotenv: str | None = None
) -> Upstream | None:
    """The configured upstream, or None when nothing is configured (use the local server).

    `env` defaults to ``os.environ`` on top of the nearest ``.env`` file (`dotenv` to find
    another one); a variable set in the environment wins over the file.
    """
    if env is None:
        path = dotenv if dotenv is not None else find_dotenv(usecwd=True)
        env = {**(dotenv_values(path) if path else {}), **os.environ}
    base_url = (env.get("OPENAI_BASE_URL") or "").strip() or None
    key = (env.get("OPENAI_API_KEY") or "").strip()
    model = (env.get("OPENAI_MODEL") or "").strip() or DEFAULT_MODEL
    if base_url:
        return Upstream(base_url, key or LOCAL_KEY, model, f"the server at {base_url}")
    if key:
        return Upstream(None, key, model, "OpenAI (api.openai.com)")
    return None


# --- the relay generator -----------------------------------------------------------------------


def sse_json(data: Mapping[str, Any], event: str | None = None) -> bytes:
    return encode(Event(data=json.dumps(data, ensure_ascii=False), event=event))


def error_event(message: str, status: int | None = None) -> bytes:
    return sse_json({"message": message, "status": status}, "error")


async def upstream_chunks(response: AsyncAPIResponse[Any]) -> AsyncIterator[dict[str, Any]]:
    """The Chat Completion chunks of a streamed upstream response, as plain dicts.

    The body is the SSE stream of lesson 06, section 2: ``data: {chunk}`` events, then
    ``data: [DONE]``. This does with it what the `openai` client's own stream would do, minus
    the part that made the relay slow: building a pydantic `ChatCompletionChunk` for every
    token (and the client's slower SSE parser), where a dict from `json.loads` is all the
    relay needs. Like the client, it raises `openai.APIError` for a ``data: {"error": ...}``
    chunk (and for data that is not JSON), and `openai.APIConnectionError` (or
    `APITimeoutError`) if the connection breaks.
    """
    decoder = Decoder()
    request = response.http_response.request
    try:
        async for data in response.iter_bytes():
            for event in decoder.feed(data):
                if event.data == "[DONE]":  # the end (not JSON); read on to the end of the body,
                    continue  # so that the client can reuse the connection for the next request
                try:
                    chunk = json.loads(event.data)
                except ValueError as error:  # say so in the stream rather than crash it
                    message = f"The upstream sent something that is not JSON: {event.data[:80]!r}"
                    raise openai.APIError(message, request, body=None) from error
                if isinstance(chunk, dict) and chunk.get("error"):
                    body = chunk["error"]
                    message = body.get("message") if isinstance(body, dict) else None
                    raise openai.APIError(
                        message or "An error occurred during streaming", request, body=body
                    )
                yield chunk
    except httpx2.TimeoutException as error:  # httpx2 is the openai client's HTTP library
        raise openai.APITimeoutError(request) from error
    except httpx2.RequestError as error:
        raise openai.APIConnectionError(request=request) from error


async def relay_events(chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    """Turn a stream of Chat Completion chunks (dicts) into SSE bytes for the browser.

    Each non-empty ``delta.content`` becomes ``data: {"delta": ...}``; the end becomes
    ``event: done`` with the finish reason and usage. An `openai.APIError` raised while
    iterating (the upstream broke after its 200) becomes ``event: error`` with a readable
    message: the browser's status code is long gone, the stream is the only way to tell it.
    """
    finish_reason, usage, sent = None, None, 0
    try:
        async for chunk in chunks:
            if chunk.get("usage") is not None:
                usage = chunk["usage"]
            for choice in chunk.get("choices") or ():
                content = (choice.get("delta") or {}).get("content")
                if content:
                    sent += 1
                    # One event, one write. Joining the events that arrived together into one
                    # write would save CPU, but the client hands the body over one upstream
                    # HTTP chunk, so one delta, at a time (bench/README.md).
                    yield sse_json({"delta": content})
                if choice.get("finish_reason") is not None:
                    finish_reason = choice["finish_reason"]
    except openai.APIError as error:
        yield error_event(
            f"The model stopped after {sent} pieces of text: {error.message} "
            "The reply above is incomplete.",
            getattr(error, "status_code", None),
        )
        return
    yield sse_json({"finish_reason": finish_reason, "usage": usage}, "done")


def explain(error: openai.APIError, upstream: Upstream) -> str:
    """A message a learner can act on, for an error before the first token."""
    if isinstance(error, openai.AuthenticationError):
        return (
            f"{upstream.label} rejected the API key (401). Set OPENAI_API_KEY in .env or in "
            "the environment, then restart the relay."
        )
    if isinstance(error, openai.RateLimitError):
        wait = error.response.headers.get("retry-after")
        return f"{upstream.label} is rate limiting (429); try again in {wait or 'a few'} s."
    if isinstance(error, openai.APIStatusError):
        return f"{upstream.label} answered {error.status_code}: {error.message}"
    if isinstance(error, openai.APIConnectionError):
        return f"Could not reach {upstream.label}: is it running? ({error.message})"
    return f"{upstream.label} failed: {error.message}"


async def chat_events(
    client: openai.AsyncOpenAI, upstream: Upstream, messages: list[dict[str, str]]
) -> AsyncIterator[bytes]:
    """The whole answer to one chat request, as SSE bytes. Never raises on upstream errors.

    The `openai` client still makes the request: the key, the base URL, retries, and an HTTP
    error status raised as `openai.AuthenticationError`, `RateLimitError`, ... But
    `with_streaming_response` hands us the raw body instead of a parsed chunk object per
    token, which is most of the relay's work saved (see `upstream_chunks`).
    """
    try:
        async with client.chat.completions.with_streaming_response.create(
            model=upstream.model,
            messages=messages,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        ) as response:
            try:
                async for piece in relay_events(upstream_chunks(response)):
                    yield piece
            finally:
                # Closing the upstream response is what stops the generation when the
                # browser left. The response is being cancelled: shield the close, or anyio
                # cancels it too. (Leaving the `async with` closes it again: a no-op.)
                with anyio.CancelScope(shield=True):
                    await response.close()
    except openai.APIError as error:  # before the first chunk: `relay_events` catches the rest
        log.warning("upstream refused: %s", error)
        yield error_event(explain(error, upstream), getattr(error, "status_code", None))


# --- the app -----------------------------------------------------------------------------------


class Message(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=20_000)


class Conversation(BaseModel):
    messages: list[Message] = Field(min_length=1, max_length=100)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    upstream, local = upstream_from_env(), None
    if upstream is None:
        from server.course.launcher import start_app  # only when the relay runs the local model

        local = start_app("server.apps.fake_openai:app", name="fake_openai-for-relay")
        upstream = Upstream(
            f"{local.url}/v1", LOCAL_KEY, DEFAULT_MODEL, "the course's local fake LLM"
        )
    log.info("LLM relay upstream: %s, model %s", upstream.label, upstream.model)
    app.state.upstream = upstream
    app.state.client = openai.AsyncOpenAI(base_url=upstream.base_url, api_key=upstream.api_key)
    try:
        yield
    finally:
        await app.state.client.close()
        if local is not None:
            with suppress(Exception):
                local.stop()


app = FastAPI(title="LLM relay", lifespan=lifespan)


def stream_chat(request: Request, messages: list[dict[str, str]]) -> StreamingResponse:
    events = chat_events(request.app.state.client, request.app.state.upstream, messages)
    return StreamingResponse(events, media_type=MEDIA_TYPE, headers=RESPONSE_HEADERS)


@app.get("/chat")
async def chat_get(
    request: Request, message: str = Query(min_length=1, max_length=4000)
) -> StreamingResponse:
    """One question, for `EventSource` (GET only)."""
    return stream_chat(request, [{"role": "user", "content": message}])


@app.post("/chat")
async def chat_post(request: Request, conversation: Conversation) -> StreamingResponse:
    """A whole conversation, for `fetch` (SSE works over POST; only `EventSource` can't)."""
    return stream_chat(request, [m.model_dump() for m in conversation.messages])


@app.get("/config")
async def config(request: Request) -> dict[str, str]:
    """Which upstream and model the relay uses (never the key)."""
    upstream: Upstream = request.app.state.upstream
    return {"upstream": upstream.label, "model": upstream.model}


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
