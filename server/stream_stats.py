"""Bookkeeping for live streams: how many are open, how each one ended, what clients sent.

A streaming endpoint that leaks is invisible from the outside: the client has gone, the
generator is still sleeping and waking, holding a database cursor or an upstream LLM call.
The only proof that cleanup works is to count. Wrap a generator's body in `track`:

    def countdown():
        with STATS.track("countdown"):
            for i in range(5, 0, -1):
                yield ...

and `STATS.snapshot()` says, per stream name, how many are `active` now and how many
`finished` (ran to the end), were `cancelled` (the client left: `asyncio.CancelledError` in an
async generator, `GeneratorExit` in a sync one) or `failed` (any other exception).

A stream may count more than how it ended: `STATS.add("countdown", "events")` keeps a named
counter of your own beside those four (requests received, tokens sent), read and reset with
them, so that one object holds all of a server's bookkeeping.

`track` is a plain (sync) context manager, so it works in both kinds of generator: the
exception that ends the generator passes through its `__exit__` either way.

The same object keeps a short log of the request headers that matter for resuming
(`Last-Event-ID`, `Origin`, whether a cookie came along), so a test or a notebook can prove
what a browser really sent on its own.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping
from typing import Any

OUTCOMES = ("finished", "cancelled", "failed")
TRACKED = ("active", *OUTCOMES)  # what `track` counts; `add` counts anything else


class Tracked:
    """The `with` block of one tracked stream: on the way out, it counts how the stream ended.

    A class rather than a `@contextmanager` generator: a server holds one per open stream, and
    a suspended generator frame costs about 500 bytes more (`bench/bench_capacity.py`).
    """

    __slots__ = ("_name", "_stats")

    def __init__(self, stats: StreamStats, name: str) -> None:
        self._stats, self._name = stats, name

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            outcome = "finished"
        elif issubclass(kind, (asyncio.CancelledError, GeneratorExit)):
            outcome = "cancelled"
        else:
            outcome = "failed"
        self._stats._end(self._name, outcome)  # the exception, if any, goes on


class StreamStats:
    """Thread-safe counters (sync generators run in worker threads) and a bounded header log."""

    def __init__(self, log_size: int = 200) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, Counter[str]] = {}
        self._requests: deque[dict[str, Any]] = deque(maxlen=log_size)

    def track(self, name: str) -> Tracked:
        """Count one stream called `name` as active for the duration of the `with` block."""
        self._add(name, "active", +1)
        return Tracked(self, name)

    def _end(self, name: str, outcome: str) -> None:
        with self._lock:
            self._counts[name]["active"] -= 1
            self._counts[name][outcome] += 1

    def add(self, name: str, counter: str, amount: int = 1) -> None:
        """Add `amount` to a counter of your own for stream `name` (say, tokens sent)."""
        if counter in TRACKED:
            raise ValueError(f"{counter!r} is counted by track(); pick another counter name")
        self._add(name, counter, amount)

    def log_request(self, path: str, headers: Mapping[str, str], cookie: str = "") -> None:
        """Remember the resume-related headers of one request (never their secrets)."""
        entry = {
            "time": time.time(),
            "path": path,
            "last_event_id": headers.get("last-event-id"),
            "origin": headers.get("origin"),
            "cookie": bool(cookie) and cookie in headers.get("cookie", ""),
        }
        with self._lock:
            self._requests.append(entry)

    def snapshot(self) -> dict[str, dict[str, int]]:
        """`{name: {"active": n, "finished": n, "cancelled": n, "failed": n, ...}}`: the four
        that `track` keeps, then the counters added with `add`, in the order first added."""
        with self._lock:
            return {name: self._counts_of(name) for name in sorted(self._counts)}

    def counts(self, name: str) -> dict[str, int]:
        """The counters of one stream name, as in `snapshot` (zeros if it never ran)."""
        with self._lock:
            return self._counts_of(name)

    def requests(self) -> list[dict[str, Any]]:
        """The logged requests, oldest first."""
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        """Forget the counts and the log (active streams stay counted: they still run)."""
        with self._lock:
            for counts in self._counts.values():
                for key in counts:
                    if key != "active":
                        counts[key] = 0
            self._requests.clear()

    def _counts_of(self, name: str) -> dict[str, int]:
        counts = self._counts.get(name, Counter())
        extra = {key: value for key, value in counts.items() if key not in TRACKED}
        return {key: counts[key] for key in TRACKED} | extra

    def _add(self, name: str, key: str, delta: int) -> None:
        with self._lock:
            self._counts.setdefault(name, Counter())[key] += delta
