"""`?history=K` is bounded: one request used to be able to ask for up to 999,999,999 past
messages, and read the whole stream (`STREAM_MAXLEN` entries of up to 64 KB each) into memory
at once. Above `HISTORY_MAX` it is a 400 (a 1008 close on the WebSocket) that names the limit."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx2
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from server.course.launcher import Server, start_app, start_redis
from server.fanout import HISTORY_MAX

pytestmark = pytest.mark.redis

APPS = {
    "broadcast": ("server.apps.broadcast:app", {}),
    "ws_chat": ("server.apps.ws_chat:app", {"TOKEN_DELAY": "0"}),
}


@pytest.fixture(scope="module", params=sorted(APPS))
def app(request: pytest.FixtureRequest, redis_module: Server) -> Iterator[tuple[str, Server]]:
    target, env = APPS[request.param]
    env = {**env, "BROKER": "streams", "REDIS_URL": redis_module.url}
    with start_app(target, env=env, name=request.param) as server:
        yield request.param, server


@pytest.fixture(scope="module")
def redis_module() -> Iterator[Server]:
    with start_redis() as server:
        yield server


def test_history_over_the_maximum_is_a_400_naming_it(app: tuple[str, Server]) -> None:
    _, server = app
    for asked in (HISTORY_MAX + 1, 999_999_999):
        response = httpx2.get(f"{server.url}/events?history={asked}&limit=1", timeout=10)
        assert response.status_code == 400, response.text
        assert "HISTORY_MAX" in response.text and str(HISTORY_MAX) in response.text


def test_history_up_to_the_maximum_is_served(app: tuple[str, Server]) -> None:
    _, server = app
    with httpx2.stream("GET", f"{server.url}/events?history={HISTORY_MAX}", timeout=10) as answer:
        assert answer.status_code == 200


def test_the_websocket_closes_with_1008_naming_the_maximum(redis_module: Server) -> None:
    """ws_chat's WebSocket takes ?history= too (broadcast has no WebSocket)."""
    target, env = APPS["ws_chat"]
    env = {**env, "BROKER": "streams", "REDIS_URL": redis_module.url}

    async def ask(url: str) -> tuple[int | None, str | None]:
        async with connect(url) as socket:
            with pytest.raises(ConnectionClosed) as closed:
                await socket.recv()
            frame = closed.value.rcvd
            return (frame.code, frame.reason) if frame else (None, None)

    with start_app(target, env=env, name="ws_chat") as server:
        url = server.url.replace("http://", "ws://") + f"/ws?history={HISTORY_MAX + 1}"
        code, reason = asyncio.run(ask(url))
    assert code == 1008 and reason and "HISTORY_MAX" in reason, (code, reason)
