"""How late each event arrived: when the app sent it, when it got here, per event.

`server.clients.arrivals` says when each event arrived; that shows a burst, but not who held
the events back, nor for how long each one waited. The events of `server.apps.stamped_events`
carry the time they were sent (`"sent"`, the app's `time.time()`), so on the same machine
(one clock) received minus sent is the time the event spent between the app and this
client: in the network stack, and in any proxy on the way. Lesson 08 measures nginx with it,
one directive at a time; `bench/bench_nginx.py` with a thousand streams open.

Both times are seconds since the request was sent, read on one clock from one zero: the wall
clock the app stamps "sent" with, and ours at each arrival. (Two clocks with two zeros, a wall
clock for "sent" and `event_arrivals`' own monotonic one for "received", put an event's
arrival before its sending on a loaded machine.) So a timeline can draw each event twice:
once when it left the app, once when it arrived.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from itertools import pairwise
from typing import NamedTuple

import httpx2

from server.clients.arrivals import event_arrivals
from server.sse import Decoder


class Delivery(NamedTuple):
    id: str
    sent: float  # seconds since the request was sent, when the app sent the event
    received: float  # seconds since the request was sent, when it arrived here

    @property
    def late(self) -> float:
        """Seconds between sending and receiving: ~0 when nothing held the event back."""
        return self.received - self.sent


def deliveries(
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    client: httpx2.Client | None = None,
) -> list[Delivery]:
    """Read the finite stream of stamped events at `url` to its end; each one's two times.

    Raises `httpx2.HTTPStatusError` for an answer other than 2xx, and `httpx2.HTTPError` if the
    stream breaks (a proxy that cuts it, say). Use a finite stream (`?limit=N`).
    """
    http = client or httpx2.Client(timeout=timeout)
    arrived: list[float] = []  # the wall clock at each arrival, the clock "sent" is read on
    try:
        started = time.time()
        arrivals = event_arrivals(
            url, headers=headers, client=http, on_arrival=lambda _: arrived.append(time.time())
        )
    finally:
        if client is None:
            http.close()
    return [
        Delivery(a.event.id or "", json.loads(a.event.data)["sent"] - started, at - started)
        for a, at in zip(arrivals, arrived, strict=True)
    ]


def latest(found: list[Delivery]) -> float:
    """The longest any event waited (seconds); 0 for no events."""
    return max((d.late for d in found), default=0.0)


# Verdicts on one stream's deliveries, judged against the app's own pace, so that a busy
# moment on a shared machine (a few ms, rarely tens) is not mistaken for a proxy's buffer.


def passed_on(found: list[Delivery]) -> bool:
    """Each event arrived before the app sent the next one: none waited for more data."""
    return len(found) > 1 and all(d.received < after.sent for d, after in pairwise(found))


def waited_for_the_next(found: list[Delivery], held: float) -> bool:
    """Each event but the last arrived only once the app had sent the next one, the last one
    within `held` s (the end of the stream released it), and not all in one burst."""
    return (
        len(found) > 1
        and all(d.received >= after.sent for d, after in pairwise(found))
        and found[-1].late < held
        and found[-1].received - found[0].received > held
    )


def held_to_the_end(found: list[Delivery], held: float) -> bool:
    """All the events arrived in one burst, within `held` s of the last one; the first late."""
    return len(found) > 1 and found[-1].received - found[0].received < held < found[0].late


def ids_and_ending(
    url: str, timeout: float = 30.0, on_event: Callable[[str], None] | None = None
) -> tuple[list[str], str]:
    """Read the stream at `url`: the ids received, and how it ended.

    "ended" if the response ended as HTTP says a response ends; otherwise the name of httpx2's
    error (`RemoteProtocolError`: the connection closed in the middle of a chunked body). A
    stream cut by a proxy is told from a finished one only when the framing says so.
    `on_event(id)` is called as each event arrives (to act while the stream is under way).
    """
    ids: list[str] = []
    decoder = Decoder()
    try:
        with httpx2.stream("GET", url, timeout=timeout) as response:
            for chunk in response.iter_bytes():
                for event in decoder.feed(chunk):
                    ids.append(event.id or "")
                    if on_event is not None:
                        on_event(event.id or "")
    except httpx2.HTTPError as error:
        return ids, type(error).__name__
    return ids, "ended"
