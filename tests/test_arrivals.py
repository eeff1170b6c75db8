"""Tests for server/clients/arrivals.py against a real server."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx2
import pytest

from server.clients.arrivals import arrivals_side_by_side, event_arrivals, spread
from server.course.launcher import Server


def test_each_event_is_timed_from_the_request(serve: Callable[..., Server]) -> None:
    app = serve("server.apps.fastapi_streams:app")
    seen = event_arrivals(f"{app.url}/countdown?start=2&interval=0.2")
    assert [a.event.data for a in seen][:2] == ["2", "1"]
    assert all(a.seconds > 0 for a in seen)
    assert [a.seconds for a in seen] == sorted(a.seconds for a in seen)
    assert 0.3 < spread(seen) < 10


def test_an_error_status_raises_instead_of_timing_nothing(serve: Callable[..., Server]) -> None:
    app = serve("server.apps.fastapi_streams:app")
    with pytest.raises(httpx2.HTTPStatusError):
        event_arrivals(f"{app.url}/events?limit=1", headers={"Last-Event-ID": "nope"})


def test_no_events_have_no_spread() -> None:
    assert spread([]) == 0.0


def test_on_arrival_sees_each_event_while_the_stream_is_still_open(
    serve: Callable[..., Server],
) -> None:
    app = serve("server.apps.fastapi_streams:app")
    called_at: list[float] = []
    seen = event_arrivals(
        f"{app.url}/countdown?start=2&interval=0.3",
        on_arrival=lambda arrival: called_at.append(time.perf_counter()),
    )
    returned_at = time.perf_counter()
    assert len(called_at) == len(seen) == 3
    assert returned_at - called_at[0] > 0.3, "the first event was handed over at the end"


def test_streams_read_side_by_side_take_the_time_of_one(serve: Callable[..., Server]) -> None:
    app = serve("server.apps.fastapi_streams:app")
    url = f"{app.url}/countdown?start=2&interval=0.5"
    start = time.perf_counter()
    seen = arrivals_side_by_side({name: url for name in "abc"})
    took = time.perf_counter() - start
    assert list(seen) == ["a", "b", "c"]
    assert all(spread(arrivals) > 0.7 for arrivals in seen.values())
    assert took < 2.5, f"three 1 s streams took {took:.2f} s: read one after the other"
