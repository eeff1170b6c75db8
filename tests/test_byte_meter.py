"""Byte counting through httpx2's and httpcore2's public hooks: exact, and with httpx2's errors."""

from __future__ import annotations

import asyncio
import socket

import httpx2
import pytest

from server.clients.byte_meter import CountingTransport, Meter
from server.course.launcher import Server

APP = "server.apps.price_feed:app"


@pytest.fixture
def quiet(serve) -> Server:
    return serve(APP, env={"EVENT_RATE": "0"})


def head(start_line: str, headers: httpx2.Headers) -> bytes:
    fields = b"".join(name + b": " + value + b"\r\n" for name, value in headers.raw)
    return start_line.encode() + b"\r\n" + fields + b"\r\n"


def test_the_counts_are_exactly_the_bytes_on_the_wire(quiet):
    for _ in range(2):
        httpx2.post(f"{quiet.url}/publish").raise_for_status()

    async def fetch() -> tuple[Meter, list[httpx2.Response]]:
        meter = Meter()
        async with httpx2.AsyncClient(transport=CountingTransport(meter)) as client:
            # Two requests on one keep-alive connection, then one with a body.
            responses = [await client.get(f"{quiet.url}/poll", params={"since": s}) for s in (0, 2)]
            responses.append(await client.post(f"{quiet.url}/publish", params={"price": 99}))
        return meter, responses

    meter, responses = asyncio.run(fetch())
    sent = received = 0
    for response in responses:
        request = response.request
        target = request.url.raw_path.decode()
        sent += len(head(f"{request.method} {target} HTTP/1.1", request.headers) + request.content)
        status = f"HTTP/1.1 {response.status_code} {response.reason_phrase}"
        received += len(head(status, response.headers) + response.content)
    assert responses[1].json() == []
    assert (meter.sent, meter.received) == (sent, received)


def test_a_streamed_body_is_counted_with_its_chunked_framing(quiet):
    httpx2.post(f"{quiet.url}/publish").raise_for_status()

    async def stream() -> tuple[Meter, httpx2.Response, bytes]:
        meter = Meter()
        async with (
            httpx2.AsyncClient(transport=CountingTransport(meter)) as client,
            client.stream("GET", f"{quiet.url}/sse", params={"since": 0, "limit": 1}) as response,
        ):
            body = b"".join([chunk async for chunk in response.aiter_raw()])
        return meter, response, body

    meter, response, body = asyncio.run(stream())
    assert response.headers["transfer-encoding"] == "chunked"
    framing = f"{len(body):x}\r\n".encode() + b"\r\n" + b"0\r\n\r\n"  # one chunk, then the end
    status = f"HTTP/1.1 {response.status_code} {response.reason_phrase}"
    assert meter.received == len(head(status, response.headers) + body + framing)


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_failures_reach_the_caller_as_httpx_exceptions(quiet):
    async def attempt(url: str, **kwargs: object) -> None:
        async with httpx2.AsyncClient(transport=CountingTransport(Meter()), **kwargs) as client:
            await client.get(url)

    with pytest.raises(httpx2.ConnectError):
        asyncio.run(attempt(f"http://127.0.0.1:{unused_port()}/"))
    with pytest.raises(httpx2.ReadTimeout):  # a 5 s hold against a 0.2 s read timeout
        asyncio.run(attempt(f"{quiet.url}/long-poll?since=0&timeout=5", timeout=0.2))
    with pytest.raises(httpx2.UnsupportedProtocol, match="plain http only"):
        asyncio.run(attempt("https://127.0.0.1:1/"))
