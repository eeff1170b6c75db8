"""The event source of lesson 02 against a real uvicorn, and the harness that measures it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import httpx
import pytest

from server.clients.polling import (
    CountingTransport,
    Meter,
    Method,
    long_poll_loop,
    long_poll_trial,
    percentile,
    short_poll_loop,
    simulate,
    sse_loop,
)
from server.course.launcher import Server, start_app
from server.sse import Decoder

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
    return [httpx.post(f"{server.url}/publish").raise_for_status().json() for _ in range(n)]


def test_poll_returns_the_events_after_since_and_none_twice(quiet):
    published = publish(quiet, 3)
    assert [e["id"] for e in published] == [1, 2, 3]
    assert published[0]["published"] <= published[1]["published"] <= published[2]["published"]

    first = httpx.get(f"{quiet.url}/poll", params={"since": 0}).raise_for_status()
    assert first.json() == published
    assert first.headers["cache-control"] == "no-store"
    assert httpx.get(f"{quiet.url}/poll", params={"since": 1}).json() == published[1:]
    assert httpx.get(f"{quiet.url}/poll", params={"since": 3}).json() == []
    assert httpx.get(f"{quiet.url}/").json()["last_id"] == 3


def test_long_poll_returns_as_soon_as_an_event_is_published(quiet):
    async def scenario() -> tuple[float, list[dict], dict]:
        async with httpx.AsyncClient(base_url=quiet.url, timeout=15) as client:
            started = time.monotonic()
            held = asyncio.create_task(client.get("/long-poll", params={"since": 0, "timeout": 10}))
            await asyncio.sleep(0.5)
            assert not held.done(), "the long poll answered before anything was published"
            event = (await client.post("/publish")).json()
            response = await held
            return time.monotonic() - started, response.raise_for_status().json(), event

    elapsed, events, event = asyncio.run(scenario())
    assert events == [event]
    assert 0.45 < elapsed < 3.0, elapsed  # held until the publish, not until the timeout


def test_long_poll_returns_an_empty_list_at_its_timeout(quiet):
    started = time.monotonic()
    response = httpx.get(f"{quiet.url}/long-poll", params={"since": 0, "timeout": 0.5})
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert response.json() == []
    assert 0.45 < elapsed < 3.0, elapsed


def test_long_poll_answers_at_once_when_events_are_waiting(quiet):
    publish(quiet, 2)
    started = time.monotonic()
    events = httpx.get(f"{quiet.url}/long-poll", params={"since": 1, "timeout": 10}).json()
    assert [e["id"] for e in events] == [2]
    assert time.monotonic() - started < 2.0


def read_sse(response_bytes: list[bytes]) -> list:
    decoder = Decoder()
    events = [e for chunk in response_bytes for e in decoder.feed(chunk)]
    return events + decoder.close()


def test_sse_delivers_the_same_events_in_order_with_ids_and_ends_at_its_limit(quiet):
    before = publish(quiet, 2)

    async def scenario() -> tuple[list[bytes], list[dict], httpx.Headers]:
        chunks, later = [], []
        async with (
            httpx.AsyncClient(base_url=quiet.url, timeout=15) as client,
            client.stream("GET", "/sse", params={"since": 0, "limit": 4}) as response,
        ):
            async for chunk in response.aiter_bytes():
                chunks.append(chunk)
                if len(later) < 2:  # publish the rest while the stream is open
                    later.append((await client.post("/publish")).json())
            return chunks, later, response.headers

    chunks, later, headers = asyncio.run(scenario())
    assert headers["content-type"].startswith("text/event-stream")
    assert headers["cache-control"] == "no-cache"
    events = read_sse(chunks)
    assert [e.id for e in events] == ["1", "2", "3", "4"]
    assert [json.loads(e.data) for e in events] == before + later
    assert {e.event for e in events} == {"message"}
    polled = httpx.get(f"{quiet.url}/poll", params={"since": 0}).json()
    assert polled == before + later  # the same events as /poll, byte for byte in JSON


def test_sse_resumes_after_last_event_id_and_ends_after_its_duration(quiet):
    publish(quiet, 3)
    started = time.monotonic()
    response = httpx.get(
        f"{quiet.url}/sse", params={"duration": 0.5}, headers={"Last-Event-ID": "1"}
    )
    assert 0.45 < time.monotonic() - started < 3.0
    assert [e.id for e in read_sse([response.content])] == ["2", "3"]
    # ?since= wins over the header
    response = httpx.get(
        f"{quiet.url}/sse", params={"since": 2, "limit": 1}, headers={"Last-Event-ID": "0"}
    )
    assert [e.id for e in read_sse([response.content])] == ["3"]


@pytest.mark.parametrize("path", ["/poll", "/long-poll", "/sse"])
@pytest.mark.parametrize("since", ["abc", "-1", "1.5", "", "٣"])
def test_an_invalid_since_is_a_clear_400(untouched, path, since):
    response = httpx.get(f"{untouched.url}{path}", params={"since": since})
    assert response.status_code == 400
    assert response.json() == {"detail": f"since must be an integer >= 0, got {since!r}"}


@pytest.mark.parametrize("path", ["/poll", "/long-poll", "/sse"])
def test_a_since_ahead_of_the_log_is_a_400_that_says_why(untouched, path):
    response = httpx.get(f"{untouched.url}{path}", params={"since": 5})
    assert response.status_code == 400
    assert "ahead of the newest event (0)" in response.json()["detail"]


def test_an_invalid_last_event_id_header_is_a_400(untouched):
    response = httpx.get(f"{untouched.url}/sse", headers={"Last-Event-ID": "x"})
    assert response.status_code == 400
    assert response.json() == {"detail": "Last-Event-ID must be an integer >= 0, got 'x'"}


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
    response = httpx.get(f"{untouched.url}{path}?{query}")
    assert (response.status_code, response.json()) == (400, {"detail": detail})


def test_a_since_older_than_the_kept_history_is_410_gone(serve):
    server = serve(APP, env={**QUIET, "EVENT_HISTORY": "2"})
    publish(server, 4)
    gone = httpx.get(f"{server.url}/poll", params={"since": 0})
    assert gone.status_code == 410
    assert "events 1 to 2 are no longer kept" in gone.json()["detail"]
    assert [e["id"] for e in httpx.get(f"{server.url}/poll?since=2").json()] == [3, 4]


def test_the_publisher_is_seeded_and_never_skips_an_id(serve):
    env = {"EVENT_RATE": "25", "EVENT_SEED": "7"}
    a, b = serve(APP, env=env), serve(APP, env=env)

    def first_ten(server: Server) -> list[dict]:
        events: list[dict] = []
        deadline = time.monotonic() + 10
        while len(events) < 10 and time.monotonic() < deadline:
            since = events[-1]["id"] if events else 0
            events += httpx.get(f"{server.url}/long-poll?since={since}&timeout=2").json()
        return events[:10]

    ticks_a, ticks_b = first_ten(a), first_ten(b)
    assert [e["id"] for e in ticks_a] == list(range(1, 11))
    assert [e["price"] for e in ticks_a] == [e["price"] for e in ticks_b]
    assert ticks_a[0]["price"] != ticks_a[1]["price"]
    times = [e["published"] for e in ticks_a]
    assert times == sorted(times)


# --- the measuring harness -------------------------------------------------------------------


def test_the_counting_transport_counts_exactly_the_bytes_on_the_wire(quiet):
    publish(quiet, 2)

    async def fetch() -> tuple[Meter, httpx.Response]:
        meter = Meter()
        async with httpx.AsyncClient(transport=CountingTransport(meter)) as client:
            response = await client.get(f"{quiet.url}/poll", params={"since": 0})
        return meter, response

    meter, response = asyncio.run(fetch())
    request = response.request
    request_bytes = (
        f"GET {request.url.raw_path.decode()} HTTP/1.1\r\n".encode()
        + b"".join(name + b": " + value + b"\r\n" for name, value in request.headers.raw)
        + b"\r\n"
    )
    response_bytes = (
        b"HTTP/1.1 200 OK\r\n"
        + b"".join(name + b": " + value + b"\r\n" for name, value in response.headers.raw)
        + b"\r\n"
        + response.content
    )
    assert meter.sent == len(request_bytes)
    assert meter.received == len(response_bytes)


def test_simulate_measures_all_three_methods_on_the_same_events(serve):
    source = serve(APP, env={"EVENT_RATE": "6", "EVENT_SEED": "3"})
    methods = {
        "poll": Method(short_poll_loop, "/poll", {"interval": 0.3}, stagger=0.3),
        "long poll": Method(long_poll_loop, "/long-poll"),
        "SSE": Method(sse_loop, "/sse"),
    }
    started = time.monotonic()
    experiment = asyncio.run(simulate(source.url, methods, users=3, window=2.0, settle=0.5))
    assert time.monotonic() - started < 6.0
    experiment.raise_errors()
    assert len(experiment.measured_events) >= 3
    rows = {row["method"]: row for row in experiment.summary()}
    for method, users in experiment.runs.items():
        assert experiment.missing(method) == 0, method
        assert all(u.duplicates == u.out_of_order == 0 for u in users), method
        assert all(u.meter.sent > 0 and u.meter.received > 0 for u in users), method
    assert rows["SSE"]["requests"] == 3 and rows["SSE"]["empty"] == 0
    assert rows["poll"]["requests"] > rows["SSE"]["requests"]
    assert rows["poll"]["p50 ms"] > rows["SSE"]["p50 ms"]
    assert rows["long poll"]["p95 ms"] < 300 and rows["SSE"]["p95 ms"] < 300
    assert "req/s per user" in experiment.table()


def test_the_reference_long_poll_loop_passes_the_lesson_trial(quiet):
    trial = asyncio.run(long_poll_trial(long_poll_loop, quiet.url))
    ids = [e["id"] for e in trial.published]
    for user in trial.users:
        assert user.error is None
        assert [d.event_id for d in user.deliveries] == ids
        assert user.returned == ids[-1]
        assert user.empty >= 1  # the 0.6 s -> 2.2 s gap is longer than the 1 s hold
        assert 4 <= len(user.requests) <= 10
        assert user.finished is not None and user.finished - trial.deadline < 0.5
        assert percentile([d.delay for d in user.deliveries], 100) < 0.3


def test_a_loop_that_overruns_its_deadline_is_stopped_and_reported(quiet):
    async def stubborn(client, url, since, deadline, on_event, hold=20.0):
        await client.get(url, params={"since": since, "timeout": 30})  # ignores the deadline
        return since

    started = time.monotonic()
    trial = asyncio.run(long_poll_trial(stubborn, quiet.url, users=1, at=(), seconds=0.2))
    assert time.monotonic() - started < 5
    assert isinstance(trial.users[0].error, TimeoutError)
    assert "still running" in str(trial.users[0].error)


def test_percentile_interpolates_like_numpy():
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([5], 95) == 5
    assert percentile([0, 10], 95) == pytest.approx(9.5)


def test_a_loop_that_raises_its_own_timeout_error_is_reported_as_its_error(quiet):
    """A learner's loop that uses `asyncio.timeout` and lets it escape: the error recorded is
    the loop's own TimeoutError, not a crash of the harness (bug 1 of issue 8)."""

    async def impatient(client, url, since, deadline, on_event, hold=20.0):
        async with asyncio.timeout(0.05):
            await client.get(url, params={"since": since, "timeout": 5})
        return since

    trial = asyncio.run(long_poll_trial(impatient, quiet.url, users=1, at=(), seconds=3))
    error = trial.users[0].error
    assert isinstance(error, TimeoutError), error
    assert "still running" not in str(error)  # it is the loop's, not the harness's
    assert trial.users[0].finished is not None and trial.users[0].finished < trial.deadline
