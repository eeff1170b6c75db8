"""server.clients.resume: the browser's rule for an answer, and a client that follows it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest

from server.clients.resume import next_ready_state, read_with_resume
from server.course.launcher import Server, start_app


@pytest.mark.parametrize(
    ("status", "content_type", "state"),
    [
        (None, "", "CONNECTING"),
        (200, "text/event-stream", "OPEN"),
        (200, "text/event-stream; charset=utf-8", "OPEN"),
        (200, "Text/Event-Stream;charset=UTF-8", "OPEN"),
        (200, "text/plain", "CLOSED"),
        (200, "", "CLOSED"),
        (201, "text/event-stream", "CLOSED"),
        (204, "", "CLOSED"),
        (401, "text/html", "CLOSED"),
        (502, "text/html", "CLOSED"),
        (503, "text/event-stream", "CLOSED"),
    ],
)
def test_next_ready_state_follows_the_standard(
    status: int | None, content_type: str, state: str
) -> None:
    assert next_ready_state(status, content_type) == state


@pytest.fixture(scope="module")
def gateway() -> Iterator[Server]:
    with start_app("server.apps.bad_gateway:app") as server:
        yield server


@pytest.mark.parametrize("query", ["status=502", "status=200&type=text/plain", "status=201"])
def test_an_answer_a_browser_would_not_read_is_an_error(gateway: Server, query: str) -> None:
    with pytest.raises(httpx2.HTTPStatusError, match="not an event stream"):
        read_with_resume(f"{gateway.url}/?{query}", 1)


def test_204_ends_the_reading_quietly(gateway: Server) -> None:
    assert read_with_resume(f"{gateway.url}/?status=204", 1) == []
