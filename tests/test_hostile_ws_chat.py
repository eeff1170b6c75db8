"""ws_chat against hostile clients.

- A hostile `last_id`: a 1008 close with its reason, never a protocol error. A close reason is
  at most 123 bytes of UTF-8 (RFC 6455 §5.5); the reason for a malformed `last_id` quotes it,
  and was cut to 120 *characters*: a non-ASCII id made it too long.
- The work one client can start is bounded: a reply's tokens (`MAX_TOKENS`), its messages in
  any minute over either transport (`MESSAGE_RATE`), a frame's size before uvicorn buffers it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from urllib.parse import quote

import httpx2
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


# --- a message's work is bounded: its tokens, its sender's rate, its frame's size -------------


def test_a_room_message_with_an_empty_object_is_still_json() -> None:
    """`websocket_text` splices the id into the object's text: `{}` became `{"id":"1-0",}`."""
    from server.apps.ws_chat import websocket_text
    from server.fanout import Message

    for data in ("{}", '{"a":1}', "{ }"):
        frame = json.loads(websocket_text(Message(data, id="1-0", event="reset")))
        assert frame["id"] == "1-0" and frame["event"] == "reset", frame


def test_a_reply_longer_than_the_maximum_is_a_400_naming_it(chat: Server) -> None:
    """`tokens` went up to 100,000 a message: 20 POSTs started 83-minute replies."""
    from server.apps.ws_chat.room import MAX_TOKENS

    assert MAX_TOKENS <= 2000, "a reply of at most 100 s at the default pace"
    answer = httpx2.post(f"{chat.url}/messages", json={"text": "x", "tokens": 100_000}, timeout=10)
    assert answer.status_code == 400, answer.text
    assert str(MAX_TOKENS) in answer.json()["detail"]


def test_a_client_over_the_message_rate_gets_a_429_with_retry_after(
    serve: Callable[..., Server],
) -> None:
    """POST /messages had no rate limit: one client could start as many replies as it liked."""
    env = {"BROKER": "memory", "TOKEN_DELAY": "0", "MESSAGE_RATE": "5"}
    server = serve("server.apps.ws_chat:app", env=env)
    with httpx2.Client(base_url=server.url, timeout=10) as client:
        answers = [client.post("/messages", json={"text": "x", "tokens": 0}) for _ in range(6)]
    assert [a.status_code for a in answers] == [202] * 5 + [429], [a.text for a in answers]
    refused = answers[-1]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert "MESSAGE_RATE" in refused.json()["detail"]


def test_a_websocket_sender_over_the_rate_is_closed_with_1008(
    serve: Callable[..., Server],
) -> None:
    env = {"BROKER": "memory", "TOKEN_DELAY": "0", "MESSAGE_RATE": "3"}
    server = serve("server.apps.ws_chat:app", env=env)

    async def flood() -> tuple[int | None, str | None]:
        url = server.url.replace("http://", "ws://") + "/ws"
        async with connect(url) as socket:
            for _ in range(4):
                await socket.send(json.dumps({"text": "x", "tokens": 0}))
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(socket.recv(), 20)  # a TimeoutError: never closed
            frame = closed.value.rcvd
            return (frame.code, frame.reason) if frame else (None, None)

    code, reason = asyncio.run(flood())
    assert code == 1008 and reason and "MESSAGE_RATE" in reason, (code, reason)


def test_a_frame_over_what_the_app_accepts_is_refused_before_it_is_buffered(
    serve: Callable[..., Server],
) -> None:
    """uvicorn buffered frames up to its default 16 MiB before the app's own check; started
    with the app's `UVICORN_ARGS`, a frame over `WS_MAX_SIZE` is refused by uvicorn (1009)."""
    from server.apps.ws_chat import UVICORN_ARGS, WS_MAX_SIZE

    env = {"BROKER": "memory", "TOKEN_DELAY": "0"}
    server = serve("server.apps.ws_chat:app", env=env, args=UVICORN_ARGS)

    async def send_big() -> tuple[int | None, str | None]:
        url = server.url.replace("http://", "ws://") + "/ws"
        async with connect(url, max_size=None) as socket:
            await socket.send("x" * (WS_MAX_SIZE + 1))
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(socket.recv(), 20)  # a TimeoutError: never closed
            frame = closed.value.rcvd
            return (frame.code, frame.reason) if frame else (None, None)

    code, _ = asyncio.run(send_big())
    assert code == 1009, code
