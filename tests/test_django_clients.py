"""The clients lesson 07 measures with, run against the course's Django project on real servers.

Each measurement is checked both ways: it reports the effect where the server has it (a
WSGI thread wall, a late disconnect, a gzip body held back, a body held in memory) and not
where it has not, so a client that always said "it waited" would fail here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx2
import pytest

from server.clients.disconnect import cancelled, seconds_to_notice
from server.clients.gzip_stream import gzip_members, member_sizes, readable_times
from server.clients.held_streams import (
    all_at_once,
    plain_latencies,
    plain_wait,
    with_streams_open,
)
from server.clients.server_memory import peak_growth_mib, read_to_end
from server.course.launcher import Server, start_app, start_gunicorn
from server.seed_texts import LIFTOFF

ASGI = "server.apps.django_streams.asgi:application"
WSGI = "server.apps.django_streams.wsgi:application"


@pytest.fixture(scope="module")
def asgi() -> Iterator[Server]:
    with start_app(ASGI) as server:
        yield server


@pytest.fixture(scope="module")
def wsgi() -> Iterator[Server]:
    """One worker process, 2 threads: at most 2 requests at a time."""
    with start_gunicorn(WSGI, threads=2) as server:
        yield server


# --- held_streams ------------------------------------------------------------------------


def test_plain_wait_sees_the_wsgi_wall_only_when_every_thread_streams(wsgi: Server) -> None:
    assert asyncio.run(plain_wait(wsgi.url, 1, threads=2)) < 0.5
    assert asyncio.run(plain_wait(wsgi.url, 2, threads=2)) > 0.5


def test_plain_wait_under_asgi_does_not_wait(asgi: Server) -> None:
    assert asyncio.run(plain_wait(asgi.url, 4)) < 0.5


def test_with_streams_open_measures_while_the_streams_are_open(asgi: Server) -> None:
    def active() -> int:
        counts: dict[str, int] = httpx2.get(f"{asgi.url}/stats").json().get("events", {})
        return counts.get("active", 0)

    async def measure() -> tuple[int, list[float]]:
        return await asyncio.to_thread(active), await plain_latencies(asgi.url, n=5)

    open_then, latencies = asyncio.run(with_streams_open(asgi.url, 5, measure))
    assert open_then >= 5 and len(latencies) == 5 and all(t > 0 for t in latencies)


def test_all_at_once_tells_side_by_side_from_one_after_the_other(
    asgi: Server, wsgi: Server
) -> None:
    urls = [f"{asgi.url}/slow?seconds=1"] * 2
    side_by_side, responses = asyncio.run(all_at_once(urls))
    assert side_by_side < 1.8, f"two 1 s sync views under ASGI took {side_by_side:.2f} s"
    assert len({r.headers["x-thread"] for r in responses}) == 2, "each in a thread of its own"
    with start_gunicorn(WSGI, threads=1) as one_thread:
        queued, _ = asyncio.run(all_at_once([f"{one_thread.url}/slow?seconds=1"] * 2))
    assert queued > 1.9, f"one thread answered two 1 s views in {queued:.2f} s"


# --- disconnect ----------------------------------------------------------------------------


def test_asgi_notices_a_gone_client_at_once(asgi: Server) -> None:
    before = cancelled(asgi.url)
    assert seconds_to_notice(asgi.url, "interval=5") < 2.0
    assert cancelled(asgi.url) == before + 1


def test_a_silent_wsgi_stream_is_not_noticed(wsgi: Server) -> None:
    with pytest.raises(TimeoutError, match="did not notice"):
        seconds_to_notice(wsgi.url, "interval=30", deadline=1.0)


# --- gzip_stream -------------------------------------------------------------------------


def test_gzip_under_asgi_is_one_member_per_event() -> None:
    with start_app(ASGI, env={"DJANGO_GZIP": "1"}) as server:
        url = f"{server.url}/countdown?start=3&interval=0"
        sizes = member_sizes(url)
        with httpx2.stream("GET", url, headers={"Accept-Encoding": "gzip"}) as response:
            members = gzip_members(b"".join(response.iter_raw()))
    assert len(sizes) == 4 and all(size > 9 for size in sizes)
    assert members == [
        b"data: 3\n\n",
        b"data: 2\n\n",
        b"data: 1\n\n",
        f"data: {LIFTOFF}\n\n".encode(),
    ]


def test_readable_times_sees_wsgi_gzip_hold_the_events_back() -> None:
    with start_gunicorn(WSGI, threads=2, env={"DJANGO_GZIP": "1"}) as server:
        held = readable_times(f"{server.url}/countdown?start=3&interval=0.3")
    assert [data for _, data in held] == ["3", "2", "1", LIFTOFF]
    assert held[0][0] > 0.8, "nothing readable before the end"


def test_readable_times_refuses_an_uncompressed_stream(asgi: Server) -> None:
    with pytest.raises(ValueError, match="not compressed"):
        readable_times(f"{asgi.url}/countdown?start=1&interval=0")


# --- server_memory -------------------------------------------------------------------------


def test_a_whole_body_costs_its_size_in_server_memory_and_a_streamed_one_does_not() -> None:
    with start_app(ASGI) as server:  # a fresh process: nothing freed earlier to reuse
        url = f"{server.url}/download?mb=100&how="
        streamed, (_, size) = peak_growth_mib(server.pid, read_to_end, url + "stream")
        whole, (_, whole_size) = peak_growth_mib(server.pid, read_to_end, url + "whole")
    assert size == whole_size == 100 * 1024 * 1024
    assert streamed < 20, f"streamed: {streamed:.0f} MiB"
    assert whole > 90, f"whole: {whole:.0f} MiB"


def test_read_to_end_raises_for_an_error_status(asgi: Server) -> None:
    with pytest.raises(httpx2.HTTPStatusError):
        read_to_end(f"{asgi.url}/download?mb=0")
