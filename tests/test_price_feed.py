"""Lesson 02's event source: its log in-process, then its endpoints against a real uvicorn.

Timing: each test allows generous deadlines that a loaded machine meets, chosen so that the
broken behaviour (a long poll that waits for its timeout instead of the publish) misses them
by far; the latencies themselves are reported (the test's `user_properties`), not asserted.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from conftest import wait_until

from server.apps.price_feed.event_log import EventLog, IdAhead, IdTooOld
from server.clients.sse_client import aconnect_sse, connect_sse
from server.course.launcher import Server, start_app
from server.sse import Event

APP = "server.apps.price_feed:app"
QUIET = {"EVENT_RATE": "0"}  # events only when a test publishes them


@pytest.fixture
def quiet(serve) -> Server:
    return serve(APP, env=QUIET)


@pytest.fixture(scope="module")
def untouched() -> Iterator[Server]:
    """One quiet source for the validation tests, which never publish (so last_id stays 0)."""
    with start_app(APP, env=QUIET) as server:
        yield server


def publish(server: Server, n: int = 1) -> list[dict]:
    return [httpx2.post(f"{server.url}/publish").raise_for_status().json() for _ in range(n)]


# --- the log, in-process -------------------------------------------------------------------


def test_the_log_raises_domain_errors_that_say_why():
    async def scenario() -> None:
        log = EventLog(history=2)
        with pytest.raises(IdAhead, match=r"since=1 is ahead of the newest event \(0\)"):
            log.after(1)
        for price in (1.0, 2.0, 3.0):
            await log.publish(price)
        assert [t.price for t in log.after(1)] == [2.0, 3.0]
        with pytest.raises(IdTooOld, match="events 1 to 1 are no longer kept"):
            log.after(0)
        with pytest.raises(IdAhead):  # before any waiting
            await log.wait_after(4, timeout=60)

    asyncio.run(scenario())


def test_waiters_wake_on_a_publish_not_at_their_timeout():
    async def scenario() -> None:
        log = EventLog()
        waiters = [asyncio.create_task(log.wait_after(0, timeout=60)) for _ in range(3)]
        await asyncio.sleep(0)  # each waiter runs until it waits on the condition
        assert not any(w.done() for w in waiters)
        tick = await log.publish(101.0)
        async with asyncio.timeout(10):  # far less than the 60 s they would wait otherwise
            assert await asyncio.gather(*waiters) == [[tick]] * 3

    asyncio.run(scenario())


def test_a_wait_returns_what_is_already_there_or_nothing_at_its_timeout():
    async def scenario() -> None:
        log = EventLog()
        assert await log.wait_after(0, timeout=0.01) == []
        first, second = await log.publish(1.0), await log.publish(2.0)
        async with asyncio.timeout(10):
            assert await log.wait_after(0, timeout=60) == [first, second]

    asyncio.run(scenario())


# --- the endpoints, over HTTP --------------------------------------------------------------


def test_poll_returns_the_events_after_since_and_none_twice(quiet):
    published = publish(quiet, 3)
    assert [e["id"] for e in published] == [1, 2, 3]
    assert published[0]["published"] <= published[1]["published"] <= published[2]["published"]

    first = httpx2.get(f"{quiet.url}/poll", params={"since": 0}).raise_for_status()
    assert first.json() == published
    assert first.headers["cache-control"] == "no-store"
    assert httpx2.get(f"{quiet.url}/poll?since=").json() == published  # empty: from the start
    assert httpx2.get(f"{quiet.url}/poll", params={"since": 1}).json() == published[1:]
    assert httpx2.get(f"{quiet.url}/poll", params={"since": 3}).json() == []
    assert httpx2.get(f"{quiet.url}/").json()["last_id"] == 3


HOLD = 60  # a long poll's timeout in these tests: a response that waited for it is obvious
SOON = 15  # a generous deadline for "at once", far below HOLD


def test_long_poll_returns_as_soon_as_an_event_is_published(quiet, request):
    async def scenario() -> tuple[float, list[dict], dict]:
        async with httpx2.AsyncClient(base_url=quiet.url, timeout=HOLD + 10) as client:
            params = {"since": 0, "timeout": HOLD}
            held = asyncio.create_task(client.get("/long-poll", params=params))
            await asyncio.sleep(0.5)
            assert not held.done(), "the long poll answered before anything was published"
            publishing = time.monotonic()
            event = (await client.post("/publish")).json()
            response = await held
            return time.monotonic() - publishing, response.raise_for_status().json(), event

    answered_after, events, event = asyncio.run(scenario())
    request.node.user_properties.append(("answered after publishing (s)", answered_after))
    assert events == [event]
    assert answered_after < SOON, answered_after  # held until the publish, not the timeout


def test_long_poll_returns_an_empty_list_at_its_timeout(quiet):
    started = time.monotonic()
    response = httpx2.get(f"{quiet.url}/long-poll", params={"since": 0, "timeout": 0.5})
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert response.json() == []
    assert 0.5 <= elapsed < SOON, elapsed  # it waited, and stopped (the default hold is 20 s)


def test_long_poll_answers_at_once_when_events_are_waiting(quiet):
    publish(quiet, 2)
    started = time.monotonic()
    response = httpx2.get(
        f"{quiet.url}/long-poll", params={"since": 1, "timeout": HOLD}, timeout=HOLD + 10
    )
    assert [e["id"] for e in response.json()] == [2]
    assert time.monotonic() - started < SOON


def sse_ids(url: str, **kwargs: Any) -> list[str | None]:
    """The ids of the events of one whole `/sse` answer."""
    with (
        httpx2.Client(timeout=SOON + 10) as client,
        connect_sse(client, "GET", url, **kwargs) as events,
    ):
        return [event.id for event in events]


def test_sse_delivers_the_same_events_in_order_with_ids_and_ends_at_its_limit(quiet):
    before = publish(quiet, 2)

    async def scenario() -> tuple[list[Event], list[dict], httpx2.Headers]:
        events, later = [], []
        async with (
            httpx2.AsyncClient(base_url=quiet.url, timeout=15) as client,
            aconnect_sse(client, "GET", "/sse", params={"since": 0, "limit": 4}) as stream,
        ):
            async for event in stream:
                events.append(event)
                if len(later) < 2:  # publish the rest while the stream is open
                    later.append((await client.post("/publish")).json())
            return events, later, stream.response.headers

    events, later, headers = asyncio.run(scenario())
    assert headers["content-type"].startswith("text/event-stream")
    assert headers["cache-control"] == "no-cache"
    assert [e.id for e in events] == ["1", "2", "3", "4"]
    assert [json.loads(e.data) for e in events] == before + later
    assert {e.event for e in events} == {"message"}
    polled = httpx2.get(f"{quiet.url}/poll", params={"since": 0}).json()
    assert polled == before + later  # the same events as /poll, byte for byte in JSON


def test_sse_resumes_after_last_event_id_and_ends_after_its_duration(quiet):
    publish(quiet, 3)
    started = time.monotonic()
    ids = sse_ids(f"{quiet.url}/sse", params={"duration": 0.5}, headers={"Last-Event-ID": "1"})
    assert 0.5 <= time.monotonic() - started < SOON  # open until its duration, then closed
    assert ids == ["2", "3"]
    # ?since= wins over the header
    since = {"since": 2, "limit": 1}
    assert sse_ids(f"{quiet.url}/sse", params=since, headers={"Last-Event-ID": "0"}) == ["3"]


@pytest.mark.parametrize("path", ["/poll", "/long-poll", "/sse"])
@pytest.mark.parametrize("since", ["abc", "-1", "1.5", " 1", "٣"])
def test_an_invalid_since_is_a_clear_400(untouched, path, since):
    response = httpx2.get(f"{untouched.url}{path}", params={"since": since})
    assert response.status_code == 400
    assert response.json() == {
        "detail": f"since must be a non-negative decimal integer, got {since!r}"
    }


@pytest.mark.parametrize("path", ["/poll", "/long-poll", "/sse"])
def test_a_since_ahead_of_the_log_is_a_400_that_says_why(untouched, path):
    response = httpx2.get(f"{untouched.url}{path}", params={"since": 5})
    assert response.status_code == 400
    assert "ahead of the newest event (0)" in response.json()["detail"]


def test_an_invalid_last_event_id_header_is_a_400(untouched):
    response = httpx2.get(f"{untouched.url}/sse", headers={"Last-Event-ID": "x"})
    assert response.status_code == 400
    assert response.json() == {
        "detail": "Last-Event-ID must be a non-negative decimal integer, got 'x'"
    }


@pytest.mark.parametrize(
    ("path", "query", "detail"),
    [
        ("/long-poll", "timeout=0", "timeout must be seconds, > 0 and <= 60, got '0'"),
        ("/long-poll", "timeout=nan", "timeout must be seconds, > 0 and <= 60, got 'nan'"),
        ("/long-poll", "timeout=61", "timeout must be seconds, > 0 and <= 60, got '61'"),
        ("/sse", "limit=0", "limit must be an integer >= 1, got '0'"),
        ("/sse", "duration=-1", "duration must be seconds, > 0 and <= 3600, got '-1'"),
    ],
)
def test_other_invalid_parameters_are_400s(untouched, path, query, detail):
    response = httpx2.get(f"{untouched.url}{path}?{query}")
    assert (response.status_code, response.json()) == (400, {"detail": detail})


def test_a_since_older_than_the_kept_history_is_410_gone(serve):
    server = serve(APP, env={**QUIET, "EVENT_HISTORY": "2"})
    publish(server, 4)
    gone = httpx2.get(f"{server.url}/poll", params={"since": 0})
    assert gone.status_code == 410
    assert "events 1 to 2 are no longer kept" in gone.json()["detail"]
    assert [e["id"] for e in httpx2.get(f"{server.url}/poll?since=2").json()] == [3, 4]


def test_the_publisher_is_seeded_and_never_skips_an_id(serve):
    env = {"EVENT_RATE": "25", "EVENT_SEED": "7"}
    a, b = serve(APP, env=env), serve(APP, env=env)

    def first_ten(server: Server) -> list[dict]:
        events: list[dict] = []

        def ten() -> bool:  # one long poll after the last event seen
            since = events[-1]["id"] if events else 0
            events.extend(httpx2.get(f"{server.url}/long-poll?since={since}&timeout=2").json())
            return len(events) >= 10

        wait_until(ten, "ten ticks at 25 a second")
        return events[:10]

    ticks_a, ticks_b = first_ten(a), first_ten(b)
    assert [e["id"] for e in ticks_a] == list(range(1, 11))
    assert [e["price"] for e in ticks_a] == [e["price"] for e in ticks_b]
    assert ticks_a[0]["price"] != ticks_a[1]["price"]
    times = [e["published"] for e in ticks_a]
    assert times == sorted(times)
