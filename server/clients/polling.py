"""Simulated users of `server.apps.price_feed`: short polling, long polling and SSE, measured.

Each simulated user is one `httpx.AsyncClient` (its own keep-alive connection, as a browser
tab would have) running one *client loop* until a deadline. A loop has one shape for all
three methods, so the same harness can run, count and time any of them:

    async def loop(client, url, since, deadline, on_event) -> int

`url` is the endpoint (`.../poll`, `.../long-poll`, `.../sse`), `since` the last event id the
user already has, `deadline` a `time.monotonic()` value at which to stop, and `on_event(event)`
is called with each event dict as it arrives. The loop returns the last id it saw.

What the harness counts, and how:

- requests: an httpx request hook, one per request sent.
- empty responses: a response hook; a JSON body of `[]` is an empty response (SSE has none).
- bytes: everything the client's sockets wrote and read, so request and response headers,
  bodies and chunked framing are all in. TCP/IP packet headers are not (about 52-66 bytes
  per packet on loopback, and more packets for more requests, so polling is flattered).
- delivery delay: the client's `time.time()` when `on_event` is called minus the event's
  `published` stamp, the server's `time.time()` on the same machine.

`simulate` runs tens of users per method against one server at the same time, so every method
sees the very same events, and returns an `Experiment` with the numbers the lesson tabulates
and plots.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import httpcore
import httpx

from server.sse import Decoder

OnEvent = Callable[[dict[str, Any]], None]
ClientLoop = Callable[..., Awaitable[int]]

# A client's read timeout must be longer than any wait the server may impose: the long-poll
# hold, and the gap between two SSE events or heartbeats (15 s). httpx's default is 5 s.
CLIENT_TIMEOUT = httpx.Timeout(10.0, read=30.0)
# uvicorn closes a keep-alive connection after 5 idle seconds. A client that reuses it at that
# very moment gets "Server disconnected without sending a response", so clients drop idle
# connections first (httpx's own default is 5 s, a race with uvicorn's).
KEEPALIVE_EXPIRY = 4.0


# --- the three client loops -----------------------------------------------------------------


async def short_poll_loop(
    client: httpx.AsyncClient,
    url: str,
    since: int,
    deadline: float,
    on_event: OnEvent,
    *,
    interval: float = 1.0,
) -> int:
    """Ask every `interval` seconds whether anything is new.

    Requests go out on a fixed schedule (start, start + interval, ...), as `setInterval`
    does, so a slow response does not make the next one late.
    """
    due = time.monotonic()
    while due < deadline:
        response = await client.get(url, params={"since": since})
        response.raise_for_status()
        for event in response.json():
            on_event(event)
            since = event["id"]
        due += interval
        await asyncio.sleep(max(0.0, min(due, deadline) - time.monotonic()))
    return since


async def long_poll_loop(
    client: httpx.AsyncClient,
    url: str,
    since: int,
    deadline: float,
    on_event: OnEvent,
    *,
    hold: float = 20.0,
) -> int:
    """Ask, let the server hold the request until something is new, ask again at once.

    The server's `timeout` is the hold, cut short at the deadline so the loop ends on time.
    An empty answer (the hold ran out) is normal: ask again.
    """
    while (remaining := deadline - time.monotonic()) > 0.01:
        timeout = min(hold, remaining)
        response = await client.get(url, params={"since": since, "timeout": f"{timeout:.3f}"})
        response.raise_for_status()
        for event in response.json():
            on_event(event)
            since = event["id"]
    return since


async def sse_loop(
    client: httpx.AsyncClient,
    url: str,
    since: int,
    deadline: float,
    on_event: OnEvent,
) -> int:
    """Ask once; read events from the open response as the server writes them.

    `duration` asks the server to end the stream at the deadline, so it ends cleanly.
    """
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return since
    params = {"since": since, "duration": f"{remaining:.3f}"}
    decoder = Decoder()
    async with client.stream("GET", url, params=params) as response:
        response.raise_for_status()
        async for chunk in response.aiter_bytes():
            for event in decoder.feed(chunk):
                payload = json.loads(event.data)
                on_event(payload)
                since = payload["id"]
    decoder.close()
    return since


# --- counting the bytes a client really moves ---------------------------------------------


@dataclass
class Meter:
    """Bytes written to and read from the sockets of one client."""

    sent: int = 0
    received: int = 0

    @property
    def total(self) -> int:
        return self.sent + self.received


class _CountingStream(httpcore.AsyncNetworkStream):
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


class _CountingBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, meter: Meter) -> None:
        self._backend = httpcore.AnyIOBackend()
        self._meter = meter

    async def connect_tcp(self, host: str, port: int, **kwargs: Any) -> _CountingStream:
        stream = await self._backend.connect_tcp(host, port, **kwargs)
        return _CountingStream(stream, self._meter)

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class CountingTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport, over sockets that count every byte (plain HTTP only).

    httpx has no public way to pass a network backend to its transport, so this replaces the
    connection pool it builds with one that has a counting backend; the rest (request and
    response mapping, error translation) stays httpx's. tests/test_price_feed.py checks that
    the counts match the bytes on the wire.
    """

    def __init__(self, meter: Meter) -> None:
        super().__init__(verify=False, trust_env=False)  # loopback http: no TLS to set up
        self._pool = httpcore.AsyncConnectionPool(
            network_backend=_CountingBackend(meter), keepalive_expiry=KEEPALIVE_EXPIRY
        )


