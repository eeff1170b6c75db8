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
# stage 4: your code here
### END STAGE 4


# async def read_message(request) -> str: the "message" of the JSON body, or a 4xx saying why not.
### BEGIN STAGE 4
# stage 4: your code here
### END STAGE 4


# async def relay(message) yields SSE bytes: an event per delta, then one done or one error.
### BEGIN STAGE 4
# stage 4: your code here
### END STAGE 4


# async def with_heartbeats(events, every) yields `events`, and a ping after `every` s of silence.
### BEGIN STAGE 4
# stage 4: your code here
### END STAGE 4
