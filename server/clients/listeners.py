"""Listeners on a broadcast room, each an `EventSource` in miniature, keeping everything it got.

Lesson 09 asks one question while workers die and Redis goes away: did every listener get
every message, once, in order? So a `Listener`:

- reads its stream with `server.clients.sse_client`, and keeps each message (its JSON data, its id,
  when it arrived) and each `event: reset`;
- when the stream ends or breaks, waits the `retry` the server sent and reconnects with
  `Last-Event-ID`, as a browser does, and stops for good on an answer a browser would not
  read (`server.clients.resume.next_ready_state`); it records which worker answered each
  connection (`X-Worker`) and how long each reconnection took;
- can be sent away and brought back by the caller (`leave`, `come_back`): a network drop
  that the experiment controls, rather than one it waits for.

Published messages carry a number `n` (`server.clients.publisher.publish_numbered`), so
`tally` can count what a listener lost, got twice, or got out of order. `stalled_stream` is the
opposite of a listener: it asks for the stream and never reads a byte, until its TCP window is
full.

httpx2 costs about 0.1 ms of CPU per event; fine for tens of listeners at hundreds of events
per second. For thousands of streams, see `server.clients.load`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx2

from server.clients.http_raw import build_request
from server.clients.load import loopback_address
from server.clients.resume import DEFAULT_RETRY_MS
from server.clients.sse_client import EventStream, NotAnEventStream, aconnect_sse
from server.sse import MEDIA_TYPE, Event


@dataclass(frozen=True)
class Received:
    data: dict[str, Any]
    id: str | None
    at: float  # time.time() on arrival; a publisher's "t" is time.time() too


@dataclass(frozen=True)
class Connection:
    worker: str  # the X-Worker header of the answer
    gap: float | None  # seconds from the previous connection's break to this answer


@dataclass
class Listener:
    """One listener on `url` (a stream of JSON messages), reconnecting like a browser."""

    client: httpx2.AsyncClient
    url: str
    name: str = "listener"
    headers: Mapping[str, str] = field(default_factory=dict)  # a Cookie, say
    received: list[Received] = field(default_factory=list)
    resets: list[dict[str, Any]] = field(default_factory=list)
    connections: list[Connection] = field(default_factory=list)
    closed_for_good: str | None = None  # why, like an EventSource whose readyState is CLOSED
    last_event_id: str = ""
    retry_ms: int = DEFAULT_RETRY_MS
    _task: asyncio.Task[None] | None = field(default=None, repr=False)
    _connected: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _broken: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def worker(self) -> str:
        """The worker that answered the latest connection."""
        return self.connections[-1].worker if self.connections else ""

    def numbers(self) -> list[int]:
        """The `n` of each message received, in arrival order."""
        return [r.data["n"] for r in self.received if "n" in r.data]

    async def start(self, timeout: float = 10.0) -> None:
        """Connect, and return once the stream's headers have arrived."""
        self._connected.clear()
        self._task = asyncio.create_task(self._run(), name=self.name)
        await self.wait_connected(timeout)

    async def wait_connected(self, timeout: float = 10.0) -> None:
        """Wait until a connection is open (after a break, the reconnection)."""
        waiting = asyncio.ensure_future(self._connected.wait())
        assert self._task is not None
        done, _ = await asyncio.wait(
            {waiting, self._task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        waiting.cancel()
        if self.closed_for_good:
            raise RuntimeError(f"{self.name}: closed for good: {self.closed_for_good}")
        if waiting not in done:
            raise TimeoutError(f"{self.name}: not connected within {timeout} s")

    async def wait_disconnected(self, timeout: float = 10.0) -> None:
        """Wait until the open connection has broken (the listener is waiting to reconnect)."""
        await asyncio.wait_for(self._broken.wait(), timeout)

    async def wait_reconnected(self, connections: int, timeout: float = 10.0) -> None:
        """Wait until this listener has opened more than `connections` connections in all:
        pass `len(listener.connections)` from before a fault, and this returns once it has
        reconnected, however quickly that happened."""
        if not await _wait_until(lambda ls: len(ls.connections) > connections, [self], timeout):
            raise TimeoutError(f"{self.name}: not reconnected within {timeout} s")

    async def leave(self) -> None:
        """Close the connection now and stay away (the caller's network drop)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def come_back(self, timeout: float = 10.0) -> None:
        """Reconnect (with `Last-Event-ID`, if one was received) and wait for the answer."""
        await self.start(timeout)

    async def _run(self) -> None:
        broke_at: float | None = None
        while True:
            headers = dict(self.headers)
            if self.last_event_id:
                headers["Last-Event-ID"] = self.last_event_id
            events: EventStream | None = None
            try:
                async with aconnect_sse(self.client, "GET", self.url, headers=headers) as events:
                    gap = None if broke_at is None else time.perf_counter() - broke_at
                    worker = events.response.headers.get("x-worker", "")
                    self.connections.append(Connection(worker, gap))
                    self._broken.clear()
                    self._connected.set()
                    async for event in events:
                        self._accept(event)
            except NotAnEventStream as refused:  # a browser would not read it: closed for good
                self.closed_for_good = f"HTTP {refused.response.status_code}"
                return
            except httpx2.TransportError:
                pass  # cut, reset or refused: reconnect, as a browser does
            if events is not None and events.decoder.retry is not None:
                self.retry_ms = events.decoder.retry
            broke_at = time.perf_counter()
            self._connected.clear()
            self._broken.set()
            await asyncio.sleep(self.retry_ms / 1000)

    def _accept(self, event: Event) -> None:
        # A browser keeps its last event id across connections; a new Decoder starts at "".
        # This server never sends an empty `id:`, so an event's id is kept if it has one.
        self.last_event_id = event.id or self.last_event_id
        if event.event == "reset":
            self.resets.append(json.loads(event.data))
        else:
            self.received.append(Received(json.loads(event.data), event.id or None, time.time()))


@contextlib.asynccontextmanager
async def listening(
    client: httpx2.AsyncClient,
    url: str,
    count: int,
    *,
    headers: Iterable[Mapping[str, str]] | None = None,
) -> AsyncIterator[list[Listener]]:
    """`count` listeners on `url`, all connected on entry, all stopped on exit.

    `headers`, if given, is one mapping per listener (a cookie each, for sticky sessions).
    """
    each = list(headers) if headers is not None else [{}] * count
    listeners = [Listener(client, url, f"listener-{i}", each[i]) for i in range(count)]
    try:
        await asyncio.gather(*(listener.start() for listener in listeners))
        yield listeners
    finally:
        await asyncio.gather(*(listener.leave() for listener in listeners))


async def wait_until_received(listeners: Iterable[Listener], count: int, timeout: float) -> bool:
    """Wait until each listener has `count` messages or more; False if `timeout` ran out."""
    return await _wait_until(lambda ls: len(ls.received) >= count, listeners, timeout)


async def wait_until_heard(listeners: Iterable[Listener], n: int, timeout: float) -> bool:
    """Wait until each listener has received the message numbered `n`; False on timeout."""
    return await _wait_until(lambda ls: n in ls.numbers(), listeners, timeout)


async def _wait_until(
    condition: Callable[[Listener], bool], listeners: Iterable[Listener], timeout: float
) -> bool:
    """Check `condition` on every listener every 20 ms, until it holds for all or time is up."""
    deadline = time.perf_counter() + timeout
    listeners = list(listeners)
    while not all(condition(listener) for listener in listeners):
        if time.perf_counter() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


# --- checking what arrived -------------------------------------------------------------------


@dataclass(frozen=True)
class Tally:
    received: int
    lost: int  # published numbers never received
    duplicated: int  # receptions beyond the first of a number
    out_of_order: int  # receptions of a number lower than the one before

    @property
    def perfect(self) -> bool:
        return self.lost == self.duplicated == self.out_of_order == 0


def tally(numbers: list[int], published: Iterable[int]) -> Tally:
    """Compare the numbers a listener received with the numbers that were published."""
    unique = set(numbers)
    return Tally(
        received=len(numbers),
        lost=sum(1 for n in published if n not in unique),
        duplicated=len(numbers) - len(unique),
        out_of_order=sum(1 for a, b in itertools.pairwise(numbers) if b < a),
    )


# --- a client that stops reading -------------------------------------------------------------


@contextlib.contextmanager
def stalled_stream(url: str, receive_buffer: int = 0) -> Iterator[socket.socket]:
    """Ask for the event stream at `url` and read nothing: the server's writes pile up in the
    kernel buffers on the way until this socket's TCP window is full, then they wait.

    `receive_buffer` (bytes) shrinks this socket's buffer first, as a small device might.
    The socket is yours to read afterwards (`read_to_end`), to see what the server sent.
    """
    host, port, path = loopback_address(url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if receive_buffer:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.connect((host, port))
        sock.sendall(build_request(host, path, port=port, headers={"Accept": MEDIA_TYPE}))
        yield sock
    finally:
        sock.close()


def read_to_end(sock: socket.socket, timeout: float = 10.0) -> tuple[bytes, bool]:
    """Read what the server left in the socket: (the bytes, whether it had closed it)."""
    sock.settimeout(timeout)
    chunks = []
    try:
        while chunk := sock.recv(1 << 20):
            chunks.append(chunk)
    except TimeoutError:
        return b"".join(chunks), False
    return b"".join(chunks), True
