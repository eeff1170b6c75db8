"""Hold many SSE streams open from one process, and time a plain request beside them.

"How many streams does one worker hold, and does it still answer?" is asked of the server but
answered by a client, and a load client can lie: a saturated one reports its own delays as the
server's, and one that checks nothing counts lost events as delivered. So this one is cheap
per stream, checks every event, and reports its own CPU time.

Theory of operation
-------------------
`async with HeldStreams(url, n) as held:` opens `n` streams (at most `opening` connecting at
a time, so a connect time is the server's, not a queue in here) and enters once each has its
response headers or has failed. Each stream is one asyncio task on one socket, parsed by
`server.sse.Decoder`, with a `StreamRecord`: seconds to the headers and to the first event,
events received, and each id that is not the next number (1, 2, 3, ... as `/events` sends them
on a fresh connection), so a gap or a duplicate is reported, never averaged away (a subclass
checks other events: `server.clients.broadcast_load`). Leaving the block closes every stream;
`summary()` adds this process's CPU time over the wall time: near 1.0, the client was the
bottleneck. `plain_latency(url, m)` times m sequential GETs, each on a new connection as a
new visitor's would be: with streams held, is there still time for anyone else?

Each stream holds a file descriptor: `server.clients.open_files.stream_budget` scales `n` down
to what this process's open-files limit allows, and says so.

Why raw asyncio streams, not httpx2: measured here (2 cores, with httpx, whose connection pool
httpx2 keeps), one `httpx.AsyncClient` spent 1.5 ms of CPU per stream to open 1,000 streams,
3 ms for 4,000 (its pool scans every connection as a request starts or ends), then 75-115 µs
per event; these sockets 0.5 ms and 25 µs. The HTTP is lesson 01's (`server.clients.http_raw`)
plus chunked framing read incrementally. Loopback only: this is a load generator.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from server.clients.http_raw import build_request, read_head
from server.clients.measure import percentile
from server.clients.open_files import stream_budget
from server.event_ids import parse_counter_id
from server.sse import Decoder, Event

LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
MAX_PROBLEMS = 10  # per stream: enough to see the pattern, bounded for an endless stream
# How a connection can fail: refused or reset, or a timeout (OSErrors); cut short (EOFError);
# a malformed head or chunk size, or an oversized event (ValueError); a head over 64 KiB.
FAILURES = (OSError, EOFError, ValueError, asyncio.LimitOverrunError)
Opened = tuple[asyncio.StreamReader, asyncio.StreamWriter, int, dict[str, str]]


def loopback_address(url: str) -> tuple[str, int, str]:
    """(host, port, path with query) of an http:// URL on this machine; ValueError if not."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in LOOPBACK_HOSTS:
        raise ValueError(f"a load client targets http:// on loopback only, got {url!r}")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.hostname, parts.port or 80, path


async def _open(host: str, port: int, path: str, headers: dict[str, str]) -> Opened:
    """Connect, send a GET, read the head: (reader, writer, status, lower-cased headers)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(build_request(f"{host}:{port}", path, headers=headers))
        _, status, _, head = read_head(io.BytesIO(await reader.readuntil(b"\r\n\r\n")))
    except BaseException:
        writer.close()
        raise
    return reader, writer, status, head


async def _body(reader: asyncio.StreamReader, headers: dict[str, str]) -> AsyncIterator[bytes]:
    """The body as it arrives: chunked, `Content-Length`, or up to the server's close."""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            chunk = await reader.readexactly(size + 2)  # data + CRLF
            yield chunk[:-2]
        await reader.readuntil(b"\r\n")  # no trailers expected: the final CRLF
    elif "content-length" in headers:
        yield await reader.readexactly(int(headers["content-length"]))
    else:
        while chunk := await reader.read(65536):
            yield chunk


@dataclass
class StreamRecord:
    """What one stream received. Times are seconds since this stream started connecting."""

    connected: float | None = None  # response headers received
    first_event: float | None = None
    events: int = 0
    last_id: int = 0
    problems: list[str] = field(default_factory=list)  # gaps, duplicates, bad ids
    error: str | None = None  # why the stream failed or stopped early
    ended: bool = False  # the server ended the stream before the client closed it

    def accept(self, event: Event, at: float) -> None:
        """Count an event and check its id is the next number."""
        if self.first_event is None:
            self.first_event = at
        self.events += 1
        expected = self.last_id + 1
        try:
            number = parse_counter_id(event.id, "event id") if event.id else None
        except ValueError:
            number = None
        if number is None:
            self._problem(f"event {self.events}: id {event.id!r} is not a counter")
            return
        if number > expected:
            missing = (
                f"id {expected}" if number == expected + 1 else f"ids {expected}..{number - 1}"
            )
            self._problem(f"gap: {missing} missing before {number}")
        elif number < expected:
            self._problem(f"duplicate or out of order: id {number} after {self.last_id}")
        self.last_id = number

    def _problem(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)


