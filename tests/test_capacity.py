"""The capacity benches' parts: the rival apps, the listener processes, and a smoke run.

`bench/bench_capacity.py` is only as honest as its load generator: every delivery must be
counted once, a gap or a duplicate reported, each delay measured from the publisher's stamp,
and the rivals must be correct rooms (or they would win by doing less).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx2
import pytest

from server.apps.broadcast_contenders import CONTENDERS, create_app
from server.clients.broadcast_load import LoadProcesses, StampedRecord, publish_paced
from server.clients.publisher import publish_numbered
from server.course.launcher import Server
from server.sse import Decoder, Event

ROOT = Path(__file__).resolve().parent.parent
RIVAL = "server.apps.broadcast_contenders:app"
ROOM = "server.apps.broadcast:app"
DEADLINE = 30.0  # seconds: generous, for a loaded 2-core machine
SLACK_OPEN_LOOP = 0.5  # what a loaded machine may add to 0.2 s of paced sends (1 s if blocked)


def stamped(n: int, sent: float | None = None) -> Event:
    return Event(data=json.dumps({"n": n, "t": time.time() if sent is None else sent}))


def test_a_stamped_record_keeps_each_delay_and_accepts_numbers_in_a_row() -> None:
    record = StampedRecord()
    for n in (7, 8, 9):  # a listener joins the room mid-way: the first number is any
        record.accept(stamped(n, time.time() - 0.25), at=0.1)
    assert (record.events, record.last_id, record.problems) == (3, 9, [])
    assert record.first_event == 0.1
    assert all(0.25 <= delay < 0.25 + DEADLINE for delay in record.delays), record.delays


@pytest.mark.parametrize(
    ("numbers", "problem"),
    [
        ((1, 2, 4), "gap: n=4 after n=2"),
        ((1, 2, 2), "duplicate or out of order: n=2 after n=2"),
        ((1, 3, 2), "duplicate or out of order: n=2 after n=3"),
    ],
)
def test_a_stamped_record_reports_a_gap_or_a_duplicate(
    numbers: tuple[int, ...], problem: str
) -> None:
    record = StampedRecord()
    for n in numbers:
        record.accept(stamped(n), at=0.0)
    assert problem in record.problems
    assert record.events == len(numbers) == len(record.delays)


@pytest.mark.parametrize("data", ["ping", '{"n": 1}', '{"t": 1.5}', '{"n": "x", "t": 1}'])
def test_a_message_without_a_number_and_a_stamp_is_a_problem_not_a_crash(data: str) -> None:
    record = StampedRecord()
    record.accept(Event(data=data), at=0.0)
    assert record.problems and "not a numbered message" in record.problems[0]
    assert record.delays == []


def test_an_unknown_contender_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="CONTENDER must be one of starlette, sse-starlette"):
        create_app("flask")


APPS = [(ROOM, {"BROKER": "memory"})] + [(RIVAL, {"CONTENDER": name}) for name in CONTENDERS]


@pytest.mark.parametrize(("app", "env"), APPS, ids=["course", *CONTENDERS])
def test_every_listener_gets_every_message_once_in_order(
    serve: Callable[..., Server], app: str, env: dict[str, str]
) -> None:
    server = serve(app, env=env)
    with LoadProcesses(server.url + "/events", 30, processes=2) as load:
        assert load.opened == 30 and len(load.processes) == 2
        started = time.time()

        async def publish() -> None:
            async with httpx2.AsyncClient(timeout=DEADLINE) as client:
                await publish_numbered(client, server.url + "/publish", range(1, 11))

        asyncio.run(publish())
        assert load.wait(10, timeout=DEADLINE)
        report = load.report()
    assert (report.open, report.in_order, report.problems) == (30, 30, [])
    assert len(report.delays) == 300 and report.events == 300
    assert all(0 <= delay < time.time() - started for delay in report.delays)
    assert 0 < report.cpu_share < 1


def test_a_report_covers_only_what_arrived_since_the_last_one(
    serve: Callable[..., Server],
) -> None:
    server = serve(RIVAL, env={"CONTENDER": "starlette"})
    with LoadProcesses(server.url + "/events", 5, processes=1) as load, httpx2.Client() as client:
        for n in (1, 2):
            client.post(server.url + "/publish", json={"n": n, "t": time.time()})
        assert load.wait(2, timeout=DEADLINE)
        assert len(load.report().delays) == 10
        client.post(server.url + "/publish", json={"n": 3, "t": time.time()})
        assert load.wait(3, timeout=DEADLINE)
        report = load.report()
    assert len(report.delays) == 5 and report.events == 15


def test_listener_processes_are_gone_after_the_block(serve: Callable[..., Server]) -> None:
    server = serve(RIVAL, env={"CONTENDER": "starlette"})
    with LoadProcesses(server.url + "/events", 4) as load:
        processes = load.processes
    assert [process.returncode for process in processes] == [0, 0]


def test_a_listener_that_cannot_connect_is_counted_not_raised() -> None:
    with LoadProcesses("http://127.0.0.1:9/events", 3, processes=1) as load:  # discard: closed
        assert load.opened == 0
        assert load.ready[0]["errors"] and "Connect" in load.ready[0]["errors"][0]


@pytest.mark.parametrize("contender", ["starlette", "sse-starlette"])
def test_a_silent_room_sends_heartbeats(serve: Callable[..., Server], contender: str) -> None:
    server = serve(RIVAL, env={"CONTENDER": contender, "HEARTBEAT": "0.2"})
    decoder, comments = Decoder(), 0
    with httpx2.stream("GET", server.url + "/events", timeout=DEADLINE) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for chunk in response.iter_bytes():
            comments += chunk.count(b": ping")
            assert list(decoder.feed(chunk)) == []  # a heartbeat is not an event
            if comments >= 2:
                break
    assert comments >= 2


class SlowRoom:
    """A loopback server that answers each pipelined POST 0.1 s after the one before,
    with `status`, and keeps each request's body and arrival time."""

    def __init__(self, status: int = 201) -> None:
        self.status = status
        self.received: list[tuple[float, dict[str, float]]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                body = json.loads(await reader.readexactly(length))
                self.received.append((time.time(), body))
                await asyncio.sleep(0.1)
                answer = b'{"id":null,"worker":"slow"}'
                writer.write(
                    f"HTTP/1.1 {self.status} X\r\nContent-Length: {len(answer)}\r\n\r\n".encode()
                    + answer
                )
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()


def test_the_paced_publisher_keeps_its_pace_and_order_when_answers_come_late() -> None:
    room = SlowRoom()

    async def scenario() -> int:
        server = await asyncio.start_server(room.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            return await publish_paced(f"http://127.0.0.1:{port}/publish", 50, 0.2, first=7)

    assert asyncio.run(scenario()) == 17  # 50/s for 0.2 s: n = 7..16
    assert [body["n"] for _, body in room.received] == list(range(7, 17))
    stamps = [body["t"] for _, body in room.received]
    # All ten went out within about 0.2 s, although each answer took 0.1 s (1 s in all).
    assert stamps[-1] - stamps[0] < 0.2 + SLACK_OPEN_LOOP
    assert stamps == sorted(stamps)


def test_the_paced_publisher_raises_on_an_answer_other_than_201() -> None:
    room = SlowRoom(status=503)

    async def scenario() -> int:
        server = await asyncio.start_server(room.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            return await publish_paced(f"http://127.0.0.1:{port}/publish", 50, 0.1)

    with pytest.raises(RuntimeError, match="publish 1: 503"):
        asyncio.run(scenario())
