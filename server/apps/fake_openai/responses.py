"""``POST /v1/responses``: the Responses API, streamed or not.

Streamed, every SSE event is named, and its JSON repeats the name in ``type`` with a rising
``sequence_number``: ``response.created``, ``response.in_progress``,
``response.output_item.added``, ``response.content_part.added``, one
``response.output_text.delta`` per token, then the same closed in reverse order
(``…text.done``, ``…content_part.done``, ``…output_item.done``) and ``response.completed``.
The client's ``responses.stream()`` helper insists on that whole sequence. Not streamed, one
``response`` object. ``max_output_tokens`` cuts the reply short with ``status="incomplete"``.

A stream broken on purpose (``x-fake-fail-after``) ends with an ``error`` event and then
``response.failed``, as OpenAI's does.
"""

from __future__ import annotations

import itertools
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
from server.sse import encode_json


async def responses(request: Request) -> Response:
    admitted = await errors.admit(request)
    if isinstance(admitted, Response):
        return admitted
    knobs, body = admitted
    model = errors.field(body, "model", str, required=True)
    given = errors.objects(body, "input", required=True, text=True)
    assert given is not None
    instructions = errors.field(body, "instructions", str)
    stream = errors.field(body, "stream", bool)
    seed = errors.field(body, "seed", int) or 0
    limit = errors.field(body, "max_output_tokens", int, minimum=1)

    tokens = tokenize(reply_for(last_user_text(given), seed, knobs.tokens))
    incomplete = limit is not None and len(tokens) > limit
    if incomplete:
        tokens = tokens[:limit]
    number = next(request.state.ids)
    response_id, item_id = f"resp_fake{number:06d}", f"msg_fake{number:06d}"
    prompt = count_tokens(given)
    usage = {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": len(tokens),
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + len(tokens),
    }
    created = int(time.time())

    def part(text: str) -> dict[str, Any]:
        return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}

    def item(status: str, content: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": item_id, "type": "message", "status": status, "role": "assistant",
                "content": content}  # fmt: skip

    def response(status: str, output: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {
            "id": response_id, "object": "response", "created_at": created, "status": status,
            "model": model, "instructions": instructions, "output": output,
            "parallel_tool_calls": True, "tool_choice": "auto", "tools": [], "error": None,
            "incomplete_details": None, "usage": None, "metadata": {},
            "text": {"format": {"type": "text"}}, **extra,
        }  # fmt: skip

    final_status = "incomplete" if incomplete else "completed"
    done: dict[str, Any] = {"usage": usage}
    if incomplete:
        done["incomplete_details"] = {"reason": "max_output_tokens"}
    generation = Generation(request.state.stats, knobs, tokens)

    if not stream:
        if knobs.fail_after is not None:
            return errors.injected_failure()
        await generation.wait_until_done()
        output = [item("completed", [part("".join(tokens))])]
        return JSONResponse(response(final_status, output, **done))

    sequence = itertools.count()

    def event(type_: str, **fields: Any) -> bytes:
        data = {"type": type_, "sequence_number": next(sequence), **fields}
        return encode_json(data, event=type_)

    where = {"item_id": item_id, "output_index": 0, "content_index": 0}

    async def events() -> AsyncIterator[bytes]:
        yield event("response.created", response=response("in_progress", []))
        yield event("response.in_progress", response=response("in_progress", []))
        yield event("response.output_item.added", output_index=0, item=item("in_progress", []))
        yield event("response.content_part.added", **where, part=part(""))
        sent = []
        async for token in generation.stream():
            sent.append(token)
            yield event("response.output_text.delta", **where, delta=token, logprobs=[])
        if generation.failed:
            message = "The model failed in the middle of the stream (injected)."
            yield event("error", code="server_error", message=message, param=None)
            failed = {"error": {"code": "server_error", "message": message}}
            yield event("response.failed", response=response("failed", [], **failed))
            return
        text = "".join(sent)
        yield event("response.output_text.done", **where, text=text, logprobs=[])
        yield event("response.content_part.done", **where, part=part(text))
        finished = item("completed", [part(text)])
        yield event("response.output_item.done", output_index=0, item=finished)
        yield event(f"response.{final_status}", response=response(final_status, [finished], **done))

    return sse_response(events())
