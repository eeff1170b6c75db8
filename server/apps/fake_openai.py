"""A local stand-in for the OpenAI HTTP API, so the real `openai` client runs offline and in CI.

The LLM is the one part of the course that is not real: everything else (the `openai` client,
its SSE decoder, the relay, the browser) talks to this server exactly as it would talk to
OpenAI, Ollama or vLLM. It speaks enough of the API for the real client, sync and async, to
parse every byte it sends:

- ``POST /v1/chat/completions``: streamed (``chat.completion.chunk`` events, a last chunk with
  ``finish_reason``, a usage chunk if ``stream_options.include_usage``, then ``data: [DONE]``)
  or not (one ``chat.completion``);
- ``POST /v1/responses``: streamed (the Responses API's named events, ``response.created`` …
  ``response.completed``, each with a rising ``sequence_number``) or not (one ``response``);
- ``GET /v1/models``;
- ``GET /stats`` (and ``POST /stats/reset``): generations active, completed, cancelled (the
  client went away before the end) and failed, so a test can prove that a relay cancels.

The model is deterministic: the same prompt and ``seed`` give the same text, and the streamed
deltas always join to exactly the non-streamed text. The seeds' prompt
"안녕하세요, 자기소개 해주세요." is answered with "안녕하세요! 저는 AI 어시스턴트입니다.", one
Hangul syllable per token, as in the seed notes; other prompts get a few sentences about
streaming. ``max_tokens`` (Chat) or ``max_output_tokens`` (Responses) cut the reply short
with ``finish_reason="length"`` / ``status="incomplete"``.

Timing and faults are set per request with extra headers (``extra_headers=`` on a call,
``default_headers=`` on a client), or for every request with the server process's environment
(``start_app(..., env={"FAKE_OPENAI_TTFT": "0"})``); a header wins over the environment:

==========================  =========================  =========================================
header                      environment                effect
==========================  =========================  =========================================
``x-fake-ttft``             ``FAKE_OPENAI_TTFT``       seconds before the first token (0.3)
``x-fake-tps``              ``FAKE_OPENAI_TPS``        tokens per second, 0 = no pacing (25)
``x-fake-tokens``           ``FAKE_OPENAI_TOKENS``     generated reply, at least N tokens (40)
``x-fake-status``           ``FAKE_OPENAI_STATUS``     answer 429, 500 or 503 instead
``x-fake-retry-after``      ``FAKE_OPENAI_RETRY_AFTER``  seconds in a 429's ``Retry-After`` (1)
``x-fake-fail-after``       ``FAKE_OPENAI_FAIL_AFTER``   break the stream after N tokens
==========================  =========================  =========================================

Keys: any ``Authorization: Bearer sk-…`` is accepted, except a missing key, one that does not
start with ``sk-``, and ``BAD_KEY`` ("sk-invalid…"): those get a 401 in OpenAI's error JSON,
which the client raises as ``openai.AuthenticationError``. A stream broken by
``x-fake-fail-after`` has already sent its 200, so the failure travels inside the stream, as
OpenAI sends it: a ``data: {"error": {...}}`` chunk (Chat; the client raises
``openai.APIError``) or an ``error`` event then ``response.failed`` (Responses).

Run it alone with ``uvicorn server.apps.fake_openai:app`` and point any client at ``…/v1``.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import math
import os
import random
import re
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from server.sse import MEDIA_TYPE, RESPONSE_HEADERS, Event, encode

BAD_KEY = "sk-invalid"
MODELS = ("fake-llm", "gpt-4o-mini")
DEFAULTS = {"ttft": 0.3, "tps": 25.0, "tokens": 40, "retry_after": 1}

CANNED = {
    "안녕하세요, 자기소개 해주세요.": "안녕하세요! 저는 AI 어시스턴트입니다.",
    "안녕하세요라고 말해줘": "안녕하세요! 저는 AI 어시스턴트입니다.",
}
SENTENCES = (
    "Streaming sends each token as soon as the model produces it.",
    "The first token arrives long before the last one.",
    "Server-Sent Events are plain text over one HTTP response.",
    "Each event ends with a blank line.",
    "A proxy that buffers the response hides all of this.",
    "The browser reads the stream with fetch or EventSource.",
    "Time to first token is what the user feels.",
    "Cancelling a stream early stops the bill for tokens nobody reads.",
    "A relay turns upstream deltas into events for the browser.",
    "Errors after the status line travel inside the stream.",
)
# A token is one Hangul syllable, or a run of other non-space characters, with the spaces
# before it. Joining the tokens gives back the text exactly (the text has no trailing space).
TOKEN = re.compile(r"\s*(?:[\uac00-\ud7a3]|[^\s\uac00-\ud7a3]+)")


def tokenize(text: str) -> list[str]:
    """Split `text` into the deltas the fake model streams; ``"".join(tokenize(t)) == t``."""
    return TOKEN.findall(text)


def reply_for(prompt: str, seed: int = 0, tokens: int = DEFAULTS["tokens"]) -> str:
    """The full reply to `prompt`: canned for the seeds' prompts, else about `tokens` long."""
    if prompt.strip() in CANNED:
        return CANNED[prompt.strip()]
    digest = hashlib.sha256(f"{seed}\0{prompt}".encode()).digest()
    rng = random.Random(digest)
    order = rng.sample(SENTENCES, len(SENTENCES))
    sentences: list[str] = []
    count = 0
    while count < tokens:  # whole sentences, at least `tokens` tokens
        sentences.append(order[len(sentences) % len(order)])
        count += len(tokenize(sentences[-1]))
    return " ".join(sentences)


