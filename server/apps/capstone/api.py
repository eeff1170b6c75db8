"""The capstone's HTTP API: every refusal a JSON ``{"detail": ..., "error": ...}`` the page shows.

    GET  api/session                        a session cookie (the page sets one too)
    POST api/chat                           {"message": "...", "conversation": id or null}
                                            -> 202 {"reply", "conversation", "events", ...}
    GET  api/replies/<reply>/events         the reply as SSE (`delivery`); Last-Event-ID resumes
    POST api/replies/<reply>/stop           end it now, and stop the upstream generation
    POST api/replies/<reply>/leave          the page went away: stop it unless read again soon
    GET  api/conversations/<conversation>   the history, and the reply still generating, if any

Refusals, in the order they are checked, and nothing is stored by any of them:

- a POST another page sent (the browser's ``Sec-Fetch-Site`` is ``cross-site`` or
  ``same-site``): 403. The session cookie is ``SameSite=Lax``, which stops other *sites*, not
  another origin of the same site (another port of this host; on a shared hub, every learner's
  app). ``Origin`` is not compared with ``Host``: behind a proxy they differ. The page's own
  fetch sends ``same-origin``, a typed URL ``none``, and curl or httpx nothing: all accepted;
- no session cookie, or one older than ``SESSION_MAX_AGE``: 401; a forged one: 403 (`session`);
- a chat body not sent as ``application/json``: 415 (a plain HTML form can post
  ``text/plain`` to any origin without asking; only a script can send JSON, and a script on
  another origin must first pass a CORS preflight this app never answers);
- a body over ``MAX_BODY_BYTES`` or a message over ``MAX_MESSAGE_CHARS``: 413;
- a body that is not JSON: 400; JSON of the wrong shape: 422, saying which field;
- over ``RATE_PER_MINUTE`` in the last 60 s (a sliding window): 429 with ``Retry-After`` (the
  seconds until the oldest of them is a minute old);
- ``MAX_ACTIVE`` replies already generating: 429 with ``Retry-After: 1`` ("stop one, or wait");
- ``MAX_WORKER_STREAMS`` reply streams open on this worker, whoever holds them: 503. A session
  cookie costs one GET, so the per-user limit alone lets one client with many cookies hold
  thousands;
- ``MAX_STREAMS`` reply streams already open on this worker (a GET of the events): 429. It is
  counted per worker, in memory (a count in Redis would leak the streams of a killed worker),
  so a user spread over N workers may hold up to N times as many: enough to stop one client
  from holding thousands of connections (and Redis connections) open;
- Redis unreachable: 503 with ``Retry-After``; Redis full (``maxmemory``, ``noeviction``):
  503, nothing stored.

A POST may carry an ``Idempotency-Key``: sent again (a retry after a lost answer, or a 502
while a worker died), it returns the reply the first one made instead of a second one. What a
key may be is `server.idempotency`'s rule, the same in every app (malformed: 400); it is
remembered as long as the reply it made (``REPLY_TTL``). Refusals follow `server.asgi.refusals`:
the domain raises its own errors (`session`), and `refused` says which status each one is.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import uuid
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp

from server import idempotency
from server.apps.capstone import history
from server.apps.capstone.delivery import already_ended, reply_events
from server.apps.capstone.generation import Generations
from server.apps.capstone.metrics import CONTENT_TYPE, Metrics
from server.apps.capstone.replies import Keys, Replies
from server.apps.capstone.scripts import Outcome, StartOutcome
from server.apps.capstone.session import (
    COOKIE,
    ExpiredSession,
    ForgedSession,
    NoSession,
    SessionRefused,
    user_of,
)
from server.apps.capstone.settings import Settings
from server.asgi import json_body
from server.asgi.refusals import Refusal, Refused, refusal_response
from server.asgi.send_deadline import SendDeadline
from server.asgi.sse_response import sse_response
from server.asgi.stream_slots import Slots, released_after
from server.event_ids import parse_stream_id
from server.idempotency import BadIdempotencyKey, idempotency_key
from server.redis_client import REDIS_DOWN

REPLY_ID = re.compile(r"[0-9a-f]{32}")
LEAVE_GRACE = 5.0
"""Seconds a `leave` waits before it stops the reply: the page, reloaded, reads it sooner."""


SESSION_REFUSALS: Mapping[type[SessionRefused], Refusal] = {
    NoSession: Refusal(401, "session"),  # get one: GET / or api/session
    ExpiredSession: Refusal(401, "session"),  # the same
    ForgedSession: Refusal(403, "session"),  # not yours, whatever you do
}


async def refused(request: Request, error: Exception) -> Response:
    """The app's one handler (`server.asgi.refusals`' idiom): `Refused` as it says, a session
    error as `SESSION_REFUSALS` maps it, a bad ``Idempotency-Key`` a 400; each counted by
    name in the metrics."""
    if isinstance(error, Refused):
        refusal = error.refusal
    elif isinstance(error, SessionRefused):
        refusal = SESSION_REFUSALS[type(error)]
    else:
        assert isinstance(error, BadIdempotencyKey)
        refusal = Refusal(400, "bad_request")
    request.state.metrics.refused.labels(refusal.error).inc()
    return refusal_response(refusal, str(error))


async def redis_down(request: Request, error: Exception) -> Response:
    """Any endpoint that cannot reach Redis: a 503 that says nothing was done, not a 500."""
    detail = f"The chat's store (Redis) is unreachable ({type(error).__name__}). Try again soon."
    return await refused(request, Refused(503, detail, "redis", {"Retry-After": "2"}))


async def redis_full(request: Request, error: Exception) -> Response:
    """Redis at its ``maxmemory`` refuses writes (``noeviction``): a 503, nothing stored."""
    detail = "The chat's store (Redis) is full; nothing was stored. Try again later."
    return await refused(request, Refused(503, detail, "redis_full", {"Retry-After": "30"}))


def session_user(request: Request) -> str:
    settings: Settings = request.state.settings
    user = user_of(request.cookies.get(COOKIE), settings.session_secret, settings.session_max_age)
    request.state.user = user[:8]  # for the access log: enough to follow one user's requests
    return user


SENT_BY_ANOTHER_PAGE = frozenset({"cross-site", "same-site"})


def from_this_page(request: Request) -> None:
    """Refuse a POST that a page of another origin made the browser send (see the list above)."""
    site = request.headers.get("sec-fetch-site", "").strip().lower()
    if site in SENT_BY_ANOTHER_PAGE:
        detail = (
            f"Refused: the browser says another page sent this request (Sec-Fetch-Site: {site}). "
            "Only the chat's own page may post to it."
        )
        raise Refused(403, detail, "cross_origin")


async def read_json(request: Request, limit: int) -> Any:
    """The body as JSON (`server.asgi.json_body`: bounded, strict, sent as application/json),
    refused with what is wrong."""
    try:
        return await json_body.read_json(request, limit=limit, require_type=True)
    except json_body.BadBody as error:
        reason = {413: "too_large", 415: "not_json"}.get(error.status, "bad_request")
        raise Refused(error.status, f"The request was refused: {error}.", reason) from None


def parse_chat(value: Any, settings: Settings) -> tuple[str, str | None]:
    """(message, conversation id or None) from a chat POST's parsed body."""
    if not isinstance(value, dict):
        example = '{"message": "hi"}'
        raise Refused(422, f"The body must be a JSON object such as {example}.", "bad_request")
    message, conversation = value.get("message"), value.get("conversation")
    if not isinstance(message, str) or not message.strip():
        raise Refused(422, "'message' must be a non-empty string.", "bad_request")
    if len(message) > settings.max_message_chars:
        detail = (
            f"The message is too long: {len(message)} characters, at most "
            f"{settings.max_message_chars}."
        )
        raise Refused(413, detail, "too_large")
    if conversation is not None and not (
        isinstance(conversation, str) and history.CONVERSATION_ID.fullmatch(conversation)
    ):
        raise Refused(422, "'conversation' must be null or an id this server gave.", "bad_request")
    return message.strip(), conversation


