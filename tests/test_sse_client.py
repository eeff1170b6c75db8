"""The course's SSE client layer: events from a real server, and a clear error for a non-stream."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx2
import pytest

from server.clients.sse_client import NotAnEventStream, connect_sse
from server.course import project
from server.course.launcher import Server
from server.course.stages.run import StageRun


@pytest.fixture(scope="module")
def countdown() -> Iterator[Server]:
    """The reference chat project's app: a countdown with ids, and a 404 elsewhere."""
    run = StageRun(project.REFERENCE)
    yield run.app()
    run.stop()


def test_events_and_the_last_id_come_from_the_course_decoder(countdown: Server) -> None:
    async def read() -> tuple[list[tuple[str | None, str]], str]:
        async with httpx2.AsyncClient(base_url=countdown.url) as client:
            url = "/countdown?start=2&interval=0&launch=a%0Ab"
            async with connect_sse(client, "GET", url) as events:
                return [(event.id, event.data) async for event in events], events.last_event_id

    got, last = asyncio.run(read())
    assert got == [("2", "2"), ("1", "1"), ("0", "a\nb")] and last == "0"


@pytest.mark.parametrize(
    ("path", "headers", "error"),
    [
        ("/nothing", {}, r"^404 application/json: '\{\"detail\""),
        ("/countdown", {"Last-Event-ID": "0"}, r"^204 no content-type: ''$"),
    ],
)
def test_an_answer_that_is_not_a_stream_says_what_it_was(
    countdown: Server, path: str, headers: dict[str, str], error: str
) -> None:
    async def read() -> None:
        async with (
            httpx2.AsyncClient(base_url=countdown.url) as client,
            connect_sse(client, "GET", path, headers=headers),
        ):
            pass

    with pytest.raises(NotAnEventStream, match=error):
        asyncio.run(read())
