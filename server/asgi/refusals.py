"""Refusals, one way: the domain raises what is wrong; the app maps each error to an answer.

A module that checks part of a request (a body, a header, a query parameter, a broker that
cannot reach Redis) knows what is wrong and how to fix it, and nothing about HTTP: it raises
its own error (`BadBody`, `BadIdempotencyKey`, `BrokerUnavailable`, ...) whose message says
both. The app says once which status each error is, and one handler writes every answer, a
JSON object the client can show and branch on:

    {"detail": "history=900 is more than HISTORY_MAX (500): ...", "error": "bad_request"}

    app = Starlette(routes=routes, exception_handlers=refusal_handlers({
        BrokerUnavailable: Refusal(503, "unavailable", {"Retry-After": "1"}),
        BadIdempotencyKey: Refusal(400, "bad_request"),
    }))

An endpoint that decides a refusal itself (a query parameter it parses) raises `Refused` with
the status. An error may carry its own `status` (`server.asgi.json_body.BadBody`: 400, 413 or 415)
and `headers` (a `Retry-After` it computed): they win over the mapping. Raised before the
response starts, as every check is, it becomes the answer; nothing is ever a 500 for a request
that was merely wrong.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

__all__ = ["Refusal", "Refused", "refusal_handlers", "refusal_response"]

Handler = Callable[[Request, Exception], Awaitable[Response]]


@dataclass(frozen=True)
class Refusal:
    """How an app answers one kind of error: the status, a short name for it, extra headers."""

    status: int
    error: str
    headers: Mapping[str, str] = field(default_factory=dict)


class Refused(Exception):
    """A refusal the endpoint decides itself: the status, and what is wrong and how to fix it."""

    def __init__(
        self,
        status: int,
        detail: str,
        error: str = "bad_request",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.refusal = Refusal(status, error, headers or {})


def refusal_response(refusal: Refusal, detail: str) -> JSONResponse:
    """The answer: `refusal.status`, its headers, and `{"detail": ..., "error": ...}`."""
    body = {"detail": detail, "error": refusal.error}
    return JSONResponse(body, refusal.status, headers=dict(refusal.headers))


def refusal_handlers(domain: Mapping[type[Exception], Refusal]) -> dict[type[Exception], Handler]:
    """Starlette `exception_handlers`: `Refused` as it says, each error in `domain` as mapped
    (its message the detail; its own `status` and `headers` attributes win, see above)."""

    def answer(refusal: Refusal) -> Handler:
        async def handle(request: Request, error: Exception) -> Response:
            status = getattr(error, "status", None)
            headers = getattr(error, "headers", None)
            if isinstance(status, int) or isinstance(headers, Mapping):
                own = Refusal(
                    status if isinstance(status, int) else refusal.status,
                    refusal.error,
                    {**refusal.headers, **(headers if isinstance(headers, Mapping) else {})},
                )
                return refusal_response(own, str(error))
            return refusal_response(refusal, str(error))

        return handle

    async def refused(request: Request, error: Exception) -> Response:
        assert isinstance(error, Refused)
        return refusal_response(error.refusal, str(error))

    return {Refused: refused, **{kind: answer(refusal) for kind, refusal in domain.items()}}
