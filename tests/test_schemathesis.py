"""Schemathesis over every app that publishes an OpenAPI schema: whatever a client sends, no 5xx.

Schemathesis reads the app's own ``/openapi.json`` and generates requests for every operation,
both ones that fit the schema (positive: the 4xx a limit gives, e.g. the blocking demo's
``n × delay`` cap) and ones that do not (negative: wrong types, out-of-range numbers, missing
fields, strange text). Each is sent to the app running under uvicorn on a free port, not
in-process: half of these routes are endless streams, which an in-process ASGI client reads to
the end before it returns (so the call never would), and a real server is also where an answer
that cannot be encoded fails. A stream is read up to its first chunk, by which time its status
is known; then the connection is closed, as a browser that navigates away closes it.

Two things fail the test: a 5xx, with the request that got it as a curl command, and a
traceback in the server's log, which catches a stream that broke after its 200 had gone out.
Each app's tally (tried, refused with a 4xx, 5xx) is printed: ``pytest -s`` shows it.

The apps built on Starlette alone (broadcast, ws_chat, the capstone, fake_openai, price_feed)
publish no schema; their hostile bodies and parameters are in ``test_hostile_*.py``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.core.result import Err
from schemathesis.generation.modes import GenerationMode

from server.course.launcher import Server, start_app

# About a minute in all (most of it the streams' own waits: the blocking demo sleeps up to its
# cap): a bench-length run, left out of `make test-quick`; `make test` runs it.
pytestmark = pytest.mark.bench

EXAMPLES = 12  # per operation and mode: the apps have 28 operations, two modes each
FAKE_MODEL = {"FAKE_OPENAI_TTFT": "0", "FAKE_OPENAI_TPS": "0"}
# App, its environment; "{llm}" is the fake model's base URL, for the apps that ask one.
APPS: dict[str, tuple[str, dict[str, str]]] = {
    "fastapi_streams": ("server.apps.fastapi_streams:app", {}),
    "llm_relay": ("server.apps.llm_relay:app", {"OPENAI_BASE_URL": "{llm}"}),
    "seed_chat": ("server.apps.seed_chat:app", {"OPENAI_BASE_URL": "{llm}"}),
    "sse_samples": ("server.apps.sse_samples:app", {}),
    "stamped_events": ("server.apps.stamped_events:app", {}),
    "http_demo": ("server.apps.http_demo:app", {}),
}


ASGI_ERROR = "Exception in ASGI application"  # how uvicorn logs what the app raised


def upstream_known(error: str) -> bool:
    """FastAPI 0.165's own SSE keepalive task raises `BrokenResourceError` when the client
    leaves while it is handing on an event (FastAPI discussion #15725; the fix, PR #15824, was
    closed unmerged). The client has gone and its 200 was complete so far: nothing to answer."""
    trace = error.split("\nINFO:")[0]  # up to the next request's log line
    only = "(1 sub-exception)" in trace and "_keepalive_inserter" in trace
    return only and "anyio.BrokenResourceError" in trace


@dataclass
class Tally:
    """What one app answered: counts by operation and status class, and every 5xx's repro."""

    answers: Counter[tuple[str, int]] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    injected: int = 0  # 5xx the request asked for (fake_openai's fault headers)

    def line(self, name: str) -> str:
        tried = sum(self.answers.values())
        refused = sum(n for (_, status), n in self.answers.items() if 400 <= status < 500)
        failed = sum(n for (_, status), n in self.answers.items() if status >= 500)
        asked = f" ({self.injected} more asked for)" if self.injected else ""
        return f"{name}: {tried} requests, {refused} clear 4xx, {failed - self.injected} 5xx{asked}"


def send(client: httpx2.Client, case: Any, base_url: str) -> int:
    """Send one generated request and read its answer up to the first chunk: the status."""
    request = case.as_transport_kwargs(base_url=base_url)  # the keywords `requests` takes
    data = request.pop("data", None)
    if isinstance(data, bytes | str):
        request["content"] = data
    elif data is not None:
        request["data"] = data
    with client.stream(**request) as response:
        for _ in response.iter_raw():
            break
        return response.status_code


