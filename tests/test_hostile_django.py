"""Lesson 07's Django project under gunicorn (WSGI): its django-eventstream endpoint is refused.

django-eventstream answers `/library/events` with an async iterator that never ends. Under
WSGI a thread consumes it, forever: four GETs left gunicorn's threads all taken and the server
unable to answer anything. Under WSGI it is now a 501 that says to serve the project with ASGI.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest

from server.course.launcher import Server, start_gunicorn

WSGI = "server.apps.django_streams.wsgi:application"
THREADS = 2


@pytest.fixture(scope="module")
def wsgi() -> Iterator[Server]:
    with start_gunicorn(WSGI, threads=THREADS) as server:
        yield server


def test_the_library_stream_is_refused_under_wsgi_and_the_server_still_answers(
    wsgi: Server,
) -> None:
    with httpx2.Client(base_url=wsgi.url, timeout=10) as client:
        for _ in range(THREADS + 2):
            with client.stream("GET", "/library/events") as response:
                assert response.status_code == 501, response.status_code
                assert "ASGI" in response.read().decode()
        assert client.get("/").status_code == 200
