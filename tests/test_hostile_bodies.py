"""Hostile request bodies get a clear 4xx from every app that reads JSON: never a 500.

Each app is posted four bodies a client can send by mistake or on purpose: a lone surrogate
written as a JSON escape, nesting 3,000 levels deep, bytes that are not UTF-8, and a body over
the app's size limit. The answer must be a 4xx whose text says what is wrong, and the app must
still answer a good request afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx2
import pytest

from server.course.launcher import Server, start_app

# (app, its environment, the path it takes JSON on, a good body with {} where text goes)
APPS = {
    "broadcast": ("server.apps.broadcast:app", {"BROKER": "memory"}, "/publish", '{"text": %s}'),
    "ws_chat": (
        "server.apps.ws_chat:app",
        {"BROKER": "memory", "TOKEN_DELAY": "0"},
        "/messages",
        '{"text": %s, "tokens": 1}',
    ),
    "fake_openai": (
        "server.apps.fake_openai:app",
        {},
        "/v1/chat/completions",
        '{"model": "m", "messages": [{"role": "user", "content": %s}]}',
    ),
    "fastapi_streams": (
        "server.apps.fastapi_streams:app",
        {},
        "/chat?delay=0",
        '{"message": %s}',
    ),
    "llm_relay": (
        "server.apps.llm_relay:app",
        {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": "none"},
        "/chat",
        '{"messages": [{"role": "user", "content": %s}]}',
    ),
}
DEEP = b"[" * 3000 + b"]" * 3000
HOSTILE = {
    "a lone surrogate in a string": lambda shape: (shape % '"\\ud800"').encode(),
    "a lone surrogate where an object goes": lambda shape: b'"\\ud800"',
    "3,000 levels of nesting": lambda shape: DEEP,
    "bytes that are not UTF-8": lambda shape: (shape % '"caf\xe9"').encode("latin-1"),
    "a body over the limit": lambda shape: (shape % json.dumps("x" * 2_000_000)).encode(),
}


@pytest.fixture(scope="module", params=sorted(APPS))
def app(request: pytest.FixtureRequest) -> Iterator[tuple[Server, str, str]]:
    target, env, path, shape = APPS[request.param]
    with start_app(target, env=env, name=request.param) as server:
        yield server, path, shape


@pytest.mark.parametrize("hostile", sorted(HOSTILE))
def test_a_hostile_body_is_a_4xx_that_says_why(app: tuple[Server, str, str], hostile: str) -> None:
    server, path, shape = app
    body: Callable[[str], bytes] = HOSTILE[hostile]
    # A key for fake_openai, which checks it first (401) and would never read the body; the
    # other apps ignore it.
    headers = {"Content-Type": "application/json", "Authorization": "Bearer sk-test"}
    with httpx2.Client(base_url=server.url, timeout=30) as client:
        response = client.post(path, content=body(shape), headers=headers)
        assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
        assert len(response.text) > 10, response.text  # a reason, not only a status
        good = client.post(path, content=(shape % '"hi"').encode(), headers=headers)
        assert good.status_code < 500, (good.status_code, good.text[:300])
