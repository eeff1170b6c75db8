"""Lesson 04's blocking demo keeps its lesson but cannot hold the server: `n × delay` is capped.

`/sync-vs-async/async` calls `time.sleep` inside an async generator on purpose, which stalls
every client of the server for the whole stream. Up to 100 sleeps of 5 s were allowed: one GET
blocked the app for 500 s. Now a stream that would sleep over `MAX_BLOCK` seconds in all is a
400 that names the cap, and the lesson's own stream (3 × 0.4 s) still runs.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest

from server.apps.fastapi_streams.handmade import MAX_BLOCK
from server.course.launcher import Server, start_app


@pytest.fixture(scope="module")
def app() -> Iterator[Server]:
    with start_app("server.apps.fastapi_streams:app", name="fastapi_streams") as server:
        yield server


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_a_stream_that_would_sleep_over_the_cap_is_a_400_naming_it(app: Server, kind: str) -> None:
    response = httpx2.get(f"{app.url}/sync-vs-async/{kind}?n=100&delay=5", timeout=10)
    assert response.status_code == 400, response.status_code
    assert f"at most {MAX_BLOCK:g} s (MAX_BLOCK)" in response.text, response.text
    assert "500 s" in response.text, response.text  # what was asked, so the fix is obvious


def test_the_lessons_stream_still_runs(app: Server) -> None:
    response = httpx2.get(f"{app.url}/sync-vs-async/async?n=3&delay=0.4", timeout=10)
    assert response.status_code == 200, response.text
    assert response.text.count("data: ") == 3
