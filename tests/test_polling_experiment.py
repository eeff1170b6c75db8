"""Lesson 02's client loops and the harness that runs, counts and times them.

Against a real `server.apps.price_feed` under uvicorn. Latencies are reported (the test's
`user_properties`, in a JUnit XML report), and asserted only as generous deadlines that the
broken behaviour (a long poll answered at its timeout, a loop that ignores its deadline)
misses by far.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from server.clients.measure import percentile
from server.clients.polling import long_poll_loop, short_poll_loop, sse_loop
from server.clients.polling_experiment import Method, long_poll_trial, simulate
from server.course.launcher import Server

APP = "server.apps.price_feed:app"


@pytest.fixture
def quiet(serve) -> Server:
    """A source that publishes only when the harness (POST /publish) does."""
    return serve(APP, env={"EVENT_RATE": "0"})


def test_simulate_measures_all_three_methods_on_the_same_events(serve, request):
    source = serve(APP, env={"EVENT_RATE": "6", "EVENT_SEED": "3"})
    methods = {
        "poll": Method(short_poll_loop, "/poll", {"interval": 0.3}, stagger=0.3),
        "long poll": Method(long_poll_loop, "/long-poll"),
        "SSE": Method(sse_loop, "/sse"),
    }
    experiment = asyncio.run(simulate(source.url, methods, users=3, window=2.0, settle=0.5))
    experiment.raise_errors()  # includes a loop still running 5 s after the deadline
    assert len(experiment.measured_events) >= 3
    rows = {row["method"]: row for row in experiment.summary()}
    for method, users in experiment.runs.items():
        assert experiment.missing(method) == 0, method
        assert all(u.duplicates == u.out_of_order == 0 for u in users), method
        assert all(u.meter.sent > 0 and u.meter.received > 0 for u in users), method
        request.node.user_properties.append((f"{method} p95 ms", rows[method]["p95 ms"]))
    assert rows["SSE"]["requests"] == 3 and rows["SSE"]["empty"] == 0
    assert rows["poll"]["requests"] > rows["SSE"]["requests"]
    assert rows["poll"]["p50 ms"] > rows["SSE"]["p50 ms"]
    # Delivered on publish, in milliseconds; answered at the 2.5 s hold (or at the end of the
    # stream) instead, p95 would be seconds.
    assert rows["long poll"]["p95 ms"] < 1000 and rows["SSE"]["p95 ms"] < 1000, rows
    assert "req/s per user" in experiment.table()


def test_the_reference_long_poll_loop_passes_the_lesson_trial(quiet, request):
    trial = asyncio.run(long_poll_trial(long_poll_loop, quiet.url))
    ids = [e["id"] for e in trial.published]
    for user in trial.users:
        assert user.error is None
        assert [d.event_id for d in user.deliveries] == ids
        assert user.returned == ids[-1]
        assert user.empty >= 1  # the 0.6 s -> 2.2 s gap is longer than the 1 s hold
        assert 4 <= len(user.requests) <= 10
        assert user.finished is not None
        request.node.user_properties.append(
            ("ended after the deadline (s)", user.finished - trial.deadline)
        )
        request.node.user_properties.append(
            ("max delay (s)", percentile([d.delay for d in user.deliveries], 100))
        )


def test_a_long_poll_user_gets_each_event_on_publish_and_stops_at_its_deadline(quiet):
    # Holds of 30 s in a 4 s run: a loop answered at its hold would get the events at the
    # deadline, seconds late; one that did not cut its hold would be stopped 2 s after it.
    trial = asyncio.run(
        long_poll_trial(long_poll_loop, quiet.url, users=2, at=(0.3, 0.6, 1.2), seconds=4, hold=30)
    )
    for user in trial.users:
        assert user.error is None
        assert max(d.delay for d in user.deliveries) < 1.5
        assert user.finished is not None and user.finished - trial.deadline < 1.5


def test_a_loop_that_overruns_its_deadline_is_stopped_and_reported(quiet):
    async def stubborn(client, url, since, deadline, on_event, hold=20.0):
        await client.get(url, params={"since": since, "timeout": 30})  # ignores the deadline
        return since

    started = time.monotonic()
    trial = asyncio.run(long_poll_trial(stubborn, quiet.url, users=1, at=(), seconds=0.2))
    assert time.monotonic() - started < 15  # stopped 2 s after its deadline, not after 30 s
    assert isinstance(trial.users[0].error, TimeoutError)
    assert "still running" in str(trial.users[0].error)


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
