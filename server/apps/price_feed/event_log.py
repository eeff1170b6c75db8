"""The price feed's events: a bounded in-memory log, and the publisher that fills it.

Nothing here knows about HTTP. The log answers two questions, "what came after id n?" and
"wait until something comes after id n", and raises `IdAhead` or `IdTooOld` when it cannot
answer for an id; the endpoints in `server.apps.price_feed` turn those into 400 and 410. Ids
count up from 1 with no gaps, so "after n" is a slice of the log, and a client's `since` (or
`Last-Event-ID`) is simply the last id it has.

Waiting is an `asyncio.Condition`: `publish` notifies every waiter, and each one checks the
newest id against its own `since` before it returns, so a waiter never misses a publish. Every
held long poll and open stream wakes at once on each publish: the burst lesson 02 measures.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from contextlib import suppress
from dataclasses import dataclass

DEFAULT_HISTORY = 10_000
START_PRICE = 100.0


@dataclass(frozen=True, slots=True)
class Tick:
    """One published event: a price at a moment."""

    id: int
    published: float  # server time.time() when it entered the log
    price: float


class UnknownId(LookupError):
    """The log cannot say what came after this id."""


class IdAhead(UnknownId):
    """An id the log has not reached: from a client of an earlier run of the server."""


class IdTooOld(UnknownId):
    """An id so old that the events after it are no longer kept."""


class EventLog:
    """The published events, newest last (at most `history` of them), and a way to wait for
    the next one."""

    def __init__(self, history: int = DEFAULT_HISTORY) -> None:
        self._events: deque[Tick] = deque(maxlen=history)
        self._next_id = 1
        self._published = asyncio.Condition()

    @property
    def newest(self) -> Tick | None:
        return self._events[-1] if self._events else None

    @property
    def last_id(self) -> int:
        """The id of the newest event, 0 before the first."""
        return self._next_id - 1

    async def publish(self, price: float) -> Tick:
        async with self._published:
            tick = Tick(self._next_id, time.time(), price)
            self._events.append(tick)
            self._next_id += 1
            self._published.notify_all()
        return tick

    def after(self, since: int) -> list[Tick]:
        """The events with id > since (ids have no gaps, so this is a slice).

        Raises `IdAhead` or `IdTooOld` when the log cannot answer for `since`.
        """
        if since > self.last_id:
            raise IdAhead(
                f"since={since} is ahead of the newest event ({self.last_id}); "
                "ids restart at 1 when the server restarts, so start again from since=0"
            )
        oldest = self._events[0].id if self._events else self._next_id
        if since < oldest - 1:
            raise IdTooOld(
                f"events {since + 1} to {oldest - 1} are no longer kept (the log holds the "
                f"last {self._events.maxlen}); start again from since={oldest - 1}"
            )
        start = since - oldest + 1
        return [self._events[i] for i in range(start, len(self._events))]

    async def wait_after(self, since: int, timeout: float) -> list[Tick]:
        """The events after `since`, waiting up to `timeout` seconds for one if there are none.

        Checks `since` at once (`after` raises before any waiting); [] when the time is up.
        """
        if events := self.after(since):
            return events
        with suppress(TimeoutError):
            async with asyncio.timeout(timeout), self._published:
                await self._published.wait_for(lambda: self.last_id > since)
        return self.after(since)


async def publish_forever(log: EventLog, rate: float, seed: int) -> None:
    """Publish price ticks at random times: exponential gaps, mean 1/rate seconds.

    The schedule is absolute (each tick is due at the previous due time plus a gap), so a
    slow loop delays a tick without shifting all the ones after it.
    """
    gaps = random.Random(seed)
    prices = random.Random(seed + 1)
    price = START_PRICE
    loop = asyncio.get_running_loop()
    due = loop.time()
    while True:
        due += gaps.expovariate(rate)
        await asyncio.sleep(max(0.0, due - loop.time()))
        price = round(price * (1 + prices.gauss(0, 0.002)), 2)
        await log.publish(price)
