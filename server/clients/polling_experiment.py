"""Lesson 02's experiment: tens of simulated users per method, counted and timed.

`simulate` runs N users of each method (a client loop from `server.clients.polling`, or the
learner's own) at the same time against one `server.apps.price_feed`, so that every method
sees the very same events, and returns an `Experiment` with the numbers the lesson tabulates
and plots. `long_poll_trial` runs a candidate long-poll loop against events published at
known moments: it is what the lesson's exercise check uses.

What is counted, and how, from outside the loops (they know nothing about it):

- requests: an httpx2 request hook, one per request sent.
- empty responses: a response hook; a JSON body of `[]` is an empty response (SSE has none).
- bytes: everything the user's sockets wrote and read (`server.clients.byte_meter`), so
  request and response heads, bodies and chunked framing are all in. TCP/IP packet headers
  are not (about 52-66 bytes per packet on loopback, and more packets for more requests, so
  polling is flattered).
- delivery delay: the user's `time.time()` when `on_event` is called minus the event's
  `published` stamp, the server's `time.time()` on the same machine.

A loop that raises is recorded, not propagated, so one broken user cannot stop the others;
`Experiment.raise_errors()` re-raises the first error for a cell to show. A loop still running
some seconds after its deadline is stopped and recorded with an error that says so.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import httpx2

from server.clients.byte_meter import CountingTransport, Meter
from server.clients.measure import format_table, percentile
from server.clients.polling import CLIENT_TIMEOUT, ClientLoop


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
        if any(d.event_id == event["id"] for d in self.deliveries):
            self.duplicates += 1
            return
        if self.deliveries and event["id"] < self.deliveries[-1].event_id:
            self.out_of_order += 1
        self.deliveries.append(Delivery(event["id"], event["published"], arrived))

    async def _on_request(self, request: httpx2.Request) -> None:
        self.requests.append(time.time())

    async def _on_response(self, response: httpx2.Response) -> None:
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
    async with httpx2.AsyncClient(base_url=base_url, trust_env=False) as control:
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
    async with httpx2.AsyncClient(
        transport=CountingTransport(record.meter),
        timeout=CLIENT_TIMEOUT,
        event_hooks={"request": [record._on_request], "response": [record._on_response]},
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
    async with httpx2.AsyncClient(base_url=base_url, trust_env=False) as control:
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
