"""Lesson 07's Django project under gunicorn (WSGI): its django-eventstream endpoint is refused.

django-eventstream answers `/library/events` with an async iterator that never ends. Under
WSGI a thread consumes it, forever: four GETs left gunicorn's threads all taken and the server
unable to answer anything. Under WSGI it is now a 501 that says to serve the project with ASGI.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest

from server.course.launcher import Server, start_app, start_gunicorn

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


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.1.evil.example", "localhost:1@x"])
def test_a_foreign_host_header_is_a_400_under_wsgi(wsgi: Server, host: str) -> None:
    """The settings say `ALLOWED_HOSTS` protects the loopback default, but no middleware
    called `get_host()`, so any Host was served."""
    answer = httpx2.get(f"{wsgi.url}/", headers={"Host": host}, timeout=10)
    assert answer.status_code == 400, (answer.status_code, answer.text[:200])
    assert httpx2.get(f"{wsgi.url}/", timeout=10).status_code == 200


def test_a_foreign_host_header_is_a_400_under_asgi() -> None:
    with start_app("server.apps.django_streams.asgi:application") as asgi:
        for path in ("/", "/countdown?start=1&interval=0", "/library/events"):
            answer = httpx2.get(asgi.url + path, headers={"Host": "evil.example"}, timeout=10)
            assert answer.status_code == 400, (path, answer.status_code, answer.text[:200])
        assert httpx2.get(f"{asgi.url}/", timeout=10).status_code == 200
