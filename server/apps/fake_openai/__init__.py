"""A local stand-in for the OpenAI HTTP API, so the real `openai` client runs offline and in CI.

The LLM is the one part of the course that is not real: everything else (the `openai` client,
its SSE decoder, the relay, the browser) talks to this server exactly as it would talk to
OpenAI, Ollama or vLLM. It speaks enough of the API for the real client, sync and async, to
parse every byte it sends:

- ``POST /v1/chat/completions`` (`chat`), streamed or not;
- ``POST /v1/responses`` (`responses`), streamed or not;
- ``GET /v1/models``;
- ``GET /stats`` (and ``POST /stats/reset``): requests received, generations active,
  finished, cancelled (the client went away before the end) and failed, and tokens sent, so a
  test can prove that a relay cancels (`server.stream_stats`).

What it answers and how fast is in `model`; what it refuses, and how, in `errors`: a missing
or rejected key is a 401 (``BAD_KEY``, "sk-invalid…", is always rejected), a body that is not a
JSON object or a field of the wrong type is the 400 the real API sends, so the `openai`
client raises `BadRequestError` saying what was wrong (a body over 1 MiB is a 413). Bodies are
read with `server.asgi.json_body`: a lone surrogate or 3,000-deep nesting is a 400, not a 500.

Timing and faults are set per request with extra headers (``extra_headers=`` on a call,
``default_headers=`` on a client), or for every request with the server process's environment
(``start_app(..., env={"FAKE_OPENAI_TTFT": "0"})``, read when the server starts); a header
wins over the environment, and a malformed header is a 400 that names it:

==========================  ===========================  =======================================
header                      environment                  effect
==========================  ===========================  =======================================
``x-fake-ttft``             ``FAKE_OPENAI_TTFT``         seconds before the first token (0.3)
``x-fake-tps``              ``FAKE_OPENAI_TPS``          tokens per second, 0 = no pacing (25)
``x-fake-tokens``           ``FAKE_OPENAI_TOKENS``       generated reply, at least N tokens (40)
``x-fake-status``           ``FAKE_OPENAI_STATUS``       answer 429, 500 or 503 (400-599) instead
``x-fake-retry-after``      ``FAKE_OPENAI_RETRY_AFTER``  seconds in a 429's ``Retry-After`` (1)
``x-fake-fail-after``       ``FAKE_OPENAI_FAIL_AFTER``   break the stream after N tokens
==========================  ===========================  =======================================

Each has a bound, so no request can hold the server: ttft up to 600 s, tps from 0.1 to 100,000
(or 0), tokens and fail-after up to 100,000, retry-after up to 3600 s.

Run it alone with ``uvicorn server.apps.fake_openai:app`` and point any client at ``…/v1``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.apps.fake_openai.chat import chat_completions
from server.apps.fake_openai.errors import BAD_KEY, InvalidRequest, check_key, invalid_request
from server.apps.fake_openai.model import GENERATIONS, Knobs, reply_for, tokenize
from server.apps.fake_openai.responses import responses
from server.stream_stats import StreamStats

__all__ = ["BAD_KEY", "MODELS", "app", "create_app", "reply_for", "tokenize"]

MODELS = ("fake-llm", "gpt-4o-mini")


async def models(request: Request) -> Response:
    request.state.stats.add(GENERATIONS, "requests")
    if (rejected := check_key(request)) is not None:
        return rejected
    data = [{"id": m, "object": "model", "created": 0, "owned_by": "sse-course"} for m in MODELS]
    return JSONResponse({"object": "list", "data": data})


async def stats(request: Request) -> Response:
    """``{"active", "finished", "cancelled", "failed", "requests", "tokens"}``: what ran."""
    counts = {"requests": 0, "tokens": 0} | request.state.stats.counts(GENERATIONS)
    return JSONResponse(counts)


async def reset_stats(request: Request) -> Response:
    request.state.stats.reset()
    return await stats(request)


async def index(request: Request) -> Response:
    return JSONResponse(
        {"name": "the course's local OpenAI-compatible server", "base_url": "/v1",
         "endpoints": ["/v1/chat/completions", "/v1/responses", "/v1/models", "/stats"]}
    )  # fmt: skip


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    """The server's state, in Starlette's lifespan state (each request's `request.state`): the
    environment's knobs, read once, so a malformed one stops the server here; the statistics;
    the counter behind response ids."""
    knobs = Knobs().override(os.environ, Knobs.variable)
    yield {"knobs": knobs, "stats": StreamStats(), "ids": itertools.count(1)}


def create_app() -> Starlette:
    """A fresh server: its statistics and ids start anew with each start (tests run several)."""
    return Starlette(
        routes=[
            Route("/", index),
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/responses", responses, methods=["POST"]),
            Route("/v1/models", models),
            Route("/stats", stats),
            Route("/stats/reset", reset_stats, methods=["POST"]),
        ],
        exception_handlers={InvalidRequest: invalid_request},
        lifespan=lifespan,
    )


app = create_app()
