"""Tests for server/clients/arrivals.py against a real server."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from server.clients.arrivals import event_arrivals, spread
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
    with pytest.raises(httpx.HTTPStatusError):
        event_arrivals(f"{app.url}/events?limit=1", headers={"Last-Event-ID": "nope"})


def test_no_events_have_no_spread() -> None:
    assert spread([]) == 0.0
