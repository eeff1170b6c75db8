"""Counting the bytes an HTTP client really moves, through httpx's and httpcore's public hooks.

    meter = Meter()
    async with httpx.AsyncClient(transport=CountingTransport(meter)) as client:
        await client.get(url)
    print(meter.sent, meter.received)   # request line + headers + body; status line + ...

Lesson 02 claims that an empty poll costs hundreds of bytes for a two-byte answer. To show it,
the bytes are counted where they meet the socket: every write and every read of the client's
connections, so request and response heads, bodies and chunked framing are all in (TCP/IP
packet headers are not: the kernel adds those).

How, in two public extension points:

- httpcore, the HTTP engine under httpx, opens its sockets through a *network backend*, and
  its connection pool takes one as an argument (`AsyncConnectionPool(network_backend=...)`,
  documented in httpcore's "Network backends" as the way to record or mock network I/O). Ours
  hands out streams that add up the length of each write and read.
- httpx takes any transport that implements `AsyncBaseTransport.handle_async_request`.
  `CountingTransport` is one over that pool: it maps an `httpx.Request` to httpcore's request,
  httpcore's response back to an `httpx.Response`, and httpcore's errors to httpx's, as
  httpx's own `AsyncHTTPTransport` does, so code using it sees the exceptions it expects.

Why not the other ways: swapping the pool inside httpx's `AsyncHTTPTransport` (its private
`_pool`) breaks with any httpx release; the `network_stream` response extension hands over the
socket only once the response head has been read, too late to count the request and the
head; the course's wiretap (`server.course.wiretap`) counts exactly, but as a proxy process in
the path it adds a hop to the delays lesson 02 measures and writes every byte to disk, right
for looking at a few requests, wrong for a hundred simulated users.

Plain HTTP only: over TLS, the bytes on the wire are not the bytes httpcore writes.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

# uvicorn closes a keep-alive connection after 5 idle seconds. A client that reuses it at that
# very moment gets "Server disconnected without sending a response", so the pool drops idle
# connections first (httpx's own default is 5 s, a race with uvicorn's).
KEEPALIVE_EXPIRY = 4.0


@dataclass
class Meter:
    """Bytes written to and read from the sockets of one client."""

    sent: int = 0
    received: int = 0

    @property
    def total(self) -> int:
        return self.sent + self.received


class CountingStream(httpcore.AsyncNetworkStream):
    """A connection that adds the length of each write and read to a `Meter`."""

    def __init__(self, stream: httpcore.AsyncNetworkStream, meter: Meter) -> None:
        self._stream = stream
        self._meter = meter

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = await self._stream.read(max_bytes, timeout)
        self._meter.received += len(data)
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._stream.write(buffer, timeout)
        self._meter.sent += len(buffer)

    async def aclose(self) -> None:
        await self._stream.aclose()

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class CountingBackend(httpcore.AsyncNetworkBackend):
    """httpcore's asyncio backend, with every TCP connection wrapped in a `CountingStream`."""

    def __init__(self, meter: Meter) -> None:
        self._backend = httpcore.AnyIOBackend()
        self._meter = meter

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        return CountingStream(stream, self._meter)

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class CountingTransport(httpx.AsyncBaseTransport):
    """An httpx transport whose connections count every byte into `meter` (plain HTTP only).

    tests/test_byte_meter.py checks that the counts are exactly the bytes of the request and
    the response as they go over the wire.
    """

    def __init__(self, meter: Meter, *, keepalive_expiry: float = KEEPALIVE_EXPIRY) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            network_backend=CountingBackend(meter), keepalive_expiry=keepalive_expiry
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme != "http":
            raise httpx.UnsupportedProtocol(
                f"CountingTransport counts plain http only, not {request.url.scheme!r}: "
                "over TLS the bytes on the wire are not the bytes written"
            )
        assert isinstance(request.stream, AsyncIterable)  # an AsyncClient's requests are
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _httpx_errors():
            response = await self._pool.handle_async_request(core_request)
        assert isinstance(response.stream, AsyncIterable)  # an async pool's responses are
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


class _ResponseStream(httpx.AsyncByteStream):
    """httpcore's response body as httpx reads it, with httpx's errors."""

    def __init__(self, stream: AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        # Closing the body gives the connection back to the pool (or drops it, if unread).
        close = getattr(self._stream, "aclose", None)
        if close is not None:
            await close()


# httpcore's exceptions and the httpx ones callers catch, the most specific first.
_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
)


@contextmanager
def _httpx_errors() -> Iterator[None]:
    try:
        yield
    except Exception as error:
        for core, ours in _ERRORS:
            if isinstance(error, core):
                raise ours(str(error)) from error
        raise
