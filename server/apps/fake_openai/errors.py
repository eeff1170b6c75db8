"""What the fake server refuses, and how: OpenAI's error object, with the status the real API uses.

Every refusal is the JSON the `openai` client knows how to read,

    {"error": {"message": "...", "type": "invalid_request_error", "param": "messages", "code": ...}}

so the client raises the matching exception (`BadRequestError` for a 400,
`AuthenticationError` for a 401, `RateLimitError` for a 429) with the message, and a learner
who sends something wrong reads what was wrong instead of a bare ``500 Internal Server Error``.

Checking a request body is done as the real API does it, field by field, with its wording
("Invalid type for 'messages': expected an array, but got a string instead."): a route reads
the body with `json_object` and each field with `field`, which raise `InvalidRequest`; the
app's exception handler (`invalid_request`) turns that into the 400.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from server.apps.fake_openai.model import GENERATIONS, Knobs
from server.asgi.json_body import BadBody, parse_json, read_body

BAD_KEY = "sk-invalid"
JSON_NAMES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
              int: "an integer", float: "a decimal", type(None): "null"}  # fmt: skip


def error_body(
    message: str, type_: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """OpenAI's error JSON, which the client turns into its exception classes."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class InvalidRequest(Exception):
    """A request the real API would refuse with a 400, and why."""

    def __init__(
        self, message: str, param: str | None = None, code: str | None = None, status: int = 400
    ) -> None:
        super().__init__(message)
        self.message, self.param, self.code, self.status = message, param, code, status


async def invalid_request(request: Request, error: Exception) -> Response:
    """The app's handler for `InvalidRequest`: the 400 (413 for a body over `MAX_BODY`) the
    `openai` client expects."""
    assert isinstance(error, InvalidRequest)
    body = error_body(error.message, "invalid_request_error", error.code, error.param)
    return JSONResponse(body, error.status)


# --- the body, field by field ----------------------------------------------------------------


def json_name(value: Any) -> str:
    """What JSON calls the type of `value` ("an array", "a string", ...)."""
    return JSON_NAMES.get(type(value), type(value).__name__)


MAX_BODY = 1 << 20
"""Bytes in a request body: about twice the text gpt-4o-mini's 128k-token context holds."""


async def json_object(request: Request) -> dict[str, Any]:
    """The request body, which must be a JSON object in UTF-8, at most `MAX_BODY` bytes.

    Read with `server.asgi.json_body`, so a lone surrogate (which no encoder can write back out),
    3,000-deep nesting (a `RecursionError`) and an endless body are refusals, not 500s."""
    try:
        body = parse_json(await read_body(request, MAX_BODY))
    except BadBody as error:
        hint = (
            " The API expects a JSON object: send it with json=... (httpx2) or let the openai "
            "client do it."
            if "not valid JSON" in str(error)
            else ""
        )
        message = f"We could not parse the JSON body of your request: {error}.{hint}"
        raise InvalidRequest(message, status=error.status) from None
    if not isinstance(body, dict):
        raise InvalidRequest(
            f"Invalid type for the request body: expected an object, but got "
            f"{json_name(body)} instead.",
            code="invalid_type",
        )
    return body


def check_type(value: Any, param: str, *kinds: type) -> Any:
    """`value` if it is one of `kinds` (a bool is not an int, though Python says so)."""
    if isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds):
        return value
    names = " or ".join(JSON_NAMES[kind] for kind in kinds)
    raise InvalidRequest(
        f"Invalid type for '{param}': expected {names}, but got {json_name(value)} instead.",
        param,
        "invalid_type",
    )


def field(
    body: Mapping[str, Any],
    name: str,
    *kinds: type,
    required: bool = False,
    minimum: int | None = None,
    param: str = "",
) -> Any:
    """The value of `name` in `body`, checked: None if absent or null (unless `required`)."""
    param = param or name
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidRequest(
                f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
            )
        return None
    check_type(value, param, *kinds)
    if minimum is not None and value < minimum:
        raise InvalidRequest(
            f"Invalid '{param}': integer below minimum value. Expected a value >= {minimum}, "
            f"but got {value} instead.",
            param,
            "integer_below_min_value",
        )
    return value


def objects(
    body: Mapping[str, Any], name: str, *, required: bool = False, text: bool = False
) -> str | list[dict[str, Any]] | None:
    """An array of objects under `name` (a conversation), or, with `text`, a plain string."""
    value = field(body, name, *((str, list) if text else (list,)), required=required)
    if isinstance(value, list):
        if not value:
            raise InvalidRequest(
                f"Invalid '{name}': empty array. Expected an array with minimum length 1, "
                "but got an empty array instead.",
                name,
                "empty_array",
            )
        for index, item in enumerate(value):
            check_type(item, f"{name}[{index}]", dict)
    return value


def messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Chat's ``messages``: objects with a ``role`` and a ``content`` the model can read."""
    value = objects(body, "messages", required=True)
    assert isinstance(value, list)
    for index, message in enumerate(value):
        where = f"messages[{index}]"
        field(message, "role", str, required=True, param=f"{where}.role")
        if message.get("content") is not None:
            check_type(message["content"], f"{where}.content", str, list)
    return value


# --- keys, knobs and injected failures --------------------------------------------------


async def admit(request: Request) -> tuple[Knobs, dict[str, Any]] | Response:
    """What every ``/v1`` request goes through, in the real API's order: counted, the key
    checked (401), then this request's knobs (a malformed ``x-fake-*`` header is a 400), an
    injected error status, and the body, which must be a JSON object (400).

    Returns the knobs and the body, or the response that refuses the request.
    """
    request.state.stats.add(GENERATIONS, "requests")
    if (rejected := check_key(request)) is not None:
        return rejected
    try:
        knobs = request.state.knobs.override(request.headers, Knobs.header)
    except ValueError as error:
        raise InvalidRequest(str(error), code="invalid_header") from None
    if (rejected := injected_status(knobs.status, knobs.retry_after)) is not None:
        return rejected
    return knobs, await json_object(request)


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


def injected_status(status: int | None, retry_after: float) -> Response | None:
    """The error response asked for with x-fake-status, else None."""
    if status is None:
        return None
    if status == 429:
        message = (
            f"Rate limit reached (injected by the course's local server). "
            f"Please try again in {retry_after:g}s."
        )
        return JSONResponse(
            error_body(message, "requests", "rate_limit_exceeded"),
            429,
            # Retry-After counts whole seconds; the client prefers the finer retry-after-ms.
            headers={
                "retry-after": str(math.ceil(retry_after)),
                "retry-after-ms": str(round(retry_after * 1000)),
            },
        )
    message = "The server had an error while processing your request (injected)."
    return JSONResponse(error_body(message, "server_error"), status)


def injected_failure() -> JSONResponse:
    """A non-streamed request with a failure injected: the whole request fails with a 500."""
    message = "The model failed while generating (injected)."
    return JSONResponse(error_body(message, "server_error"), 500)
