"""The relay's work: upstream chunks in, SSE bytes out, and always one last event.

One chat request is an async generator, `chat_events`, in three layers:

1. `upstream_chunks` (in the core, `server.llm.chunks`, since the capstone reads its
   upstream the same way) reads the raw body of a streamed Chat Completion and yields each chunk as
   a dict, checked to have the shape the next layer reads. Everything wrong with the upstream
   becomes an `openai.APIError`, as the `openai` client's own stream would raise it: a
   ``data: {"error": ...}`` chunk, data that is not JSON or not a chunk, an event too big to
   be one, a body that ends without ``data: [DONE]``, a broken connection, a timeout.
2. `relay_events` (lesson 06's exercise 2) turns the chunks into the browser's events:
   ``data: {"delta": ...}`` per piece of text, then ``event: done``, or ``event: error`` if an
   `openai.APIError` ended the chunks.
3. `chat_events` makes the request and owns its ending: an error before the first chunk (a
   rejected key, a 429, no server) becomes an ``event: error`` a learner can act on; so does
   any other exception, which is logged. Whatever happens, the stream the browser reads ends
   with exactly one ``done`` or ``error``; only a browser that left gets nothing, and then
   the upstream response is closed, which stops the generation.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any, cast

import openai
from openai.types.chat import ChatCompletionMessageParam

from server.llm.chunks import upstream_chunks
from server.llm.upstream import CLOSE_TIMEOUT, Upstream, close_within, explain, status_of
from server.sse import encode_json

log = logging.getLogger("uvicorn.error")


def error_event(message: str, status: int | None = None) -> bytes:
    return encode_json({"message": message, "status": status}, event="error")


# --- 2. chunks to events -----------------------------------------------------------------------


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
                    # One event per delta; the response joins the events made while it was
                    # writing into one write (`heartbeat.Outbox`, bench/README.md).
                    yield encode_json({"delta": content})
                if choice.get("finish_reason") is not None:
                    finish_reason = choice["finish_reason"]
    except openai.APIError as error:
        yield error_event(
            f"The model stopped after {sent} pieces of text: {error.message} "
            "The reply above is incomplete.",
            status_of(error),
        )
        return
    yield encode_json({"finish_reason": finish_reason, "usage": usage}, event="done")


# --- 3. one chat request -----------------------------------------------------------------------


async def chat_events(
    client: openai.AsyncOpenAI, upstream: Upstream, messages: list[dict[str, str]]
) -> AsyncIterator[bytes]:
    """The whole answer to one chat request, as SSE bytes, ending with one done or error.

    The `openai` client still makes the request: the key, the base URL, retries, and an HTTP
    error status raised as `openai.AuthenticationError`, `RateLimitError`, ... But
    `with_streaming_response` hands us the raw body instead of a parsed chunk object per
    token, which is most of the relay's work saved (see `upstream_chunks`).
    """
    sent = False
    try:
        async with client.chat.completions.with_streaming_response.create(
            model=upstream.model,
            messages=cast("list[ChatCompletionMessageParam]", messages),  # FastAPI checked them
            stream=True,
            stream_options={"include_usage": True},
        ) as response:
            try:
                async for piece in relay_events(upstream_chunks(response)):
                    sent = True
                    yield piece
            finally:
                await close_within(response, CLOSE_TIMEOUT)
    except openai.APIError as error:  # before the first chunk: `relay_events` catches the rest
        log.warning("upstream refused: %s", error)
        yield error_event(explain(error, upstream), status_of(error))
    except Exception as error:  # a bug, or text no encoder can send: still end the stream
        log.exception("the relay failed")
        after = " The reply above is incomplete." if sent else ""
        name = type(error).__name__
        yield error_event(f"The relay failed ({name}); its log has the details.{after}")