def fuzz(server: Server, schema: Any = None) -> Tally:
    """Every operation of the app's schema (its own `/openapi.json` unless given), `EXAMPLES`
    positive and negative requests each. A 5xx the request asked for is not a failure."""
    if schema is None:
        schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    tally = Tally()

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,  # the same requests in every run
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def one(client: httpx2.Client, case: Any) -> None:
        status = send(client, case, server.url)
        tally.answers[case.operation.label, status] += 1
        if status >= 500 and INJECTED.intersection(case.headers or {}):
            tally.injected += 1
        elif status >= 500:
            tally.failures.append(f"{status}: {case.as_curl_command()}")

    with httpx2.Client(timeout=30) as client:
        for result in schema.get_all_operations():
            if isinstance(result, Err):  # the app's schema itself is broken: say so
                raise result.err()
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                cases = result.ok().as_strategy(generation_mode=mode)
                # Unsatisfiable: an operation with no parameter to get wrong has no negative case.
                with suppress(Unsatisfiable):
                    given(case=cases)(one)(client)
    return tally


# fake_openai publishes no schema (the real API's is OpenAI's), so here is the part it serves:
# the body fields it checks and its fault headers. Not the timing ones: a request may ask for
# a 600 s first token, and fake_openai's knob tests check those bounds.
INJECTED = {"x-fake-status", "x-fake-fail-after"}  # a 5xx on purpose
FAKE_HEADERS = [
    {"name": name, "in": "header", "required": required, "schema": schema}
    for name, required, schema in [
        ("Authorization", True, {"type": "string", "pattern": "^Bearer sk-[a-z]{1,8}$"}),
        ("x-fake-tokens", False, {"type": "integer", "minimum": 1, "maximum": 200}),
        ("x-fake-status", False, {"type": "integer", "minimum": 400, "maximum": 599}),
        ("x-fake-retry-after", False, {"type": "number", "minimum": 0, "maximum": 3600}),
        ("x-fake-fail-after", False, {"type": "integer", "minimum": 0, "maximum": 200}),
    ]
]
MESSAGE = {
    "type": "object",
    "required": ["role"],
    "properties": {
        "role": {"enum": ["user", "system", "assistant"]},
        "content": {"type": "string"},
    },
}
COMMON = {"model": {"type": "string"}, "stream": {"type": "boolean"}, "seed": {"type": "integer"}}
POSITIVE = {"type": "integer", "minimum": 1}


def fake_operation(fields: dict[str, Any], required: list[str]) -> dict[str, Any]:
    body = {"type": "object", "required": required, "properties": {**COMMON, **fields}}
    return {
        "post": {
            "parameters": FAKE_HEADERS,
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": {"200": {"description": "the reply"}},
        }
    }


FAKE_OPENAI_SCHEMA = {
    "openapi": "3.0.3",
    "info": {"title": "fake_openai, the part the course serves", "version": "1"},
    "paths": {
        "/v1/chat/completions": fake_operation(
            {
                "messages": {"type": "array", "minItems": 1, "items": MESSAGE},
                "max_tokens": POSITIVE,
                "max_completion_tokens": POSITIVE,
                "stream_options": {"properties": {"include_usage": {"type": "boolean"}}},
            },
            ["model", "messages"],
        ),
        "/v1/responses": fake_operation(
            {
                "input": {"anyOf": [{"type": "string"}, {"type": "array", "items": MESSAGE}]},
                "instructions": {"type": "string"},
                "max_output_tokens": POSITIVE,
            },
            ["model", "input"],
        ),
    },
}


@pytest.fixture(scope="module")
def llm() -> Iterator[Server]:
    with start_app("server.apps.fake_openai:app", env=FAKE_MODEL, name="fake_openai") as server:
        yield server


@pytest.mark.parametrize("name", sorted(APPS))
def test_no_request_the_schema_allows_or_forbids_is_a_5xx(name: str, llm: Server) -> None:
    target, env = APPS[name]
    env = {key: value.format(llm=f"{llm.url}/v1") for key, value in env.items()}
    if "OPENAI_BASE_URL" in env:
        env["OPENAI_API_KEY"] = "sk-schemathesis"
    with start_app(target, env=env, name=name) as server:
        tally = fuzz(server)
        log = server.log_path.read_text(errors="replace")
    print(tally.line(name))
    assert not tally.failures, "\n".join(tally.failures[:10])
    errors = [error for error in log.split(ASGI_ERROR)[1:] if not upstream_known(error)]
    assert not errors, errors[0][:3000]
    assert sum(tally.answers.values()) >= EXAMPLES, tally.answers  # it did send requests


def test_fake_openai_answers_no_request_with_a_5xx_it_was_not_asked_for(llm: Server) -> None:
    tally = fuzz(llm, schemathesis.openapi.from_dict(FAKE_OPENAI_SCHEMA))
    print(tally.line("fake_openai"))
    assert not tally.failures, "\n".join(tally.failures[:10])
    errors = llm.log_path.read_text(errors="replace").split(ASGI_ERROR)[1:]
    assert not errors, errors[0][:3000]
    assert sum(tally.answers.values()) >= EXAMPLES, tally.answers
