"""The relay's work: upstream chunks in, SSE bytes out, and always one last event.

One chat request is an async generator, `chat_events`, in three layers:

1. `upstream_chunks` reads the raw body of a streamed Chat Completion and yields each chunk as
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

import json
import logging
from collections.abc import AsyncIterator
from typing import Any, cast

import anyio
import httpx2
import openai
from openai import AsyncAPIResponse, AsyncStream
from openai.types.chat import ChatCompletionMessageParam

from server.apps.llm_relay.config import Upstream
from server.sse import BufferLimitExceeded, Decoder, encode_json

log = logging.getLogger("uvicorn.error")

MAX_EVENT = 1 << 20  # characters held for one upstream event; a chunk is a few hundred
CLOSE_TIMEOUT = 5.0  # seconds to close the upstream response; then leave it to the collector
JSON_NAMES = {dict: "an object", list: "an array", str: "a string", int: "a number",
              float: "a number", bool: "a boolean", type(None): "null"}  # fmt: skip


def error_event(message: str, status: int | None = None) -> bytes:
    return encode_json({"message": message, "status": status}, event="error")


def status_of(error: openai.APIError) -> int | None:
    """The HTTP status behind `error`, if it has one: only `openai.APIStatusError` (a 401, a
    429, ...) does; a broken or timed-out connection, or an error inside a stream, has none."""
    return error.status_code if isinstance(error, openai.APIStatusError) else None


# --- 1. the upstream's body --------------------------------------------------------------------


def check_chunk(chunk: Any) -> dict[str, Any]:
    """`chunk` if `relay_events` can read it, else `ValueError` saying which part is wrong."""

    def expect(value: Any, kind: type, where: str, optional: bool = True) -> None:
        if (value is None and optional) or (isinstance(value, kind) and type(value) is not bool):
            return
        got = JSON_NAMES.get(type(value), type(value).__name__)
        raise ValueError(f"{where}: expected {JSON_NAMES[kind]}, got {got}")

    expect(chunk, dict, "the chunk", optional=False)
    expect(chunk.get("choices"), list, "choices")
    for index, choice in enumerate(chunk.get("choices") or ()):
        expect(choice, dict, f"choices[{index}]", optional=False)
        expect(choice.get("delta"), dict, f"choices[{index}].delta")
        expect((choice.get("delta") or {}).get("content"), str, f"choices[{index}].delta.content")
        expect(choice.get("finish_reason"), str, f"choices[{index}].finish_reason")
    expect(chunk.get("usage"), dict, "usage")
    return chunk


def parse_chunk(data: str, request: httpx2.Request) -> dict[str, Any]:
    """One upstream event's data as a checked chunk, or the `openai.APIError` it amounts to."""
    try:
        chunk = json.loads(data)
    except ValueError as error:  # say so in the stream rather than crash it
        message = f"The upstream sent something that is not JSON: {data[:80]!r}"
        raise openai.APIError(message, request, body=None) from error
    if isinstance(chunk, dict) and chunk.get("error"):
        body = chunk["error"]
        said = body.get("message") if isinstance(body, dict) else None
        message = said if isinstance(said, str) and said else "An error occurred during streaming"
        raise openai.APIError(message, request, body=body)
    try:
        return check_chunk(chunk)
    except ValueError as error:
        message = f"The upstream sent a chunk this relay cannot read ({error}): {data[:80]!r}"
        raise openai.APIError(message, request, body=None) from None


async def upstream_chunks(response: AsyncAPIResponse[Any]) -> AsyncIterator[dict[str, Any]]:
    """The Chat Completion chunks of a streamed upstream response, as checked plain dicts.

    The body is the SSE stream of lesson 06, section 2: ``data: {chunk}`` events, then
    ``data: [DONE]``. This does with it what the `openai` client's own stream would do, minus
    the part that made the relay slow: building a pydantic `ChatCompletionChunk` for every
    token (and the client's slower SSE parser), where a dict from `json.loads` is all the
    relay needs. Every failure is an `openai.APIError` (`APIConnectionError` or
    `APITimeoutError` when the connection breaks or goes silent for too long).
    """
    decoder = Decoder(max_buffer=MAX_EVENT)
    request = response.http_response.request
    finished = False
    try:
        async for data in response.iter_bytes():
            for event in decoder.feed(data):
                if event.data == "[DONE]":  # the end (not JSON); read on to the end of the body,
                    finished = True  # so that the client can reuse the connection
                    continue
                yield parse_chunk(event.data, request)
        decoder.close()
    except BufferLimitExceeded as error:
        message = (
            f"The upstream sent an event larger than {MAX_EVENT} characters, far more than "
            "any chunk: is it an event stream?"
        )
        raise openai.APIError(message, request, body=None) from error
    except httpx2.TimeoutException as error:  # httpx2 is the openai client's HTTP library
        raise openai.APITimeoutError(request) from error
    except httpx2.RequestError as error:
        raise openai.APIConnectionError(request=request) from error
    if not finished:
        message = "The upstream ended its stream without [DONE]: the reply may be cut short."
        raise openai.APIError(message, request, body=None)


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
                    # One event, one write. Joining the events that arrived together into one
                    # write would save CPU, but the client hands the body over one upstream
                    # HTTP chunk, so one delta, at a time (bench/README.md).
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
    if isinstance(error, openai.APITimeoutError):
        return f"{upstream.label} did not answer in time (RELAY_TIMEOUT)."
    if isinstance(error, openai.APIConnectionError):
        return f"Could not reach {upstream.label}: is it running? ({error.message})"
    return f"{upstream.label} failed: {error.message}"


async def close_within(response: AsyncAPIResponse[Any] | AsyncStream[Any], seconds: float) -> None:
    """Close the upstream response, which is what stops the generation when the browser left.

    The stream is usually being cancelled right then: the close is shielded, or anyio would
    cancel it too, and bounded, so that an upstream that never lets go cannot hold the
    relay's response open either.
    """
    with anyio.move_on_after(seconds, shield=True) as scope:
        try:
            await response.close()
        except Exception:  # nothing left to tell the browser; the log keeps it
            log.exception("closing the upstream response failed")
    if scope.cancelled_caught:
        log.warning("closing the upstream response took over %g s: abandoned", seconds)


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
