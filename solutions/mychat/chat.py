"""Stage 4 (lesson 06): `POST /chat` relays a model's streamed reply to the browser as SSE.

The page sends `{"message": "..."}`. The relay asks an OpenAI-compatible model with the real
`openai` client (it reads `OPENAI_BASE_URL` and `OPENAI_API_KEY` from the environment) and
forwards each piece of text the moment it arrives, as `data: {"delta": "..."}`. The 200 goes
out before the model is asked, so every stream ends with exactly one `event: done` (with the
token counts) or `event: error` (a short message): after the 200, the stream is the only way
to tell the browser. While the model is silent, a `: ping` comment goes out every
`CHAT_HEARTBEAT` seconds, so no proxy takes the connection for dead. When the browser leaves,
the upstream request is closed, which stops the model. A body the relay cannot read is a 4xx
that says why, sent before any stream starts.
"""

import asyncio
import functools
import json
import os
from collections.abc import AsyncIterator

import openai
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse

from server.sse import comment, encode_json

router = APIRouter()

MODEL = os.environ.get("OPENAI_MODEL") or "gpt-4o-mini"
MAX_BODY = 16_384  # bytes: room for a long message, not for a file
HEARTBEAT = float(os.environ.get("CHAT_HEARTBEAT") or 15)  # seconds of silence before a ping
if not 0.05 <= HEARTBEAT <= 300:  # 0 would ping in a busy loop; NaN fails this test too
    raise ValueError(f"CHAT_HEARTBEAT must be from 0.05 to 300 seconds, not {HEARTBEAT}")


@functools.cache
def upstream() -> openai.AsyncOpenAI:
    """One client for the whole app (it keeps connections open), made on first use."""
    return openai.AsyncOpenAI()  # reads OPENAI_API_KEY and OPENAI_BASE_URL


# POST /chat: read the message (a 4xx if it cannot), then stream the relayed reply.
### BEGIN STAGE 4
@router.post("/chat")
async def chat(request: Request) -> StreamingResponse:
    message = await read_message(request)  # a 4xx here, before the stream starts
    return StreamingResponse(
        with_heartbeats(relay(message), HEARTBEAT),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


### END STAGE 4


# async def read_message(request) -> str: the "message" of the JSON body, or a 4xx saying why not.
### BEGIN STAGE 4
async def read_message(request: Request) -> str:
    """The `message` of a JSON body `{"message": "..."}`, or an HTTPException that says why not."""
    body = b""
    async for piece in request.stream():  # counted as it arrives: a huge body is never held
        body += piece
        if len(body) > MAX_BODY:
            raise HTTPException(413, f"the body is over {MAX_BODY} bytes")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested thousands deep
        raise HTTPException(400, 'the body must be JSON: {"message": "..."}') from None
    message = data.get("message") if isinstance(data, dict) else None
    if not isinstance(message, str) or not message.strip():
        raise HTTPException(422, 'the body needs "message", a string that is not empty')
    try:
        message.encode()
    except UnicodeEncodeError:  # "\ud800": JSON can write it, UTF-8 cannot carry it
        raise HTTPException(400, "the message is not valid Unicode (a lone surrogate)") from None
    return message


### END STAGE 4


# async def relay(message) yields SSE bytes: an event per delta, then one done or one error.
### BEGIN STAGE 4
async def relay(message: str) -> AsyncIterator[bytes]:
    """The model's reply as SSE: an event per delta, then one `done` or one `error`."""
    usage = None
    try:
        stream = await upstream().chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": message}],
            stream=True,
            stream_options={"include_usage": True},  # the counts come in a last chunk
        )
        async with stream:  # closing the response stops the model, also when we are cancelled
            async for chunk in stream:
                if chunk.usage is not None:
                    usage = chunk.usage.model_dump(exclude_none=True)
                for choice in chunk.choices:
                    if choice.delta.content:
                        yield encode_json({"delta": choice.delta.content})
    except openai.OpenAIError as error:  # refused (401, 500...), broken or cut mid-reply
        print(f"chat: the model failed: {error!r}", flush=True)  # the details, for your log
        status = getattr(error, "status_code", None)  # 401, 500, ... or None
        failed = {"message": f"the model failed ({type(error).__name__})", "status": status}
        yield encode_json(failed, event="error")
    else:
        yield encode_json({"usage": usage}, event="done")


### END STAGE 4


# async def with_heartbeats(events, every) yields `events`, and a ping after `every` s of silence.
### BEGIN STAGE 4
async def with_heartbeats(events: AsyncIterator[bytes], every: float) -> AsyncIterator[bytes]:
    """`events`, with a `: ping` comment after every `every` seconds in which none came."""
    # The next event is awaited in a task of its own, so waiting for it can time out (and
    # ping) without cancelling the upstream read, as `asyncio.wait_for` would.
    pending = asyncio.ensure_future(anext(events))
    try:
        while True:
            done, _ = await asyncio.wait({pending}, timeout=every)
            if not done:
                yield comment("ping")
                continue
            try:
                event = pending.result()
            except StopAsyncIteration:
                return
            yield event
            pending = asyncio.ensure_future(anext(events))
    finally:  # the stream ended, or the browser left: stop waiting for the model
        pending.cancel()


### END STAGE 4
