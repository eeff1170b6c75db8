"""``POST /v1/chat/completions``: the Chat Completions API, streamed or not.

Streamed, the body is lesson 06's section 2: ``data: {chat.completion.chunk}`` events (the first
carries the role, each next one a delta, the last one with choices a ``finish_reason``), a usage
chunk with no choices if ``stream_options.include_usage``, then the sentinel ``data: [DONE]``.
Not streamed, one ``chat.completion`` object when the whole reply is ready. ``max_tokens`` (or
``max_completion_tokens``) cuts the reply short with ``finish_reason="length"``.

A stream broken on purpose (``x-fake-fail-after``) has already sent its 200, so the failure
travels inside it, as OpenAI sends it: a ``data: {"error": {...}}`` chunk, which the `openai`
client raises as `openai.APIError`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from server.apps.fake_openai import errors
from server.apps.fake_openai.model import (
    Generation,
    count_tokens,
    last_user_text,
    reply_for,
    tokenize,
)
from server.asgi.sse_response import sse_response
from server.sse import Event, encode, encode_json


async def chat_completions(request: Request) -> Response:
    admitted = await errors.admit(request)
    if isinstance(admitted, Response):
        return admitted
    knobs, body = admitted
    model = errors.field(body, "model", str, required=True)
    messages = errors.messages(body)
    stream = errors.field(body, "stream", bool)
    seed = errors.field(body, "seed", int) or 0
    limit = errors.field(body, "max_completion_tokens", int, minimum=1)
    limit = limit or errors.field(body, "max_tokens", int, minimum=1)
    options = errors.field(body, "stream_options", dict) or {}
    include_usage = errors.field(
        options, "include_usage", bool, param="stream_options.include_usage"
    )

    tokens = tokenize(reply_for(last_user_text(messages), seed, knobs.tokens))
    finish = "stop"
    if limit is not None and len(tokens) > limit:
        tokens, finish = tokens[:limit], "length"
    prompt = count_tokens(messages)
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": len(tokens),
        "total_tokens": prompt + len(tokens),
    }
    base = {
        "id": f"chatcmpl-fake{next(request.state.ids):06d}",
        "created": int(time.time()),
        "model": model,
    }
    generation = Generation(request.state.stats, knobs, tokens)

    if not stream:
        if knobs.fail_after is not None:
            return errors.injected_failure()
        await generation.wait_until_done()
        message = {"role": "assistant", "content": "".join(tokens), "refusal": None}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
        return JSONResponse(
            {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
        )

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        data: dict[str, Any] = {**base, "object": "chat.completion.chunk", "choices": [choice]}
        if include_usage:
            data["usage"] = None
        return encode_json(data)

    async def events() -> AsyncIterator[bytes]:
        yield chunk({"role": "assistant", "content": "", "refusal": None})
        async for token in generation.stream():
            yield chunk({"content": token})
        if generation.failed:
            message = "The model failed in the middle of the stream (injected)."
            yield encode_json(errors.error_body(message, "server_error", "server_error"))
            return
        yield chunk({}, finish)
        if include_usage:
            yield encode_json(
                {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}
            )
        yield encode(Event(data="[DONE]"))

    return sse_response(events())