async def chat(request: Request) -> Response:
    """Accept a message: record it, start its reply, and say where to read the reply."""
    from_this_page(request)
    state = request.state
    settings: Settings = state.settings
    user = session_user(request)
    message, conversation = parse_chat(await read_json(request, settings.max_body_bytes), settings)
    idem = idempotency_key(request.headers)  # server.idempotency: the rule, once
    keys = Keys(uuid.uuid4().hex, user, conversation or uuid.uuid4().hex)
    replies: Replies = state.replies
    try:
        past = await history.read(replies.redis, user, keys.conv)
        messages = history.upstream_messages(past["messages"], settings.upstream_history)
        messages.append({"role": "user", "content": message})
        started = await replies.start(
            keys, messages=messages, seed=random.randrange(2**31), owner=settings.worker,
            lease=settings.lease_seconds, max_active=settings.max_active,
            rate=settings.rate_per_minute, idem=idem,
            user_message=json.dumps({"role": "user", "content": message}, ensure_ascii=False),
        )  # fmt: skip
        if started.outcome == StartOutcome.AGAIN:
            keys = await replies.keys_of(started.reply) or keys
    except REDIS_DOWN:
        detail = "The chat's store (Redis) is unreachable; nothing was stored. Try again soon."
        raise Refused(503, detail, "redis", {"Retry-After": "2"}) from None
    if started.outcome == StartOutcome.RATE:
        seconds = max(1, started.retry_after)
        detail = (
            f"Too many messages: at most {settings.rate_per_minute} a minute. "
            f"Try again in {seconds} s."
        )
        raise Refused(429, detail, "rate", {"Retry-After": str(seconds)})
    if started.outcome == StartOutcome.BUSY:
        detail = (
            f"You already have {started.active} replies streaming (at most "
            f"{settings.max_active}). Wait for one to finish, or stop it."
        )
        raise Refused(429, detail, "busy", {"Retry-After": "1"})
    if started.outcome == StartOutcome.OK:
        state.generations.launch(keys)
    body = {
        "reply": keys.reply,
        "conversation": keys.conv,
        "events": f"api/replies/{keys.reply}/events",
        "stop": f"api/replies/{keys.reply}/stop",
        "worker": settings.worker,
        "seed": int((await replies.record(keys.reply)).get("seed", 0)),
    }
    return JSONResponse(body, 202 if started.outcome == StartOutcome.OK else 200)