@dataclass(frozen=True)
class LoadSummary:
    """What a `HeldStreams` run did: counts, connect times, and the client's own CPU."""

    asked: int
    attempted: int  # after `stream_budget`
    opened: int  # got a 200 and its headers
    in_order: int  # opened streams whose ids had no gap or duplicate
    events: int
    errors: dict[str, int]  # message -> streams
    connect_p50: float
    connect_p99: float
    first_event_p99: float
    cpu_seconds: float
    wall_seconds: float
    limit_note: str

    @property
    def cpu_share(self) -> float:
        """The client's CPU time over the wall time: near 1.0, the client was the bottleneck."""
        return self.cpu_seconds / self.wall_seconds if self.wall_seconds else 0.0


class HeldStreams:
    """`n` SSE streams to `url`, open for the duration of an `async with` block."""

    def __init__(
        self,
        url: str,
        n: int,
        *,
        opening: int = 100,
        connect_timeout: float = 10.0,
        record: type[StreamRecord] = StreamRecord,
    ) -> None:
        self.host, self.port, self.path = loopback_address(url)
        self.asked = n
        attempted, self.limit_note = stream_budget(n)
        self.records = [record() for _ in range(attempted)]
        self._opening = asyncio.Semaphore(opening)
        self._connect_timeout = connect_timeout
        self._tasks: list[asyncio.Task[None]] = []
        self._settled = asyncio.Event()  # every stream is open or has failed
        self._pending = attempted
        self._target: int | None = None  # the event count `wait_for_events` waits for
        self._behind = 0
        self._caught_up = asyncio.Event()
        self._cpu = self._wall = 0.0

    async def __aenter__(self) -> HeldStreams:
        self._cpu, self._wall = time.process_time(), time.perf_counter()
        self._tasks = [asyncio.create_task(self._hold(r)) for r in self.records]
        if self._pending == 0:
            self._settled.set()
        await self._settled.wait()  # bounded: each stream has `connect_timeout` to open
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._cpu = time.process_time() - self._cpu
        self._wall = time.perf_counter() - self._wall

    async def wait_for_events(self, count: int, timeout: float) -> bool:
        """Wait until every stream still open has `count` events; False if `timeout` ran out."""
        self._target = count
        self._behind = sum(
            r.error is None and not r.ended and r.events < count for r in self.records
        )
        self._caught_up.clear()
        try:
            if self._behind:
                await asyncio.wait_for(self._caught_up.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self._target = None

    def summary(self) -> LoadSummary:
        """Call after the `async with` block: the CPU and wall times cover the whole block."""
        opened = [r for r in self.records if r.connected is not None]
        connects = [r.connected for r in opened if r.connected is not None]
        firsts = [r.first_event for r in opened if r.first_event is not None]
        errors = Counter(r.error for r in self.records if r.error is not None)
        return LoadSummary(
            asked=self.asked,
            attempted=len(self.records),
            opened=len(opened),
            in_order=sum(not r.problems for r in opened),
            events=sum(r.events for r in self.records),
            errors=dict(errors),
            connect_p50=percentile(connects, 50),
            connect_p99=percentile(connects, 99),
            first_event_p99=percentile(firsts, 99),
            cpu_seconds=self._cpu,
            wall_seconds=self._wall,
            limit_note=self.limit_note,
        )

    def _one_less_behind(self) -> None:
        self._behind -= 1
        if self._behind == 0:
            self._caught_up.set()

    async def _hold(self, record: StreamRecord) -> None:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        writer = None
        try:
            async with self._opening:
                started = time.perf_counter()
                try:
                    async with asyncio.timeout(self._connect_timeout):
                        reader, writer, status, head = await _open(
                            self.host, self.port, self.path, headers
                        )
                finally:
                    self._pending -= 1
                    if not self._pending:
                        self._settled.set()
            if status != 200:
                record.error = f"HTTP {status}"
                return
            record.connected = time.perf_counter() - started
            decoder = Decoder()
            async for chunk in _body(reader, head):
                for event in decoder.feed(chunk):
                    record.accept(event, time.perf_counter() - started)
                    if record.events == self._target:
                        self._one_less_behind()
            record.ended = True
        except FAILURES as error:
            record.error = type(error).__name__ + (f": {error}" if str(error) else "")
        finally:
            if writer is not None:
                writer.close()
            if self._target is not None and record.events < self._target:
                self._one_less_behind()  # a stopped stream is no longer waited for


@dataclass(frozen=True)
class Latency:
    """Seconds per answered request (status 200, whole body read), and how many failed."""

    samples: list[float]
    errors: int

    @property
    def p50(self) -> float:
        return percentile(self.samples, 50)

    @property
    def p99(self) -> float:
        return percentile(self.samples, 99)


async def plain_latency(url: str, requests: int, *, timeout: float = 10.0) -> Latency:
    """Time `requests` sequential GETs of `url`, each on a new connection, to the last byte."""
    host, port, path = loopback_address(url)
    samples: list[float] = []
    errors = 0
    for _ in range(requests):
        started = time.perf_counter()
        writer = None
        try:
            async with asyncio.timeout(timeout):
                reader, writer, status, head = await _open(
                    host, port, path, {"Connection": "close"}
                )
                async for _chunk in _body(reader, head):
                    pass
        except FAILURES:
            status = 0
        finally:
            if writer is not None:
                writer.close()
        if status == 200:
            samples.append(time.perf_counter() - started)
        else:
            errors += 1
    return Latency(samples, errors)
