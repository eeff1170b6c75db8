"""The seeds' ``/chat``, as written in seed note 002: a sync generator over a sync client.

Kept to be measured, not copied. The endpoint below is the seed's code unchanged: a ``def``
endpoint asks the sync `openai.OpenAI` client for a streamed Responses API reply, and a sync
generator turns each ``response.output_text.delta`` into ``data: ...``. It streams well. What
it does when the browser leaves is the problem lesson 06 shows: Starlette runs a sync
generator's ``next()`` in a worker thread and, on a disconnect, abandons it at its ``yield``
without closing it (lesson 04 measured that). Nothing closes the upstream response, so the
model generates, and bills, the whole reply for nobody, until the garbage collector happens
to free the generator. The course's relay (`server.apps.llm_relay`) is an async generator
that closes the upstream the moment the browser leaves.

Two changes from the seed, neither in what runs: type hints, and the client is made when the
server starts (`lifespan`), not at import, so that importing this module needs no key. As in
the seed, it reads ``OPENAI_API_KEY`` (and, the client's own default, ``OPENAI_BASE_URL``)
from the environment or ``.env``. The router and its registration are the seeds'
``routers/sse_router.py`` and ``main.py``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

from dotenv import load_dotenv
from fastapi import APIRouter, FastAPI
from fastapi.responses import StreamingResponse
from openai import OpenAI

router = APIRouter(prefix="/sse", tags=["SSE (Server-Sent Events)"])
client: OpenAI  # made at startup: see the module's docstring


@router.get("/chat")
def openai_chat(message: str = "안녕하세요, 자기소개 해주세요.") -> StreamingResponse:
    """
    실제 OpenAI API 스트리밍
    → GPT가 생성하는 답변이 토큰 단위로 실시간 도착
    """
    stream = client.responses.create(
        model="gpt-4o-mini",
        instructions="2문장 이내로 대답해줘.",
        input=[{"role": "user", "content": message}],
        stream=True,
    )

    def generate() -> Iterator[str]:
        for event in stream:
            if event.type == "response.output_text.delta":
                yield f"data: {event.delta}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(generate(), media_type="text/event-stream")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    global client
    load_dotenv()
    client = OpenAI(api_key=os.getenv("OPENAI_API_KEY"))
    try:
        yield
    finally:
        client.close()


app = FastAPI(lifespan=lifespan)
app.include_router(router)