async def _own_reply(request: Request, user: str) -> Keys:
    reply = request.path_params["reply"]
    keys = await request.state.replies.keys_of(reply) if REPLY_ID.fullmatch(reply) else None
    if keys is None or keys.user != user:  # another user's reply does not exist, for you
        raise Refused(404, "No such reply (it expired, or it is not yours).", "not_found")
    return keys


async def events(request: Request) -> Response | ASGIApp:
    """The reply as an event stream, from the client's Last-Event-ID on."""
    settings: Settings = request.state.settings
    keys = await _own_reply(request, session_user(request))
    await request.state.replies.redis.set(  # which page read it last: see `leave`
        f"cap:reader:{keys.reply}", page_of(request), ex=settings.reply_ttl
    )
    try:
        after = parse_stream_id(request.headers.get("last-event-id"))
        if await already_ended(request.state.replies.redis, keys.reply, after):
            return Response(status_code=204)  # EventSource stops reconnecting on a 204
    except ValueError as error:
        raise Refused(400, str(error), "bad_request") from None
    streams: Slots = request.state.streams
    if streams.held.total() >= settings.max_worker_streams:  # (nothing awaited until take)
        detail = (
            f"This server holds all the reply streams it may ({settings.max_worker_streams}, "
            "MAX_WORKER_STREAMS). Try again in a moment."
        )
        raise Refused(503, detail, "worker_streams", {"Retry-After": "1"})
    if not streams.take(keys.user):  # taken here, given back when the response call ends
        detail = (
            f"You have {streams.held[keys.user]} reply streams open on this server (at most "
            f"{settings.max_streams}). Close a tab, or wait for a reply to end."
        )
        raise Refused(429, detail, "streams", {"Retry-After": "1"})
    body = reply_events(
        request.state.replies.redis, keys.reply, after, heartbeat=settings.heartbeat,
        retry_ms=settings.retry_ms, metrics=request.state.metrics,
        lifetime=settings.max_stream_seconds,
    )  # fmt: skip
    response = SendDeadline(sse_response(body), settings.send_timeout, lambda: None)
    return released_after(response, lambda: streams.give_back(keys.user))


async def stop(request: Request) -> Response:
    """End the reply with ``stopped``; its generation stops the upstream at its next step."""
    from_this_page(request)
    user = session_user(request)
    keys = await _own_reply(request, user)
    outcome = await request.state.replies.end(keys, "stopped", {"message": "Stopped."}, user=user)
    if outcome != Outcome.OK:
        raise Refused(409, f"The reply has already ended ({outcome}).", "conflict")
    request.state.metrics.replies.labels("stopped").inc()
    generations: Generations = request.state.generations
    generations.cancel(keys.reply)  # here at once; on another worker at its next token or renewal
    return JSONResponse({"status": "stopped", "reply": keys.reply})


def page_of(request: Request) -> str:
    """The ``?page=`` a page gives its reads and its `leave` (random, per page load), or ""."""
    page = request.query_params.get("page", "")
    return page if idempotency.KEY.fullmatch(page) else ""


async def leave(request: Request) -> Response:
    """The page reading the reply went away (`capstone.js` sends this beacon on ``pagehide``):
    stop the reply, unless after `LEAVE_GRACE` another page is the last to have opened its
    events, as the same page reloaded does (its read may even arrive before this beacon).
    Behind jupyter-server-proxy, which keeps the app's side of a stream open after the
    browser's is gone, nothing else tells the server that a tab closed, and the model would
    go on generating for nobody."""
    from_this_page(request)
    keys = await _own_reply(request, session_user(request))
    await asyncio.sleep(LEAVE_GRACE)
    reader = await request.state.replies.redis.get(f"cap:reader:{keys.reply}")
    if reader is not None and reader != page_of(request):
        return JSONResponse({"status": "read by another page", "reply": keys.reply})
    return await stop(request)


async def conversation(request: Request) -> Response:
    user = session_user(request)
    conv = request.path_params["conversation"]
    if not history.CONVERSATION_ID.fullmatch(conv):
        raise Refused(400, "A conversation id is 32 hex digits.", "bad_request")
    found: dict[str, Any] = await history.read(request.state.replies.redis, user, conv)
    return JSONResponse({"conversation": conv, **found})


async def metrics(request: Request) -> Response:
    metrics: Metrics = request.state.metrics
    return Response(metrics.render(), media_type=CONTENT_TYPE)
