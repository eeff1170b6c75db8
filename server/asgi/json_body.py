"""A request's JSON body, read with a size limit and parsed strictly: every bad body is a 4xx.

Python's `json.loads` accepts three things a server must refuse, and each used to turn into a
500 somewhere in the course's apps:

- a lone surrogate written as an escape (`"\\ud800"`): valid JSON text, but not a string any
  UTF-8 encoder can write back out, so the first `encode()` (a log line, a Redis write, the
  response itself, FastAPI's own 422 that echoes the input) raises;
- deep nesting (`[[[[...]]]]` 3,000 levels): `RecursionError`, which is not a `ValueError`;
- bytes that are not UTF-8, which `json.loads(bytes)` may guess another encoding for.

And reading the whole body before looking at its size lets one request fill the worker's memory.
`read_json` reads at most `limit` bytes (a `Content-Length` over it is refused before a byte is
read) and `parse_json` refuses each case above with `BadBody`: a status (400, 413, 415) and a
sentence saying what is wrong and how to send it right. The apps map it to their own response.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from fastapi import HTTPException, Request
from pydantic import BaseModel, ValidationError

__all__ = [
    "MAX_DEPTH",
    "BadBody",
    "json_model",
    "openapi_body",
    "parse_json",
    "read_body",
    "read_json",
]

M = TypeVar("M", bound=BaseModel)
SURROGATE = re.compile("[\ud800-\udfff]")
MAX_DEPTH = 32
"""Nesting no chat message needs more of; far below Python's recursion limit."""


class BadBody(ValueError):
    """The body was refused: `status` is the HTTP status, the message says why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to be over `limit` bytes."""
    too_big = f"the body is too large: at most {limit} bytes"
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BadBody(413, too_big)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BadBody(413, too_big)
    return bytes(body)


async def read_json(request: Request, *, limit: int, require_type: bool = False) -> Any:
    """The body as JSON, bounded and strict. `require_type`: refuse a non-JSON Content-Type
    (415), which stops a plain HTML form on another site from posting a `text/plain` body."""
    if require_type:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise BadBody(415, f"send the body as application/json, not {kind or 'no type'}")
    return parse_json(await read_body(request, limit))


def json_model(model: type[M], *, limit: int) -> Callable[[Request], Coroutine[Any, Any, M]]:
    """A FastAPI dependency reading a `model` from the body with `read_json`'s guarantees.

    FastAPI's own body parsing answers 3,000-deep JSON with a 500, and its 422 echoes the input,
    which it cannot encode when the input holds a lone surrogate. This one answers 4xx, always:

        async def chat(body: Annotated[Chat, Depends(json_model(Chat, limit=65_536))]): ...
    """

    async def read(request: Request) -> M:
        try:
            return model.model_validate(await read_json(request, limit=limit))
        except BadBody as error:
            raise HTTPException(error.status, str(error)) from None
        except ValidationError as error:
            errors = error.errors(include_url=False, include_context=False, include_input=False)
            raise HTTPException(422, errors) from None

    return read


def openapi_body(model: type[BaseModel]) -> dict[str, Any]:
    """The ``requestBody`` of a route that reads `model` with `json_model`, for its
    ``openapi_extra=``: FastAPI cannot see a body a dependency reads, and without this the
    schema (``/docs``, schemathesis) would say the route takes none. Nested models inlined."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(defs[node["$ref"].rsplit("/", 1)[1]])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    json_schema = {"schema": inline(schema)}
    return {"requestBody": {"required": True, "content": {"application/json": json_schema}}}


def parse_json(body: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON text; `BadBody` (400) for invalid UTF-8, invalid JSON, depth or a surrogate."""
    if isinstance(body, bytes):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as error:
            where = f"byte {body[error.start]:#04x} at position {error.start}"
            raise BadBody(400, f"the body is not valid UTF-8 ({where})") from None
    else:
        text = body
    depth = nesting(text)
    if depth > max_depth:
        raise BadBody(400, f"the JSON is nested {depth} deep: at most {max_depth} levels")
    try:
        value = json.loads(text)
    except ValueError as error:
        raise BadBody(400, f"the body is not valid JSON ({error})") from None
    if not encodable(value):
        raise BadBody(400, "the JSON holds a lone surrogate (\\ud800-\\udfff), not text")
    return value


def nesting(text: str) -> int:
    """The deepest nesting of arrays and objects in JSON text, strings skipped, without parsing."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def encodable(value: Any) -> bool:
    """True if every string in a parsed JSON value (keys included) can be written as UTF-8."""
    if isinstance(value, str):
        return value.isascii() or not SURROGATE.search(value)
    if isinstance(value, list):
        return all(encodable(item) for item in value)
    if isinstance(value, dict):
        return all(encodable(key) and encodable(item) for key, item in value.items())
    return True
