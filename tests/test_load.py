"""The SSE load client (`server.clients.load`) against real servers, and its bench's smoke run.

Every event counted once and in order; a gap, a duplicate or a bad id reported; a failing
stream recorded, never raised; the open-files limit scaled down to, not crashed into; nothing
left open. Times are checked against generous deadlines only: this is a 2-core shared machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx2
import pytest

from server.clients.load import HeldStreams, StreamRecord, plain_latency
from server.clients.open_files import raise_open_files_limit
from server.course.launcher import Server
from server.course.ports import free_port
from server.sse import Event, encode

DJANGO = "server.apps.django_streams.asgi:application"
FASTAPI = "server.apps.fastapi_streams:app"
DEADLINE = 30.0  # seconds: generous, for a loaded 2-core machine
ROOT = Path(__file__).resolve().parent.parent


def open_files() -> int:
    """File descriptors this process holds now (each socket is one)."""
    return len(os.listdir("/dev/fd"))


def test_every_event_arrives_once_and_in_order(serve: Callable[..., Server]) -> None:
    server = serve(DJANGO)

    async def scenario() -> tuple[HeldStreams, bool]:
        async with HeldStreams(f"{server.url}/events?limit=3&interval=0", 20) as held:
            return held, await held.wait_for_events(3, timeout=DEADLINE)

    held, reached = asyncio.run(scenario())
    assert reached
    assert [(r.events, r.last_id, r.problems, r.error) for r in held.records] == [
        (3, 3, [], None)
    ] * 20
    for record in held.records:
        assert record.connected is not None and record.first_event is not None
        assert 0 < record.connected <= record.first_event < DEADLINE
    summary = held.summary()
    assert (summary.asked, summary.attempted, summary.opened, summary.in_order) == (20, 20, 20, 20)
    assert summary.events == 60 and summary.errors == {}
    assert summary.cpu_seconds > 0 and 0 < summary.wall_seconds < DEADLINE


def test_streams_stay_open_until_the_block_ends_and_nothing_is_left_open(
    serve: Callable[..., Server],
) -> None:
    server = serve(FASTAPI)

    def active() -> int:
        return int(httpx2.get(f"{server.url}/stats").json().get("events", {}).get("active", 0))

    async def scenario() -> tuple[HeldStreams, int, int]:
        async with HeldStreams(f"{server.url}/events?interval=60", 20) as held:
            assert await held.wait_for_events(1, timeout=DEADLINE)
            files_held = open_files()
            latency = await plain_latency(f"{server.url}/ping", 10)  # beside the held streams
            assert len(latency.samples) == 10 and latency.errors == 0
            return held, files_held, active()

    before = open_files()
    held, files_held, active_held = asyncio.run(scenario())
    assert active_held == 20
    assert files_held >= before + 20
    assert open_files() == before  # every socket closed
    assert all(r.events == 1 and not r.ended and r.error is None for r in held.records)


def scripted_server(body: bytes, framing: str) -> Callable[..., object]:
    """A connection handler that answers any request with `body`, framed as asked."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        if framing == "chunked":
            half = len(body) // 2  # two chunks, cut inside an event
            chunks = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (body[:half], body[half:]))
            wire = (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + chunks + b"0\r\n\r\n"
        elif framing == "content-length":
            wire = (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        else:  # the body ends when the server closes the connection
            wire = (head + "Connection: close\r\n\r\n").encode() + body
        writer.write(wire)
        await writer.drain()
        writer.close()

    return handle


@pytest.mark.parametrize("framing", ["chunked", "content-length", "close"])
def test_gaps_duplicates_and_bad_ids_are_reported(framing: str) -> None:
    ids = ["1", "2", "4", "4", "3", "x", "5"]
    body = b"".join(encode(Event(data="d", id=i)) for i in ids)

    async def scenario() -> HeldStreams:
        listener = await asyncio.start_server(scripted_server(body, framing), "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        async with listener, HeldStreams(f"http://127.0.0.1:{port}/events", 1) as held:
            assert await held.wait_for_events(len(ids), timeout=DEADLINE)
        return held

    record = asyncio.run(scenario()).records[0]
    assert record.events == len(ids)
    assert record.problems == [
        "gap: id 3 missing before 4",
        "duplicate or out of order: id 4 after 4",
        "duplicate or out of order: id 3 after 4",
        "event 6: id 'x' is not a counter",
        "gap: id 4 missing before 5",
    ]
    assert record.error is None


def test_an_event_without_an_id_is_a_problem() -> None:
    record = StreamRecord()
    record.accept(Event(data="d", id=""), at=0.1)
    assert record.problems == ["event 1: id '' is not a counter"]
    assert (record.events, record.first_event) == (1, 0.1)


def test_failing_streams_are_recorded_not_raised(serve: Callable[..., Server]) -> None:
    server = serve(DJANGO)
    nobody = free_port()

    async def scenario() -> tuple[HeldStreams, HeldStreams]:
        async with HeldStreams(f"{server.url}/events?limit=0", 3) as refused_by_app:
            pass
        async with HeldStreams(f"http://127.0.0.1:{nobody}/events", 2) as refused:
            pass
        return refused_by_app, refused

    refused_by_app, refused = asyncio.run(scenario())
    summary = refused_by_app.summary()
    assert (summary.opened, summary.errors) == (0, {"HTTP 400": 3})
    [(error, count)] = refused.summary().errors.items()
    assert count == 2 and error.startswith("ConnectionRefusedError")


def test_plain_latency_counts_answers_and_failures(serve: Callable[..., Server]) -> None:
    server = serve(DJANGO)
    answered = asyncio.run(plain_latency(f"{server.url}/", 20))
    assert len(answered.samples) == 20 and answered.errors == 0
    assert 0 < answered.p50 <= answered.p99 < DEADLINE
    missing = asyncio.run(plain_latency(f"{server.url}/no-such-page", 3))
    assert (missing.samples, missing.errors) == ([], 3)


@pytest.mark.parametrize(
    "url", ["http://example.com/events", "https://127.0.0.1/events", "http://10.0.0.1:80/"]
)
def test_loopback_only(url: str) -> None:
    with pytest.raises(ValueError, match="loopback only"):
        HeldStreams(url, 1)
    with pytest.raises(ValueError, match="loopback only"):
        asyncio.run(plain_latency(url, 1))


def test_the_soft_open_files_limit_is_raised_to_the_hard_one() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard <= 256:
        pytest.skip(f"hard open-files limit {hard}: nothing to raise")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        assert raise_open_files_limit() == (hard, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


LOW_LIMIT = """
import asyncio, json, resource, sys
from server.clients.load import HeldStreams
from server.clients.open_files import stream_budget
resource.setrlimit(resource.RLIMIT_NOFILE, (150, 150))

async def hold():
    async with HeldStreams(sys.argv[1], 1000) as held:
        await held.wait_for_events(1, timeout=30)
    return held.summary()

summary = asyncio.run(hold())
print(json.dumps([stream_budget(1000), summary.asked, summary.attempted, summary.opened]))
"""


def test_a_low_open_files_limit_scales_the_streams_down(serve: Callable[..., Server]) -> None:
    server = serve(DJANGO)
    url = f"{server.url}/events?limit=1&interval=0"
    done = subprocess.run(
        [sys.executable, "-c", LOW_LIMIT, url],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (fits, note), asked, attempted, opened = json.loads(done.stdout)
    assert (fits, asked, attempted, opened) == (50, 1000, 50, 50)
    assert (
        note
        == "open-files limit 150 (hard 150): 1000 streams asked, 50 fit; raise it with ulimit -n"
    )