# --- the harness --------------------------------------------------------------------------


@dataclass
class Delivery:
    event_id: int
    published: float  # server time.time()
    arrived: float  # client time.time()

    @property
    def delay(self) -> float:
        return self.arrived - self.published


@dataclass
class UserRecord:
    """What one simulated user did and received."""

    meter: Meter = field(default_factory=Meter)
    requests: list[float] = field(default_factory=list)  # time.time() of each request
    empty: int = 0
    deliveries: list[Delivery] = field(default_factory=list)
    duplicates: int = 0  # events received a second time
    out_of_order: int = 0  # events received after a newer one
    returned: int | None = None  # what the loop returned
    finished: float | None = None  # time.monotonic() when the loop ended
    error: BaseException | None = None

    def deliver(self, event: dict[str, Any]) -> None:
        """The `on_event` callback the harness hands to a client loop."""
        arrived = time.time()
        seen = {d.event_id for d in self.deliveries}
        if event["id"] in seen:
            self.duplicates += 1
            return
        if self.deliveries and event["id"] < self.deliveries[-1].event_id:
            self.out_of_order += 1
        self.deliveries.append(Delivery(event["id"], event["published"], arrived))

    async def _on_request(self, request: httpx.Request) -> None:
        self.requests.append(time.time())

    async def _on_response(self, response: httpx.Response) -> None:
        if response.headers.get("content-type", "").startswith("application/json"):
            await response.aread()
            if response.content.strip() == b"[]":
                self.empty += 1


class Method(NamedTuple):
    """A way to receive events: a client loop, the endpoint it talks to, its options.

    `stagger` spreads the users' start times over that many seconds (user i starts at
    i/N of it), as real users' polling timers are not in step.
    """

    loop: ClientLoop
    path: str
    options: Mapping[str, Any] = {}
    stagger: float = 0.0


@dataclass
class Experiment:
    """The users of each method, and the events the server published meanwhile."""

    runs: dict[str, list[UserRecord]]
    events: list[dict[str, Any]]  # every event published during the run, in order
    started: float  # time.time() when the users started
    window: float  # the events measured are those published in the first `window` seconds
    seconds: float  # how long the users ran (window + settle)

    @property
    def measured_events(self) -> list[dict[str, Any]]:
        end = self.started + self.window
        return [e for e in self.events if self.started <= e["published"] <= end]

    def delays(self, method: str) -> list[float]:
        """Delivery delays, in seconds, of the measured events to every user of `method`."""
        ids = {e["id"] for e in self.measured_events}
        return [d.delay for u in self.runs[method] for d in u.deliveries if d.event_id in ids]

    def missing(self, method: str) -> int:
        """Measured events some user of `method` never received (summed over users)."""
        ids = {e["id"] for e in self.measured_events}
        return sum(len(ids - {d.event_id for d in u.deliveries}) for u in self.runs[method])

    def request_times(self, method: str, *, skip_first: bool = False) -> list[float]:
        """When the users of `method` sent requests, in seconds since the start."""
        return sorted(
            t - self.started for u in self.runs[method] for t in u.requests[int(skip_first) :]
        )

    def publish_times(self) -> list[float]:
        return [e["published"] - self.started for e in self.events]

    def errors(self) -> list[tuple[str, BaseException]]:
        return [(m, u.error) for m, users in self.runs.items() for u in users if u.error]

    def raise_errors(self) -> None:
        """Re-raise the first error a client loop raised, so a cell cannot hide it."""
        for method, error in self.errors():
            note = f"raised by a client loop of {method!r}"
            if note not in getattr(error, "__notes__", []):
                error.add_note(note)
            raise error

    def summary(self) -> list[dict[str, Any]]:
        """One row per method: the numbers the lesson's table shows."""
        rows = []
        for method, users in self.runs.items():
            requests = sum(len(u.requests) for u in users)
            delays = self.delays(method)
            delivered = sum(len(u.deliveries) for u in users)
            total_bytes = sum(u.meter.total for u in users)
            rows.append(
                {
                    "method": method,
                    "users": len(users),
                    "requests": requests,
                    "req/s per user": requests / len(users) / self.seconds,
                    "empty": sum(u.empty for u in users),
                    "bytes": total_bytes,
                    "bytes/event": total_bytes / delivered if delivered else math.nan,
                    "p50 ms": 1000 * percentile(delays, 50),
                    "p95 ms": 1000 * percentile(delays, 95),
                    "max ms": 1000 * max(delays, default=math.nan),
                    "missing": self.missing(method),
                }
            )
        return rows

    def table(self) -> str:
        """`summary()` as an aligned text table."""
        return format_table(self.summary())


