"""ws_chat's WebSocket against a hostile `last_id`: a 1008 close with its reason, never a
protocol error. A close reason is at most 123 bytes of UTF-8 (RFC 6455 §5.5); the reason for a
malformed `last_id` quotes it, and was cut to 120 *characters*: a non-ASCII id made it too long."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from server.course.launcher import Server, start_app, start_redis

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def chat() -> Iterator[Server]:
    with start_redis() as redis:
        env = {"BROKER": "streams", "REDIS_URL": redis.url, "TOKEN_DELAY": "0"}
        with start_app("server.apps.ws_chat:app", env=env, name="ws_chat") as server:
            yield server


async def close_of(url: str) -> tuple[int | None, str | None]:
    """The close frame the server sent (code, reason), or (None, None) for none."""
    async with connect(url) as socket:
        with pytest.raises(ConnectionClosed) as closed:
            await socket.recv()
        frame = closed.value.rcvd
        return (frame.code, frame.reason) if frame else (None, None)


@pytest.mark.parametrize("last_id", ["é" * 60, "ü" * 200, "碼" * 50, "x" * 300])
def test_a_malformed_last_id_closes_with_1008_and_a_reason(chat: Server, last_id: str) -> None:
    url = chat.url.replace("http://", "ws://") + f"/ws?last_id={quote(last_id)}"
    code, reason = asyncio.run(close_of(url))
    assert code == 1008, (code, reason)
    assert reason and "last_id must be a Redis stream id" in reason
    assert len(reason.encode()) <= 123
