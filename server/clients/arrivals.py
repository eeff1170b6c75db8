"""When each event of a stream arrived: the measurement behind every timeline in the course.

Streaming is about *when*: a buffering proxy, the wrong kind of iterator or a compressing
middleware deliver the same events, only late and in a burst. So lessons 07 and 08 read a
finite stream to its end and note, for each event, the seconds since the request was sent
(the clock starts before the request, so a slow first byte counts). Events are parsed with
`server.sse.Decoder` as the bytes come, exactly as a browser would see them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import httpx2

from server.sse import Decoder, Event


class Arrival(NamedTuple):
    seconds: float  # since the request was sent
    event: Event


def event_arrivals(
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    client: httpx2.Client | None = None,
    on_arrival: Callable[[Arrival], None] | None = None,
) -> list[Arrival]:
    """Read the finite event stream at `url` to its end; when each event arrived.

    Raises `httpx2.HTTPStatusError` for an answer other than 2xx. Use a finite stream
    (`?limit=N`): this returns only when the server ends the response. `on_arrival` is
    called with each arrival as it happens (lesson 00 prints them live).
    """
    http = client or httpx2.Client(timeout=timeout)
    decoder, arrivals = Decoder(), []
    try:
        start = time.perf_counter()
        with http.stream("GET", url, headers=headers) as response:
            response.raise_for_status()
            for chunk in response.iter_bytes():
                now = time.perf_counter() - start
                for event in decoder.feed(chunk):
                    arrivals.append(Arrival(now, event))
                    if on_arrival is not None:
                        on_arrival(arrivals[-1])
        decoder.close()
    finally:
        if client is None:
            http.close()
    return arrivals


def arrivals_side_by_side(
    urls: Mapping[str, str], *, headers: Mapping[str, str] | None = None
) -> dict[str, list[Arrival]]:
    """`event_arrivals` for several streams read at once, a thread each: arrivals by name.

    Four 1 s streams take about 1 s side by side, not 4: a lesson compares servers faster.
    """
    with ThreadPoolExecutor(max_workers=max(1, len(urls))) as pool:
        futures = {
            name: pool.submit(event_arrivals, url, headers=headers) for name, url in urls.items()
        }
        return {name: future.result() for name, future in futures.items()}


def spread(arrivals: list[Arrival]) -> float:
    """Seconds between the first event's arrival and the last's: ~0 when sent in one burst."""
    return arrivals[-1].seconds - arrivals[0].seconds if arrivals else 0.0
