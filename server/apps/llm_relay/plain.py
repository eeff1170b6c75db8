"""The relay written the obvious way: ``async for chunk in stream`` over the client's chunks.

This is what anyone writes first, and it is correct: each ``delta.content`` becomes an event,
the end becomes ``event: done``, an error becomes ``event: error``, and when the browser
leaves, the ``finally`` closes the upstream response (shielded and bounded, as in
`server.llm.upstream.close_within`), which stops the generation. Lesson 06 shows it before
`relay.chat_events`, which does the same job.

Why the relay does not use it: the `openai` client turns every event of the body into a
pydantic `ChatCompletionChunk`, with an SSE parser 2.8 times slower than `server.sse`'s, and
that is most of a relay's work. Under load (``bench/README.md``, the relay section: 200
streams on one worker) this version spent 109-115 µs of CPU per token and relayed 8,500-9,000
tokens/s; reading the raw body with `server.sse.Decoder` and `json.loads`
(`server.llm.chunks.upstream_chunks`) took 37-40 µs and relayed 18,400-23,500. It is not served
by the app; the lesson runs it in the notebook and times it against `chat_events`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import openai
from openai.types.chat import ChatCompletionMessageParam

from server.apps.llm_relay.relay import error_event
from server.llm.upstream import CLOSE_TIMEOUT, Upstream, close_within, explain, status_of
from server.sse import encode_json


async def plain_chat_events(
    client: openai.AsyncOpenAI, upstream: Upstream, messages: list[dict[str, str]]
) -> AsyncIterator[bytes]:
    """The answer to one chat request as SSE bytes, from the client's parsed chunks."""
    try:
        stream = await client.chat.completions.create(
            model=upstream.model,
            messages=cast("list[ChatCompletionMessageParam]", messages),
            stream=True,
            stream_options={"include_usage": True},
        )
    except openai.APIError as error:  # refused before the first chunk: a 401, a 429, ...
        yield error_event(explain(error, upstream), status_of(error))
        return
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    sent = 0
    try:
        async for chunk in stream:  # one ChatCompletionChunk per upstream event
            if chunk.usage is not None:
                usage = chunk.usage.model_dump(exclude_none=True)
            for choice in chunk.choices:
                if choice.delta.content:
                    sent += 1
                    yield encode_json({"delta": choice.delta.content})
                if choice.finish_reason is not None:
                    finish_reason = choice.finish_reason
    except openai.APIError as error:  # the model broke after the 200: say so in the stream
        message = f"The model stopped after {sent} pieces of text: {error.message}"
        yield error_event(f"{message} The reply above is incomplete.", status_of(error))
        return
    finally:  # also when the browser left: closing the response stops the generation
        await close_within(stream, CLOSE_TIMEOUT)
    yield encode_json({"finish_reason": finish_reason, "usage": usage}, event="done")