async def simulate(
    base_url: str,
    methods: Mapping[str, Method],
    *,
    users: int = 30,
    window: float = 10.0,
    settle: float = 5.0,
    grace: float = 5.0,
) -> Experiment:
    """Run `users` simulated users per method, all at once, against one event source.

    Users run for `window + settle` seconds. The delays are measured on the events published
    in the first `window` seconds; `settle` gives the slowest method (a long polling interval)
    time to fetch them too. A loop still running `grace` seconds after its deadline is stopped
    and recorded as an error.
    """
    async with httpx.AsyncClient(base_url=base_url, trust_env=False) as control:
        first = (await control.get("/")).raise_for_status().json()["last_id"]
        started = time.time()
        start = time.monotonic()
        deadline = start + window + settle
        runs = {name: [UserRecord() for _ in range(users)] for name in methods}
        async with asyncio.TaskGroup() as group:
            for name, method in methods.items():
                for index, record in enumerate(runs[name]):
                    group.create_task(
                        _run_user(
                            record,
                            method,
                            base_url + method.path,
                            first,
                            start + method.stagger * index / users,
                            deadline,
                            grace,
                        )
                    )
        events = (await control.get("/poll", params={"since": first})).raise_for_status().json()
    return Experiment(runs, events, started, window, window + settle)


async def _run_user(
    record: UserRecord,
    method: Method,
    url: str,
    since: int,
    start: float,
    deadline: float,
    grace: float,
) -> None:
    await asyncio.sleep(max(0.0, start - time.monotonic()))
    hooks = {"request": [record._on_request], "response": [record._on_response]}
    async with httpx.AsyncClient(
        transport=CountingTransport(record.meter),
        timeout=CLIENT_TIMEOUT,
        event_hooks=hooks,
        trust_env=False,
    ) as client:
        limit = asyncio.timeout(deadline - time.monotonic() + grace)
        try:
            async with limit:
                record.returned = await method.loop(
                    client, url, since, deadline, record.deliver, **method.options
                )
        except Exception as error:  # recorded, and re-raised by Experiment.raise_errors()
            # A TimeoutError is ours only if our limit fired; the loop may raise its own.
            record.error = _overran(grace) if limit.expired() else error
        record.finished = time.monotonic()


def _overran(grace: float) -> TimeoutError:
    return TimeoutError(
        f"the client loop was still running {grace:g} s after its deadline: "
        "does it stop asking when the deadline has passed, and cut the server's "
        "hold (timeout=) to the time that is left?"
    )


# --- the exercise: a long-poll loop, tried against scripted events ------------------------


@dataclass
class Trial:
    """How a candidate long-poll loop did against events published at known moments."""

    users: list[UserRecord]
    published: list[dict[str, Any]]
    deadline: float  # time.monotonic()


async def long_poll_trial(
    loop: ClientLoop,
    base_url: str,
    *,
    users: int = 3,
    at: Iterable[float] = (0.3, 0.6, 2.2),
    seconds: float = 3.5,
    hold: float = 1.0,
) -> Trial:
    """Run `loop` for `seconds` with `hold`-second holds while events are published `at` the
    given offsets, through POST /publish. Use a source started with EVENT_RATE=0, so the
    only events are these. The default gap 0.6 s -> 2.2 s is longer than the hold, so the
    loop must also survive an empty answer.
    """
    async with httpx.AsyncClient(base_url=base_url, trust_env=False) as control:
        since = (await control.get("/")).raise_for_status().json()["last_id"]
        start = time.monotonic()
        deadline = start + seconds
        records = [UserRecord() for _ in range(users)]
        published = []

        async def publish_on_schedule() -> None:
            for offset in at:
                await asyncio.sleep(max(0.0, start + offset - time.monotonic()))
                published.append((await control.post("/publish")).raise_for_status().json())

        method = Method(loop, "/long-poll", {"hold": hold})
        async with asyncio.TaskGroup() as group:
            group.create_task(publish_on_schedule())
            for record in records:
                group.create_task(
                    _run_user(record, method, base_url + method.path, since, start, deadline, 2)
                )
    return Trial(records, published, deadline)


# --- small statistics and a table ----------------------------------------------------------


def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile by linear interpolation (numpy's default); nan for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def share_soon_after(times: Iterable[float], marks: Iterable[float], within: float) -> float:
    """The share of `times` that fall at most `within` seconds after one of `marks`."""
    times, marks = list(times), sorted(marks)
    if not times:
        return math.nan
    hits = sum(any(0 <= t - m <= within for m in marks) for t in times)
    return hits / len(times)


def format_table(rows: list[dict[str, Any]]) -> str:
    """Rows of dicts with the same keys, as an aligned text table (no pandas needed)."""
    if not rows:
        return ""
    columns = list(rows[0])

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return (
                "n/a" if math.isnan(value) else f"{value:,.1f}" if value < 100 else f"{value:,.0f}"
            )
        if isinstance(value, int):
            return f"{value:,}"
        return str(value)

    cells = [[cell(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = [
        "  ".join(
            text.ljust(width) if i == 0 else text.rjust(width)
            for i, (text, width) in enumerate(zip(line, widths, strict=True))
        )
        for line in [columns, *cells]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
