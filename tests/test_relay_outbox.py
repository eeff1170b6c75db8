"""The relay's writer (issue 25): events made while a write is under way go out as one write.

`HeartbeatResponse` writes from one task beside the body (`Outbox`). The relay gets cheaper
per token when busy (`bench/bench_relay.py`); these check that nothing else changed: an event
the body makes alone still goes out at once, a slow client still holds the body back (memory
bounded), a failed write still ends the body, and heartbeats still fill silences only.
Real event loop, no server: `send` and `receive` are the test's own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from server.apps.llm_relay.heartbeat import HEARTBEAT, MAX_PENDING, HeartbeatResponse

SCOPE = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}}


async def never_leaves() -> Any:
    await asyncio.Event().wait()


def bodies(sent: list[Any]) -> list[bytes]:
    """The bytes of each body write, without the start and the final empty one."""
    return [m["body"] for m in sent if m["type"] == "http.response.body" and m["body"]]


def test_events_made_during_one_write_go_out_together_in_the_next() -> None:
    sent: list[Any] = []
    first_write = asyncio.Event()

    async def send(message: Any) -> None:
        sent.append(message)
        if message.get("body") == b"data: 0\n\n":
            first_write.set()
            await asyncio.sleep(0.05)  # a write that takes a while (a busy socket)

    async def body() -> AsyncIterator[bytes]:
        yield b"data: 0\n\n"
        await first_write.wait()  # the write of the first is under way
        for n in range(1, 6):
            yield f"data: {n}\n\n".encode()  # made at once, as from one upstream read

    asyncio.run(HeartbeatResponse(body(), interval=60)(SCOPE, never_leaves, send))
    assert bodies(sent) == [
        b"data: 0\n\n",
        b"".join(f"data: {n}\n\n".encode() for n in range(1, 6)),
    ]


def test_an_event_made_alone_goes_out_before_the_body_goes_on() -> None:
    sent: list[Any] = []
    written = asyncio.Event()

    async def send(message: Any) -> None:
        sent.append(message)
        if message.get("body"):
            written.set()

    async def body() -> AsyncIterator[bytes]:
        for n in range(3):
            written.clear()
            yield f"data: {n}\n\n".encode()
            await asyncio.wait_for(written.wait(), 10)  # the upstream is slower than the writer

    asyncio.run(HeartbeatResponse(body(), interval=60)(SCOPE, never_leaves, send))
    assert bodies(sent) == [f"data: {n}\n\n".encode() for n in range(3)]


def test_a_burst_goes_out_in_writes_of_a_few_kib_the_first_event_alone() -> None:
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def body() -> AsyncIterator[bytes]:
        for n in range(2000):  # a whole reply at once (a cache, a fast model): 36 KB
            yield f"data: {n:>10}\n\n".encode()

    asyncio.run(HeartbeatResponse(body(), interval=60)(SCOPE, never_leaves, send))
    written = bodies(sent)
    assert b"".join(written) == b"".join(f"data: {n:>10}\n\n".encode() for n in range(2000))
    assert written[0] == b"data:          0\n\n", "the first event waited for others"
    assert max(len(w) for w in written) <= 4096 + 18, "an event waited for the whole burst"


def test_a_client_that_stops_reading_holds_the_body_back() -> None:
    made = 0
    stuck = asyncio.Event()

    async def send(message: Any) -> None:
        if message.get("body"):
            stuck.set()
            await asyncio.Event().wait()  # the client's window is full: this write never ends

    async def body() -> AsyncIterator[bytes]:
        nonlocal made
        while True:
            made += 1024
            yield b"x" * 1024
            await asyncio.sleep(0)  # an upstream that always has more

    async def scenario() -> None:
        response = asyncio.create_task(HeartbeatResponse(body(), 60)(SCOPE, never_leaves, send))
        await asyncio.wait_for(stuck.wait(), 10)
        for _ in range(1000):  # plenty of turns for a body that is not held back
            await asyncio.sleep(0)
        response.cancel()
        with pytest.raises(asyncio.CancelledError):
            await response

    asyncio.run(scenario())
    assert 0 < made <= 2 * MAX_PENDING + 1024, f"{made} bytes made for a client that reads none"


def test_a_failed_write_ends_the_body_and_closes_it() -> None:
    closed = []

    async def send(message: Any) -> None:
        if message.get("body"):
            raise OSError("the client is gone")

    async def body() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"data: x\n\n"
                await asyncio.sleep(0.01)
        finally:
            closed.append(True)

    with pytest.raises(ExceptionGroup) as caught:  # anyio's task group (Starlette's too)
        asyncio.run(asyncio.wait_for(HeartbeatResponse(body(), 60)(SCOPE, never_leaves, send), 10))
    assert [repr(e) for e in caught.value.exceptions] == [repr(OSError("the client is gone"))]
    assert closed == [True], "the body's finally (which closes the upstream) did not run"


def test_heartbeats_fill_silences_only() -> None:
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def body() -> AsyncIterator[bytes]:
        for n in range(20):  # an event every 10 ms: 100 per heartbeat interval
            yield f"data: {n}\n\n".encode()
            await asyncio.sleep(0.01)
        for _ in range(200):  # then silence, until a heartbeat came (at most 10 s)
            if HEARTBEAT in bodies(sent):
                return
            await asyncio.sleep(0.05)

    asyncio.run(HeartbeatResponse(body(), interval=1.0)(SCOPE, never_leaves, send))
    written = bodies(sent)
    assert written.index(HEARTBEAT) >= 1, "a heartbeat while events flowed"
    assert b"".join(written[: written.index(HEARTBEAT)]).count(b"data:") == 20