# --- statistics ----------------------------------------------------------------------------


@dataclass
class Stats:
    """What the server did, for tests and lessons: read it with ``GET /stats``."""

    requests: int = 0  # every request to /v1/..., rejected ones included (retries show here)
    active: int = 0  # generations running now
    completed: int = 0  # generations that ran to the end
    cancelled: int = 0  # generations stopped because the client went away
    failed: int = 0  # generations broken on purpose (x-fake-fail-after)
    tokens: int = 0  # tokens sent, all generations together


# --- one request ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Knobs:
    """Timing and faults for one request: headers first, then the environment, then defaults."""

    ttft: float
    tps: float
    tokens: int
    status: int | None
    retry_after: float
    fail_after: int | None

    @classmethod
    def from_request(cls, headers: Mapping[str, str], env: Mapping[str, str]) -> Knobs:
        def get(name: str) -> str | None:
            return headers.get(f"x-fake-{name.replace('_', '-')}") or env.get(
                f"FAKE_OPENAI_{name.upper()}"
            )

        def number(name: str, kind: type, default: Any = None) -> Any:
            raw = get(name)
            return default if raw in (None, "") else kind(raw)

        return cls(
            ttft=number("ttft", float, DEFAULTS["ttft"]),
            tps=number("tps", float, DEFAULTS["tps"]),
            tokens=number("tokens", int, DEFAULTS["tokens"]),
            status=number("status", int),
            retry_after=number("retry_after", float, DEFAULTS["retry_after"]),
            fail_after=number("fail_after", int),
        )

    def due(self, start: float, index: int) -> float:
        """When token `index` is due (monotonic clock): an absolute schedule, so no drift."""
        return start + self.ttft + (index / self.tps if self.tps > 0 else 0.0)


def error_body(message: str, type_: str, code: str | None, param: str | None = None) -> dict:
    """OpenAI's error JSON, which the client turns into its exception classes."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def injected_failure() -> JSONResponse:
    """A non-streamed request with a failure injected: the whole request fails with a 500."""
    return JSONResponse(
        error_body("The model failed while generating (injected).", "server_error", None), 500
    )


def check_key(request: Request) -> Response | None:
    """A 401 in OpenAI's shape for a missing or rejected key, else None."""
    auth = request.headers.get("authorization", "")
    key = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
    if key.startswith("sk-") and not key.startswith(BAD_KEY):
        return None
    shown = f"{key[:6]}***{key[-2:]}" if len(key) > 8 else (key or "(none)")
    message = (
        f"Incorrect API key provided: {shown}. The course's local server accepts any key "
        f"that starts with 'sk-' except '{BAD_KEY}'."
        if key
        else "You didn't provide an API key. Send it as 'Authorization: Bearer sk-...'."
    )
    return JSONResponse(error_body(message, "invalid_request_error", "invalid_api_key"), 401)


