"""Stage 9 (lesson 11): replies generated into Redis, streamed by any worker, kept across a kill.

    POST /replies               {"message": "..."} with an X-User header -> 202 {"id": ...}
    GET  /replies/{id}/events   the reply as SSE, from whichever worker; Last-Event-ID resumes
                                (the `done` event's own id: 204, nothing more to send)

The worker that takes the POST asks the model and appends each delta to the reply's Redis
stream `reply:<id>`, then one last entry, `done` or `error`. A reader's worker follows that
stream with XREAD, so the generation and the connection can live on different workers.

A worker can die mid-reply. Its generation holds a **lease**, `reply:<id>:lease`, naming the
worker; every append renews it, in one Lua script that first checks the name (`APPEND`): a
worker that lost its lease cannot write. When a reader has waited a second for nothing and the
lease has run out, its worker takes the lease and asks the model again, skipping the deltas
already in the stream. That is exact when the model repeats itself for the same prompt, as the
course's fake model does.
"""

import asyncio
import os
import re
import uuid
from collections.abc import AsyncIterator, Coroutine
from typing import Annotated, Any

import openai
import redis.asyncio as aioredis
from fastapi import APIRouter, Header, HTTPException
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from server.sse import Event, comment, encode

router = APIRouter()
redis = aioredis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1"), decode_responses=True)
client = openai.AsyncOpenAI(api_key=os.environ.get("OPENAI_API_KEY", "unset"))  # + OPENAI_BASE_URL
MODEL = os.environ.get("OPENAI_MODEL", "gpt-4o-mini")
WORKER = uuid.uuid4().hex  # this process's name on its leases
LEASE_MS = 5000  # a generation silent this long is presumed dead: longer than the model's pauses
TTL = 3600  # seconds a reply is kept
RATE, WINDOW = 5, 10  # messages per user per WINDOW seconds
STREAM_ID = re.compile(r"\d+-\d+")  # a Redis stream id, the events' `id:`
NO_BUFFERING = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

# KEYS: the reply's lease, its stream. ARGV: this worker, the lease in ms, then the entry's
# fields (none: only renew). Nothing is written unless the lease is still this worker's.
APPEND = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if #ARGV > 2 then
  redis.call('XADD', KEYS[2], '*', unpack(ARGV, 3))
  redis.call('EXPIRE', KEYS[2], 3600)  -- TTL: the stream goes with its prompt
end
return 1
"""
append = redis.register_script(APPEND)
tasks: set[asyncio.Task[None]] = set()  # a task nobody holds may be garbage-collected


def spawn(job: Coroutine[Any, Any, None]) -> None:
    """Run `job` beside the request that started it."""
    task = asyncio.create_task(job)
    tasks.add(task)
    task.add_done_callback(tasks.discard)


class Message(BaseModel):
    message: str = Field(min_length=1, max_length=2000)


User = Annotated[str, Header(alias="X-User", pattern=r"^[\w.-]{1,64}$")]
LastEventId = Annotated[str | None, Header(alias="Last-Event-ID")]


@router.post("/replies", status_code=202)
async def post_reply(body: Message, user: User) -> dict[str, str]:
    """Accept a message (or refuse a flood with 429), start its reply, say its id."""
    ### BEGIN STAGE 9
    raise NotImplementedError("stage 9: your code here")
    ### END STAGE 9


async def generate(reply: str, prompt: str, skip: int = 0) -> None:
    """Append the model's deltas to the reply's stream, then `done` (or `error`).

    `skip`: the deltas already in the stream, when this worker took the reply over."""
    ### BEGIN STAGE 9
    raise NotImplementedError("stage 9: your code here")
    ### END STAGE 9


@router.get("/replies/{reply}/events")
async def reply_events(reply: str, last_event_id: LastEventId = None) -> Response:
    """The reply as an event stream, after the client's Last-Event-ID; a 204 if it has the end."""
    ### BEGIN STAGE 9
    raise NotImplementedError("stage 9: your code here")
    ### END STAGE 9


async def follow(reply: str, prompt: str, cursor: str) -> AsyncIterator[bytes]:
    """The stream's entries after `cursor` as events, to the last one; a ping each quiet second."""
    ### BEGIN STAGE 9
    raise NotImplementedError("stage 9: your code here")
    ### END STAGE 9
