"""One refusal idiom: a domain error mapped once to its status, answered as JSON that says why."""

from __future__ import annotations

import asyncio

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from server.asgi.json_body import BadBody
from server.asgi.refusals import Refusal, Refused, refusal_handlers
from server.idempotency import BadIdempotencyKey, idempotency_key


class Unavailable(Exception):
    """A domain error: the store is away."""


async def endpoint(request: Request) -> Response:
    what = request.query_params["raise"]
    if what == "unavailable":
        raise Unavailable("the store is unreachable: nothing was stored, try again")
    if what == "too_large":
        raise BadBody(413, "the body is too large: at most 10 bytes")
    if what == "key":
        idempotency_key(request.headers)
    if what == "refused":
        raise Refused(429, "too many: wait a minute", "rate", {"Retry-After": "60"})
    if what == "bug":
        raise KeyError("a bug is not a refusal")
    return PlainTextResponse("ok")


APP = Starlette(
    routes=[Route("/", endpoint)],
    exception_handlers=refusal_handlers(
        {
            Unavailable: Refusal(503, "unavailable", {"Retry-After": "1"}),
            BadBody: Refusal(400, "bad_body"),
            BadIdempotencyKey: Refusal(400, "bad_request"),
        }
    ),
)


def get(query: str, headers: dict[str, str] | None = None) -> httpx2.Response:
    async def call() -> httpx2.Response:
        transport = httpx2.ASGITransport(app=APP, raise_app_exceptions=False)
        async with httpx2.AsyncClient(transport=transport, base_url="http://app") as client:
            return await client.get(f"/?{query}", headers=headers)

    return asyncio.run(call())


@pytest.mark.parametrize(
    ("query", "headers", "status", "error", "says"),
    [
        ("raise=unavailable", None, 503, "unavailable", "nothing was stored"),
        ("raise=too_large", None, 413, "bad_body", "at most 10 bytes"),
        ("raise=key", {"Idempotency-Key": "no spaces"}, 400, "bad_request", "Idempotency-Key"),
        ("raise=refused", None, 429, "rate", "wait a minute"),
    ],
)
def test_each_refusal_is_its_status_and_json_saying_why(
    query: str, headers: dict[str, str] | None, status: int, error: str, says: str
) -> None:
    answer = get(query, headers)
    assert answer.status_code == status
    assert answer.json()["error"] == error and says in answer.json()["detail"]


def test_headers_travel_with_the_refusal_and_a_bug_stays_a_500() -> None:
    assert get("raise=unavailable").headers["retry-after"] == "1"
    assert get("raise=refused").headers["retry-after"] == "60"
    assert get("raise=bug").status_code == 500
    assert get("raise=key", {"Idempotency-Key": "a-uuid_1.2:3"}).text == "ok"
    assert get("raise=key").text == "ok"  # no key: a new request each time
