"""Reading a streamed Chat Completion's raw body: SSE bytes in, checked chunk dicts out.

The first layer of lesson 06's relay, in the core because two apps read an upstream model
this way: the relay (`server.apps.llm_relay`) and the capstone chat (`server.apps.capstone`).
Everything wrong with the upstream becomes an `openai.APIError`, as the `openai` client's own
stream would raise it: a ``data: {"error": ...}`` chunk, data that is not JSON or not a
chunk, an event too big to be one, a body that ends without ``data: [DONE]``, a broken
connection, a timeout.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, NoReturn

import httpx2
import openai
from openai import AsyncAPIResponse

from server.sse import BufferLimitExceeded, Decoder

MAX_EVENT = 1 << 20  # characters held for one upstream event; a chunk is a few hundred
JSON_NAMES = {dict: "an object", list: "an array", str: "a string", int: "a number",
              float: "a number", bool: "a boolean", type(None): "null"}  # fmt: skip


def check_chunk(chunk: Any) -> dict[str, Any]:
    """`chunk` if `relay_events` can read it, else `ValueError` saying which part is wrong.

    Every token passes here: the checks are inline, and the message (with the index of the
    choice) is only written for a chunk that fails one.
    """
    if not isinstance(chunk, dict):
        wrong(chunk, dict, "the chunk")
    choices = chunk.get("choices")
    if choices is not None and not isinstance(choices, list):
        wrong(choices, list, "choices")
    for index, choice in enumerate(choices or ()):
        if not isinstance(choice, dict):
            wrong(choice, dict, f"choices[{index}]")
        delta = choice.get("delta")
        if delta is not None and not isinstance(delta, dict):
            wrong(delta, dict, f"choices[{index}].delta")
        content = delta.get("content") if delta else None
        if content is not None and not isinstance(content, str):
            wrong(content, str, f"choices[{index}].delta.content")
        reason = choice.get("finish_reason")
        if reason is not None and not isinstance(reason, str):
            wrong(reason, str, f"choices[{index}].finish_reason")
    usage = chunk.get("usage")
    if usage is not None and not isinstance(usage, dict):
        wrong(usage, dict, "usage")
    return chunk


def wrong(value: Any, kind: type, where: str) -> NoReturn:
    """Raise the `ValueError` for `value` at `where`, which is not the JSON `kind` expected."""
    got = JSON_NAMES.get(type(value), type(value).__name__)
    raise ValueError(f"{where}: expected {JSON_NAMES[kind]}, got {got}")


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
