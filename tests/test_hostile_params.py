"""Lesson demo apps against bad parameters and frames: a clear refusal, never a dropped connection.

bad_gateway's `?type=` with a CR, LF or NUL used to drop the connection with no answer, and
`?status=1xx` sent a response no client can frame; http_demo's WebSocket echo raised `KeyError`
on a binary frame instead of closing with 1003 (unsupported data).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx2
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from server.course.launcher import Server, start_app


@pytest.fixture(scope="module")
def gateway() -> Iterator[Server]:
    with start_app("server.apps.bad_gateway:app", name="bad_gateway") as server:
        yield server


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("type=text/html%0D%0AX-Forged:%201", "type must be a media type"),
        ("type=text/plain%00", "type must be a media type"),
        ("status=101", "status must be an HTTP status code from 200 to 599"),
        ("status=99", "status must be an HTTP status code from 200 to 599"),
    ],
)
def test_a_bad_parameter_is_a_400_that_says_why(gateway: Server, query: str, reason: str) -> None:
    response = httpx2.get(f"{gateway.url}/?{query}", timeout=10)
    assert response.status_code == 400 and reason in response.text, response.text
    assert "x-forged" not in response.headers


def test_a_good_type_and_status_are_sent_as_asked(gateway: Server) -> None:
    response = httpx2.get(f"{gateway.url}/?status=503&type=text/plain;%20charset=utf-8")
    assert response.status_code == 503
    assert response.headers["content-type"] == "text/plain; charset=utf-8"


def test_the_echo_closes_with_1003_on_a_binary_frame() -> None:
    async def send_binary(url: str) -> int | None:
        async with connect(url) as socket:
            await socket.send(b"\x00\x01")
            with pytest.raises(ConnectionClosed) as closed:
                await socket.recv()
            return closed.value.rcvd.code if closed.value.rcvd else None

    with start_app("server.apps.http_demo:app", name="http_demo") as demo:
        url = demo.url.replace("http://", "ws://") + "/echo"
        assert asyncio.run(send_binary(url)) == 1003
