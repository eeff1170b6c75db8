"""Counting the bytes an HTTP client really moves, through httpx2's and httpcore2's public hooks.

    meter = Meter()
    async with httpx2.AsyncClient(transport=CountingTransport(meter)) as client:
        await client.get(url)
    print(meter.sent, meter.received)   # request line + headers + body; status line + ...

Lesson 02 claims that an empty poll costs hundreds of bytes for a two-byte answer. To show it,
the bytes are counted where they meet the socket: every write and every read of the client's
connections, so request and response heads, bodies and chunked framing are all in (TCP/IP
packet headers are not: the kernel adds those).

How, in two public extension points:

- httpcore2, the HTTP engine under httpx2 (as httpcore is under httpx), opens its sockets
  through a *network backend*, and its connection pool takes one as an argument
  (`AsyncConnectionPool(network_backend=...)`, documented in httpcore's "Network backends" as
  the way to record or mock network I/O). Ours hands out streams that add up the length of each
  write and read.
- httpx2 takes any transport that implements `AsyncBaseTransport.handle_async_request`.
  `CountingTransport` is one over that pool: it maps an `httpx2.Request` to httpcore2's request,
  httpcore2's response back to an `httpx2.Response`, and httpcore2's errors to httpx2's, as
  httpx2's own `AsyncHTTPTransport` does, so code using it sees the exceptions it expects.

Why not the other ways: swapping the pool inside httpx2's `AsyncHTTPTransport` (its private
`_pool`) breaks with any httpx2 release; the `network_stream` response extension hands over the
socket only once the response head has been read, too late to count the request and the
head; the course's wiretap (`server.course.wiretap`) counts exactly, but as a proxy process in
the path it adds a hop to the delays lesson 02 measures and writes every byte to disk, right
for looking at a few requests, wrong for a hundred simulated users.

Plain HTTP only: over TLS, the bytes on the wire are not the bytes httpcore2 writes.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpcore2
import httpx2

# uvicorn closes a keep-alive connection after 5 idle seconds. A client that reuses it at that
# very moment gets "Server disconnected without sending a response", so the pool drops idle
# connections first (httpx2's own default is 5 s, a race with uvicorn's).
KEEPALIVE_EXPIRY = 4.0


@dataclass
class Meter:
    """Bytes written to and read from the sockets of one client."""

    sent: int = 0
    received: int = 0

    @property
    def total(self) -> int:
        return self.sent + self.received


class CountingStream(httpcore2.AsyncNetworkStream):
    """A connection that adds the length of each write and read to a `Meter`."""

    def __init__(self, stream: httpcore2.AsyncNetworkStream, meter: Meter) -> None:
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


class CountingBackend(httpcore2.AsyncNetworkBackend):
    """httpcore2's asyncio backend, with every TCP connection wrapped in a `CountingStream`."""

    def __init__(self, meter: Meter) -> None:
        self._backend = httpcore2.AnyIOBackend()
        self._meter = meter

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        stream = await self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        return CountingStream(stream, self._meter)

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class CountingTransport(httpx2.AsyncBaseTransport):
    """An httpx2 transport whose connections count every byte into `meter` (plain HTTP only).

    tests/test_byte_meter.py checks that the counts are exactly the bytes of the request and
    the response as they go over the wire.
    """

    def __init__(self, meter: Meter, *, keepalive_expiry: float = KEEPALIVE_EXPIRY) -> None:
        self._pool = httpcore2.AsyncConnectionPool(
            network_backend=CountingBackend(meter), keepalive_expiry=keepalive_expiry
        )

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.scheme != "http":
            raise httpx2.UnsupportedProtocol(
                f"CountingTransport counts plain http only, not {request.url.scheme!r}: "
                "over TLS the bytes on the wire are not the bytes written"
            )
        assert isinstance(request.stream, AsyncIterable)  # an AsyncClient's requests are
        core_request = httpcore2.Request(
            method=request.method,
            url=httpcore2.URL(
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
        return httpx2.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


class _ResponseStream(httpx2.AsyncByteStream):
    """httpcore2's response body as httpx2 reads it, with httpx2's errors."""

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


# httpcore2's exceptions and the httpx2 ones callers catch, the most specific first.
_ERRORS: tuple[tuple[type[Exception], type[httpx2.TransportError]], ...] = (
    (httpcore2.ConnectTimeout, httpx2.ConnectTimeout),
    (httpcore2.ReadTimeout, httpx2.ReadTimeout),
    (httpcore2.WriteTimeout, httpx2.WriteTimeout),
    (httpcore2.PoolTimeout, httpx2.PoolTimeout),
    (httpcore2.TimeoutException, httpx2.TimeoutException),
    (httpcore2.ConnectError, httpx2.ConnectError),
    (httpcore2.ReadError, httpx2.ReadError),
    (httpcore2.WriteError, httpx2.WriteError),
    (httpcore2.NetworkError, httpx2.NetworkError),
    (httpcore2.RemoteProtocolError, httpx2.RemoteProtocolError),
    (httpcore2.LocalProtocolError, httpx2.LocalProtocolError),
    (httpcore2.ProtocolError, httpx2.ProtocolError),
    (httpcore2.UnsupportedProtocol, httpx2.UnsupportedProtocol),
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
