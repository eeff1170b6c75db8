"""The course's SSE client layer, sync and async: events from a real server, an event cut
mid-line put back together, and a clear error for a non-stream."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx2
import pytest

from server.clients.sse_client import EventStream, NotAnEventStream, aconnect_sse, connect_sse
from server.course import project
from server.course.launcher import Server
from server.course.stages.run import StageRun
from server.sse import Event

DEADLINE = 30.0  # seconds: generous, for a loaded 2-core machine

Read = Callable[[str, str, dict[str, str], list[EventStream]], tuple[list[Event], str]]


def read_sync(
    base_url: str, path: str, headers: dict[str, str], opened: list[EventStream]
) -> tuple[list[Event], str]:
    """The events of `path` and the last id, through `connect_sse`; `opened` gets the stream."""
    with (
        httpx2.Client(base_url=base_url, timeout=DEADLINE) as client,
        connect_sse(client, "GET", path, headers=headers) as events,
    ):
        opened.append(events)
        return list(events), events.last_event_id


def read_async(
    base_url: str, path: str, headers: dict[str, str], opened: list[EventStream]
) -> tuple[list[Event], str]:
    """`read_sync` through `aconnect_sse`."""

    async def read() -> tuple[list[Event], str]:
        async with (
            httpx2.AsyncClient(base_url=base_url, timeout=DEADLINE) as client,
            aconnect_sse(client, "GET", path, headers=headers) as events,
        ):
            opened.append(events)
            return [event async for event in events], events.last_event_id

    return asyncio.run(read())


READERS = pytest.mark.parametrize("read", [read_sync, read_async], ids=["sync", "async"])


@pytest.fixture(scope="module")
def countdown() -> Iterator[Server]:
    """The reference chat project's app: a countdown with ids, and a 404 elsewhere."""
    run = StageRun(project.REFERENCE)
    yield run.app()
    run.stop()


@READERS
def test_events_and_the_last_id_come_from_the_course_decoder(countdown: Server, read: Read) -> None:
    got, last = read(countdown.url, "/countdown?start=2&interval=0&launch=a%0Ab", {}, [])
    assert [(event.id, event.data) for event in got] == [("2", "2"), ("1", "1"), ("0", "a\nb")]
    assert last == "0"


@READERS
@pytest.mark.parametrize(
    ("path", "headers", "error"),
    [
        ("/nothing", {}, r"^404 application/json: '\{\"detail\""),
        ("/countdown", {"Last-Event-ID": "0"}, r"^204 no content-type: ''$"),
    ],
)
def test_an_answer_that_is_not_a_stream_says_what_it_was(
    countdown: Server, read: Read, path: str, headers: dict[str, str], error: str
) -> None:
    with pytest.raises(NotAnEventStream, match=error):
        read(countdown.url, path, headers, [])


class SplitStream:
    """A loopback server whose one event is cut mid-line: it sends the rest only on `go`, so
    the client reads the first piece as a chunk of its own, whatever TCP would have merged."""

    FIRST = b"id: 7\ndata: hel"
    REST = b"lo\n\n"
    # A media type is case-insensitive, and may have parameters: an EventSource reads this.
    TYPE = b"Content-Type: Text/Event-Stream; charset=utf-8\r\n"
    HEAD = b"HTTP/1.1 200 OK\r\n" + TYPE + b"Connection: close\r\n\r\n"

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.go = threading.Event()
        self.request = b""
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        connection, _ = self.listener.accept()
        with connection:
            while b"\r\n\r\n" not in self.request and (piece := connection.recv(4096)):
                self.request += piece
            connection.sendall(self.HEAD + self.FIRST)
            if self.go.wait(DEADLINE):
                connection.sendall(self.REST)

    def __enter__(self) -> SplitStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.go.set()
        self.thread.join(DEADLINE)
        self.listener.close()


@READERS
def test_an_event_cut_mid_line_comes_out_whole(read: Read, wait_for: Callable[..., float]) -> None:
    opened: list[EventStream] = []
    with SplitStream() as server, ThreadPoolExecutor(1) as pool:
        reading = pool.submit(read, server.url, "/", {}, opened)

        def first_piece_read() -> bool:
            return reading.done() or (
                bool(opened) and opened[0].response.num_bytes_downloaded == len(server.FIRST)
            )

        wait_for(first_piece_read, "the client to read the first piece alone")
        assert not reading.done(), reading.result()  # half a line is no event, nor an end
        server.go.set()
        got, last = reading.result(DEADLINE)
    assert got == [Event("hello", "message", "7")] and last == "7"


class EndlessText(SplitStream):
    """A 200 `text/plain` that sends a first piece and then nothing until `go`: no stream."""

    HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
    FIRST = b"not a stream"


@READERS
def test_a_wrong_answer_that_never_ends_is_refused_at_its_first_chunk(read: Read) -> None:
    with EndlessText() as server, ThreadPoolExecutor(1) as pool:
        reading = pool.submit(read, server.url, "/", {}, [])
        with pytest.raises(NotAnEventStream, match=r"^200 text/plain: 'not a stream'$"):
            reading.result(DEADLINE / 2)  # the server holds the rest for DEADLINE


@READERS
def test_an_accept_header_in_any_case_replaces_the_default(read: Read) -> None:
    with SplitStream() as server, ThreadPoolExecutor(1) as pool:
        reading = pool.submit(read, server.url, "/", {"accept": "text/event-stream;q=1"}, [])
        server.go.set()
        reading.result(DEADLINE)
    accepts = [
        line for line in server.request.lower().split(b"\r\n") if line.startswith(b"accept:")
    ]
    assert accepts == [b"accept: text/event-stream;q=1"]
