"""Hold many WebSockets open from one process and count what arrives: `load.HeldStreams`' twin.

The bench that compares WebSocket with SSE (`bench/bench_ws_vs_sse.py`) holds the same number
of each and measures the server. For that, the two load clients must cost about the same per
connection and per message, or the comparison measures the clients. So this one is built like
`server.clients.load`: one asyncio task per connection on a raw socket, the handshake written
by hand (lesson 01's `http_raw`), server frames read with a small incremental parser, the
client's own CPU time reported. It offers no compression (no `Sec-WebSocket-Extensions`), never
sends a message, and answers pings, as every client must (RFC 6455 §5.5.2). Loopback only.
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from server.clients.http_raw import build_request, read_head, websocket_accept
from server.clients.load import FAILURES, loopback_address
from server.clients.open_files import stream_budget

PING, PONG, CLOSE = 0x9, 0xA, 0x8


@dataclass
class SocketRecord:
    connected: float | None = None  # seconds to the 101
    messages: int = 0
    error: str | None = None
    closed: bool = False  # the server closed it


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """(opcode, payload) of one unmasked server frame."""
    first, second = await reader.readexactly(2)
    size = second & 0x7F
    if size > 125:
        size = int.from_bytes(await reader.readexactly(2 if size == 126 else 8), "big")
    return first & 0x0F, await reader.readexactly(size)


def pong(payload: bytes) -> bytes:
    """A masked pong frame echoing a ping's payload (at most 125 bytes, by the RFC)."""
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | PONG, 0x80 | len(payload)]) + mask + masked


@dataclass
class HeldSockets:
    """`n` WebSockets to `url` (`http://` or `ws://` on loopback), open for an `async with`."""

    url: str
    n: int
    connect_timeout: float = 10.0
    records: list[SocketRecord] = field(default_factory=list)
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0

    def __post_init__(self) -> None:
        self.host, self.port, self.path = loopback_address(self.url.replace("ws://", "http://"))
        attempted, self.limit_note = stream_budget(self.n)
        self.records = [SocketRecord() for _ in range(attempted)]
        self._tasks: list[asyncio.Task[None]] = []
        self._opened = 0
        self._all_open = asyncio.Event()
        self._changed = asyncio.Event()

    async def __aenter__(self) -> HeldSockets:
        self.cpu_seconds, self.wall_seconds = time.process_time(), time.perf_counter()
        self._tasks = [asyncio.create_task(self._hold(r)) for r in self.records]
        if not self.records:
            self._all_open.set()
        await self._all_open.wait()  # each has `connect_timeout` to open or fail
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.cpu_seconds = time.process_time() - self.cpu_seconds
        self.wall_seconds = time.perf_counter() - self.wall_seconds

    @property
    def opened(self) -> int:
        return sum(r.connected is not None for r in self.records)

    async def wait_for_messages(self, count: int, timeout: float) -> bool:
        """Wait until every socket still open has `count` messages; False on timeout."""
        return await self._wait(
            lambda r: r.messages < count and r.error is None and not r.closed, timeout
        )

    async def wait_for_close(self, timeout: float) -> bool:
        """Wait until the server has closed every socket that did not fail; False on timeout.

        Leaving the `async with` cancels the readers, so a close frame still on its way would
        go unread: wait for it first when the test is about the server closing."""
        return await self._wait(lambda r: r.error is None and not r.closed, timeout)

    async def _wait(self, waiting: Callable[[SocketRecord], bool], timeout: float) -> bool:
        """Wait until no record is `waiting`; False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                while any(waiting(r) for r in self.records):
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            return False
        return True

    def _settled(self) -> None:
        self._opened += 1
        if self._opened == len(self.records):
            self._all_open.set()

    async def _hold(self, record: SocketRecord) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        headers = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": key}
        headers["Sec-WebSocket-Version"] = "13"
        writer = None
        started = time.perf_counter()
        try:
            try:
                async with asyncio.timeout(self.connect_timeout):
                    reader, writer = await asyncio.open_connection(self.host, self.port)
                    writer.write(
                        build_request(self.host, self.path, port=self.port, headers=headers)
                    )
                    head = io.BytesIO(await reader.readuntil(b"\r\n\r\n"))
                    _, status, _, answer = read_head(head)
            finally:
                self._settled()
            if status != 101 or answer.get("sec-websocket-accept") != websocket_accept(key):
                record.error = f"HTTP {status}"
                return
            record.connected = time.perf_counter() - started
            while True:
                opcode, payload = await read_frame(reader)
                if opcode == PING:
                    writer.write(pong(payload))
                elif opcode == CLOSE:
                    record.closed = True
                    return
                elif opcode != PONG:
                    record.messages += 1  # unfragmented: the course's servers never fragment
                    self._changed.set()
        except FAILURES as error:
            record.error = type(error).__name__ + (f": {error}" if str(error) else "")
        finally:
            self._changed.set()
            if writer is not None:
                writer.close()
