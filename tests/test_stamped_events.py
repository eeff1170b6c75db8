"""The stamped events app (lesson 08) and the client that measures it, against a real server."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx2
import pytest
from conftest import wait_until

from server.clients.delivery_times import Delivery, deliveries, latest
from server.clients.sse_client import connect_sse
from server.course.launcher import Server, start_app
from server.sse import Decoder

APP = "server.apps.stamped_events:app"


@pytest.fixture(scope="module")
def app() -> Iterator[Server]:
    with start_app(APP) as server:
        yield server


def test_events_are_numbered_and_stamped_with_their_send_time(app: Server) -> None:
    before = time.time()
    body = httpx2.get(f"{app.url}/events?limit=3&interval=0").content
    events = Decoder().feed(body)
    assert [e.id for e in events] == ["1", "2", "3"]
    data = [json.loads(e.data) for e in events]
    assert [d["n"] for d in data] == [1, 2, 3]
    assert all(before <= d["sent"] <= time.time() for d in data)
    assert b"retry: 1000" in body and body.count(b"retry:") == 1  # on the first event only


def test_resumes_after_last_event_id_and_refuses_a_bad_one(app: Server) -> None:
    url = f"{app.url}/events?limit=4&interval=0"
    after = {"Last-Event-ID": "2"}
    with httpx2.Client() as client, connect_sse(client, "GET", url, headers=after) as resumed:
        assert [e.id for e in resumed] == ["3", "4"]
    refused = httpx2.get(url, headers={"Last-Event-ID": "x2"})
    assert refused.status_code == 400
    assert "Last-Event-ID" in refused.json()["detail"]


def test_x_accel_buffering_only_when_asked(app: Server) -> None:
    plain = httpx2.get(f"{app.url}/events?limit=1&interval=0")
    asked = httpx2.get(f"{app.url}/events?limit=1&interval=0&accel=no")
    assert "x-accel-buffering" not in plain.headers
    assert asked.headers["x-accel-buffering"] == "no"
    assert plain.headers["content-type"].startswith("text/event-stream")


def test_x_peer_port_names_the_connection(app: Server) -> None:
    with httpx2.Client() as client:
        ports = {client.get(f"{app.url}/events?limit=1&interval=0").headers["x-peer-port"]}
        ports.add(client.get(f"{app.url}/").headers["x-peer-port"])
    assert len(ports) == 1, "one kept-alive connection, one port"
    other = httpx2.get(f"{app.url}/", headers={"Connection": "close"}).headers["x-peer-port"]
    assert other not in ports


def test_heartbeats_and_padding(app: Server) -> None:
    body = httpx2.get(f"{app.url}/events?limit=2&interval=0.35&heartbeat=0.1&pad=7").content
    first, rest = body.split(b"\n\n", 1)
    between, last = rest.rsplit(b"id: 2", 1)
    assert b"heartbeat" not in first + last, "heartbeats only fill the wait between events"
    assert 1 <= between.count(b": heartbeat\n") <= 3  # 0.1, 0.2, 0.3 s in (fewer if slow)
    events = Decoder().feed(body)
    assert [json.loads(e.data)["pad"] for e in events] == ["x" * 7] * 2


def test_stats_count_finished_and_cancelled_streams(app: Server) -> None:
    httpx2.post(f"{app.url}/stats/reset").raise_for_status()
    httpx2.get(f"{app.url}/events?limit=1&interval=0").raise_for_status()
    with httpx2.stream("GET", f"{app.url}/events?interval=10") as response:
        next(response.iter_bytes())

    def counts() -> dict[str, int]:
        return dict(httpx2.get(f"{app.url}/stats").json()["events"])

    wait_until(lambda: counts()["cancelled"] == 1, "the stream its client left to be cancelled")
    after = counts()
    assert (after["finished"], after["cancelled"], after["active"]) == (1, 1, 0)


def test_the_page_is_an_origin_for_browsers(app: Server) -> None:
    page = httpx2.get(f"{app.url}/")
    assert page.status_code == 200 and "stamped events" in page.text


def test_deliveries_pair_send_and_arrival_times(app: Server) -> None:
    found = deliveries(f"{app.url}/events?limit=3&interval=0.2")
    assert [d.id for d in found] == ["1", "2", "3"]
    for d in found:
        assert -0.05 < d.sent <= d.received  # the app's clock and ours: the same machine
        assert d.late == d.received - d.sent
    assert 0.3 < found[-1].sent < 2.0  # sent 0.4 s after the first, give or take the load
    assert latest(found) == max(d.late for d in found)


def test_latest_of_nothing_is_zero() -> None:
    assert latest([]) == 0.0
    assert latest([Delivery("1", 0.0, 0.25)]) == 0.25


def test_deliveries_raise_for_an_error_status(app: Server) -> None:
    with pytest.raises(httpx2.HTTPStatusError):
        deliveries(f"{app.url}/events?limit=1", headers={"Last-Event-ID": "bad"})