def injected_status(knobs: Knobs) -> Response | None:
    """The error response asked for with x-fake-status, else None."""
    if knobs.status is None:
        return None
    if knobs.status == 429:
        return JSONResponse(
            error_body(
                f"Rate limit reached (injected by the course's local server). "
                f"Please try again in {knobs.retry_after:g}s.",
                "requests",
                "rate_limit_exceeded",
            ),
            429,
            # Retry-After counts whole seconds; the client prefers the finer retry-after-ms.
            headers={
                "retry-after": str(math.ceil(knobs.retry_after)),
                "retry-after-ms": str(round(knobs.retry_after * 1000)),
            },
        )
    return JSONResponse(
        error_body(
            "The server had an error while processing your request (injected).",
            "server_error",
            None,
        ),
        knobs.status,
    )


def text_of(content: Any) -> str:
    """The text of a message's content: a string, or a list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "") for part in content if isinstance(part, dict) and "text" in part
        )
    return ""


def last_user_text(messages: Any) -> str:
    """The last user message of a conversation (Chat ``messages`` or Responses ``input``)."""
    if isinstance(messages, str):
        return messages
    for message in reversed(messages or []):
        if isinstance(message, dict) and message.get("role", "user") == "user":
            return text_of(message.get("content"))
    return ""


def count_tokens(messages: Any) -> int:
    if isinstance(messages, str):
        return len(tokenize(messages))
    return sum(
        len(tokenize(text_of(m.get("content")))) for m in messages or [] if isinstance(m, dict)
    )


class Generation:
    """One reply being generated: its tokens, its pacing, and its entry in the stats."""

    def __init__(self, stats: Stats, knobs: Knobs, tokens: list[str]) -> None:
        self.stats, self.knobs, self.tokens = stats, knobs, tokens
        self.start = time.monotonic()
        self.failed = False  # set when the stream broke on purpose (x-fake-fail-after)

    async def wait_until_done(self) -> None:
        """For a non-streamed reply: the client waits for the whole generation."""
        self.stats.active += 1
        outcome = "cancelled"
        try:
            await sleep_until(self.knobs.due(self.start, len(self.tokens)))
            self.stats.tokens += len(self.tokens)
            outcome = "completed"
        finally:
            self.stats.active -= 1
            setattr(self.stats, outcome, getattr(self.stats, outcome) + 1)

    async def stream(self) -> AsyncIterator[str]:
        """Yield the tokens on schedule; stop early, with `failed` set, to break the stream.

        The bookkeeping is in `finally`: when the client disconnects, Starlette cancels the
        response, the `await` below raises `CancelledError`, and the generation counts as
        cancelled. That is how a test sees a relay stop the upstream.
        """
        self.stats.active += 1
        outcome = "cancelled"
        try:
            for index, token in enumerate(self.tokens):
                if self.knobs.fail_after is not None and index >= self.knobs.fail_after:
                    self.failed, outcome = True, "failed"
                    return
                await sleep_until(self.knobs.due(self.start, index))
                self.stats.tokens += 1
                yield token
            outcome = "completed"
        finally:
            self.stats.active -= 1
            setattr(self.stats, outcome, getattr(self.stats, outcome) + 1)


async def sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    await asyncio.sleep(max(delay, 0))  # sleep(0) still lets other streams run


def sse_json(data: Mapping[str, Any], event: str | None = None) -> bytes:
    return encode(Event(data=json.dumps(data, ensure_ascii=False), event=event))


# --- Chat Completions ----------------------------------------------------------------------


async def chat_completions(request: Request) -> Response:
    stats: Stats = request.app.state.stats
    stats.requests += 1
    knobs = Knobs.from_request(request.headers, os.environ)
    if (rejected := check_key(request) or injected_status(knobs)) is not None:
        return rejected
    body = await request.json()
    messages = body.get("messages") or []
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    text = reply_for(last_user_text(messages), int(body.get("seed") or 0), knobs.tokens)
    tokens = tokenize(text)
    finish = "stop"
    if limit is not None and len(tokens) > limit:
        tokens, finish = tokens[:limit], "length"
    usage = {
        "prompt_tokens": (prompt := count_tokens(messages)),
        "completion_tokens": len(tokens),
        "total_tokens": prompt + len(tokens),
    }
    ids = request.app.state.ids
    base = {"id": f"chatcmpl-fake{next(ids):06d}", "created": int(time.time())}
    base["model"] = body.get("model", MODELS[0])
    generation = Generation(stats, knobs, tokens)

    if not body.get("stream"):
        if knobs.fail_after is not None:
            return injected_failure()
        await generation.wait_until_done()
        message = {"role": "assistant", "content": "".join(tokens), "refusal": None}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
        return JSONResponse(
            {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
        )

    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    def chunk(delta: dict, finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        data: dict[str, Any] = {**base, "object": "chat.completion.chunk", "choices": [choice]}
        if include_usage:
            data["usage"] = None
        return sse_json(data)

    async def events() -> AsyncIterator[bytes]:
        yield chunk({"role": "assistant", "content": "", "refusal": None})
        async for token in generation.stream():
            yield chunk({"content": token})
        if generation.failed:
            message = "The model failed in the middle of the stream (injected)."
            yield sse_json(error_body(message, "server_error", "server_error"))
            return
        yield chunk({}, finish)
        if include_usage:
            yield sse_json(
                {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}
            )
        yield encode(Event(data="[DONE]"))

    return StreamingResponse(events(), media_type=MEDIA_TYPE, headers=RESPONSE_HEADERS)


# --- Responses -----------------------------------------------------------------------------


async def responses(request: Request) -> Response:
    stats: Stats = request.app.state.stats
    stats.requests += 1
    knobs = Knobs.from_request(request.headers, os.environ)
    if (rejected := check_key(request) or injected_status(knobs)) is not None:
        return rejected
    body = await request.json()
    given = body.get("input")
    limit = body.get("max_output_tokens")
    text = reply_for(last_user_text(given), int(body.get("seed") or 0), knobs.tokens)
    tokens = tokenize(text)
    incomplete = limit is not None and len(tokens) > limit
    if incomplete:
        tokens = tokens[:limit]
    number = next(request.app.state.ids)
    response_id, item_id = f"resp_fake{number:06d}", f"msg_fake{number:06d}"
    prompt = count_tokens(given)
    usage = {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": len(tokens),
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + len(tokens),
    }

    def part(text: str) -> dict:
        return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}

    def item(status: str, content: list[dict]) -> dict:
        return {"id": item_id, "type": "message", "status": status, "role": "assistant",
                "content": content}  # fmt: skip

    def response(status: str, output: list[dict], **extra: Any) -> dict:
        return {
            "id": response_id, "object": "response", "created_at": created, "status": status,
            "model": body.get("model", MODELS[0]), "instructions": body.get("instructions"),
            "output": output, "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
            "error": None, "incomplete_details": None, "usage": None, "metadata": {},
            "text": {"format": {"type": "text"}}, **extra,
        }  # fmt: skip

    created = int(time.time())
    final_status = "incomplete" if incomplete else "completed"
    done = {"usage": usage}
    if incomplete:
        done["incomplete_details"] = {"reason": "max_output_tokens"}
    generation = Generation(stats, knobs, tokens)

    if not body.get("stream"):
        if knobs.fail_after is not None:
            return injected_failure()
        await generation.wait_until_done()
        output = [item("completed", [part("".join(tokens))])]
        return JSONResponse(response(final_status, output, **done))

    sequence = itertools.count()

    def event(type_: str, **fields: Any) -> bytes:
        return sse_json({"type": type_, "sequence_number": next(sequence), **fields}, type_)

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

    return StreamingResponse(events(), media_type=MEDIA_TYPE, headers=RESPONSE_HEADERS)


# --- the rest ------------------------------------------------------------------------------


async def models(request: Request) -> Response:
    request.app.state.stats.requests += 1
    if (rejected := check_key(request)) is not None:
        return rejected
    data = [{"id": m, "object": "model", "created": 0, "owned_by": "sse-course"} for m in MODELS]
    return JSONResponse({"object": "list", "data": data})


async def stats(request: Request) -> Response:
    return JSONResponse(asdict(request.app.state.stats))


async def reset_stats(request: Request) -> Response:
    request.app.state.stats = Stats()
    return JSONResponse(asdict(request.app.state.stats))


async def index(request: Request) -> Response:
    return JSONResponse(
        {"name": "the course's local OpenAI-compatible server", "base_url": "/v1",
         "endpoints": ["/v1/chat/completions", "/v1/responses", "/v1/models", "/stats"]}
    )  # fmt: skip


def create_app() -> Starlette:
    """A fresh server with its own statistics (tests may build several)."""
    app = Starlette(
        routes=[
            Route("/", index),
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/responses", responses, methods=["POST"]),
            Route("/v1/models", models),
            Route("/stats", stats),
            Route("/stats/reset", reset_stats, methods=["POST"]),
        ]
    )
    app.state.stats = Stats()
    app.state.ids = itertools.count(1)
    return app


app = create_app()
