"""server.apps.bad_gateway: the answers a proxy gives while its app is down, on a real server."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest

from server.course.launcher import Server, start_app


@pytest.fixture(scope="module")
def gateway() -> Iterator[Server]:
    with start_app("server.apps.bad_gateway:app") as server:
        yield server


def test_every_request_gets_502_with_an_html_page(gateway: Server) -> None:
    for method, path in [("GET", "/events?interval=1"), ("POST", "/chat"), ("GET", "/")]:
        response = httpx2.request(method, gateway.url + path)
        assert response.status_code == 502
        assert response.headers["content-type"].startswith("text/html")
        assert "502 Bad Gateway" in response.text


def test_status_and_type_can_be_chosen(gateway: Server) -> None:
    response = httpx2.get(f"{gateway.url}/", params={"status": 200, "type": "text/event-stream"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    no_content = httpx2.get(f"{gateway.url}/", params={"status": 204})
    assert (no_content.status_code, no_content.content) == (204, b"")


@pytest.mark.parametrize("status", ["abc", "99", "1000"])
def test_a_status_that_is_not_one_is_a_400(gateway: Server, status: str) -> None:
    response = httpx2.get(f"{gateway.url}/", params={"status": status})
    assert response.status_code == 400
    assert "HTTP status code" in response.text
