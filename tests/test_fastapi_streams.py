"""server.apps.fastapi_streams against a real uvicorn on a free port: streams read to their end."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterator

import httpx
import pytest
from httpx_sse import connect_sse

from server.apps.fastapi_streams import FAKE_REPLY, event_for, parse_last_event_id
from server.clients.resume import read_with_resume
from server.clients.stall import ping_latencies_during
from server.course.launcher import Server, start_app
from server.sse import Decoder, Event

APP = "server.apps.fastapi_streams:app"


@pytest.fixture(scope="module")
def app() -> Iterator[Server]:
    """One server for the read-only tests of this module (starting one costs about a second)."""
    with start_app(APP) as server:
        yield server


def read_events(url: str, method: str = "GET", **kwargs: object) -> tuple[httpx.Response, bytes]:
    """The response and its whole body, read as a stream."""
    with httpx.stream(method, url, timeout=20, **kwargs) as response:  # type: ignore[arg-type]
        return response, response.read()


def decode(body: bytes) -> list[Event]:
    decoder = Decoder()
    return decoder.feed(body) + decoder.close()


def assert_sse_headers(response: httpx.Response) -> None:
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"


# --- the hand-made streams ------------------------------------------------------------------


def test_countdown_streams_one_event_per_interval(app: Server) -> None:
    arrivals: list[float] = []
    decoder = Decoder()
    events: list[Event] = []
    with httpx.stream("GET", f"{app.url}/countdown?start=3&interval=0.2", timeout=20) as response:
        assert_sse_headers(response)
        start = time.perf_counter()
        for chunk in response.iter_bytes():
            for event in decoder.feed(chunk):
                events.append(event)
                arrivals.append(time.perf_counter() - start)
    assert [e.data for e in events] == ["3", "2", "1", "발사!"]
    # They arrive spread out, not in one burst at the end: that is streaming.
    assert arrivals[-1] - arrivals[0] > 0.45, arrivals


def test_countdown_defaults_are_the_seeds(app: Server) -> None:
    _, body = read_events(f"{app.url}/countdown?interval=0")
    assert [e.data for e in decode(body)] == ["5", "4", "3", "2", "1", "발사!"]


def test_countdown_plain_has_no_framing(app: Server) -> None:
    response = httpx.get(f"{app.url}/countdown-plain")
    assert response.text == "54321발사!"  # where does one message end? nobody can tell


def test_fake_llm_streams_the_reply_then_done(app: Server) -> None:
    response, body = read_events(f"{app.url}/fake-llm?delay=0")
    assert_sse_headers(response)
    tokens = [e.data for e in decode(body)]
    assert tokens[-1] == "[DONE]"
    assert "".join(tokens[:-1]) == FAKE_REPLY
    assert len(tokens) == len(FAKE_REPLY) + 1  # one character per event, spaces included


# --- the native FastAPI stream -------------------------------------------------------------


def test_events_are_a_function_of_their_id(app: Server) -> None:
    response, body = read_events(f"{app.url}/events?limit=7&interval=0&retry=1500")
    assert_sse_headers(response)
    events = decode(body)
    assert [e.id for e in events] == [str(n) for n in range(1, 8)]
    for event in events:
        expected = event_for(int(event.id))
        assert json.loads(event.data) == expected.data
        assert event.event == (expected.event or "message")
    assert events[4].event == "milestone"
    assert body.startswith(b": resuming after 0\nretry: 1500\n\n")


def test_events_read_by_an_independent_parser(app: Server) -> None:
    with (
        httpx.Client(timeout=20) as client,
        connect_sse(client, "GET", f"{app.url}/events?limit=5&interval=0") as source,
    ):
        events = list(source.iter_sse())
    # httpx-sse diverges from the standard here: the opening block (a comment and `retry`,
    # no data) comes out as an event with empty data, which a browser never dispatches.
    assert (events[0].data, events[0].retry) == ("", 1000)
    assert [(e.event, e.id, e.json()["n"]) for e in events[1:]] == [
        ("message", "1", 1),
        ("message", "2", 2),
        ("message", "3", 3),
        ("message", "4", 4),
        ("milestone", "5", 5),
    ]


def test_resume_after_last_event_id(app: Server) -> None:
    _, body = read_events(f"{app.url}/events?limit=3&interval=0", headers={"Last-Event-ID": "41"})
    events = decode(body)
    assert [e.id for e in events] == ["42", "43", "44"]
    assert [json.loads(e.data)["n"] for e in events] == [42, 43, 44]


def test_reconnecting_client_loses_and_duplicates_nothing(app: Server) -> None:
    # Each connection ends after 4 events; the client resumes 4 times to get 17.
    events = read_with_resume(f"{app.url}/events?limit=4&interval=0&retry=10", 17)
    assert [int(e.id) for e in events] == list(range(1, 18))


def test_until_ends_the_stream_and_204_stops_reconnection(app: Server) -> None:
    events = read_with_resume(f"{app.url}/events?limit=4&until=6&interval=0&retry=10", 100)
    assert [e.id for e in events] == ["1", "2", "3", "4", "5", "6"]
    response = httpx.get(f"{app.url}/events?until=6", headers={"Last-Event-ID": "6"})
    assert response.status_code == 204
    assert response.content == b""


@pytest.mark.parametrize("bad", ["abc", "-1", "1.5", "1 2", "３".encode(), "9" * 19])
def test_malformed_last_event_id_is_a_clear_400(app: Server, bad: str | bytes) -> None:
    response = httpx.get(f"{app.url}/events?limit=1", headers={"Last-Event-ID": bad})
    assert response.status_code == 400
    assert "Last-Event-ID" in response.json()["detail"]


@pytest.mark.parametrize(
    ("value", "expected"), [(None, 0), ("", 0), ("0", 0), ("7", 7), ("000123", 123)]
)
def test_parse_last_event_id(value: str | None, expected: int) -> None:
    assert parse_last_event_id(value) == expected


def test_heartbeats_fill_the_gaps_between_events(app: Server) -> None:
    _, body = read_events(f"{app.url}/events?limit=3&interval=0.25&heartbeat=0.1")
    assert body.count(b": heartbeat\n\n") >= 2 * 2  # two gaps, at least two beats each
    assert [e.id for e in decode(body)] == ["1", "2", "3"]  # and they are not events


def test_echo_sends_text_as_is_then_204(app: Server) -> None:
    payload = '<img src=x onerror="alert(1)">'
    response, body = read_events(f"{app.url}/echo", params={"text": payload})
    assert_sse_headers(response)
    assert [(e.data, e.id) for e in decode(body)] == [(payload, "1")]
    again = httpx.get(f"{app.url}/echo", params={"text": payload}, headers={"Last-Event-ID": "1"})
    assert again.status_code == 204


def test_chat_streams_over_post(app: Server) -> None:
    response, body = read_events(f"{app.url}/chat?delay=0", method="POST", json={"message": "안녕"})
    assert_sse_headers(response)
    events = decode(body)
    assert events[-1].data == "[DONE]"  # raw_data: no JSON quotes
    text = "".join(json.loads(e.data)["token"] for e in events[:-1])  # data: always JSON
    assert text == f"“안녕” {FAKE_REPLY}"


@pytest.mark.parametrize("text", ["hello", "[DONE]", 'say "hi"\nbye'])
def test_data_is_json_and_raw_data_is_as_is(app: Server, text: str) -> None:
    response, body = read_events(f"{app.url}/data-vs-raw", params={"text": text})
    assert_sse_headers(response)
    as_data, as_raw = decode(body)
    assert as_data.data == json.dumps(text)  # quoted, escaped
    assert as_raw.data == text


def test_data_vs_raw_on_the_wire(app: Server) -> None:
    assert httpx.get(f"{app.url}/data-vs-raw").content == b'data: "hello"\n\ndata: hello\n\n'


def test_headers_log_records_last_event_id(app: Server) -> None:
    read_events(f"{app.url}/events?limit=1&interval=0", headers={"Last-Event-ID": "99"})
    log = httpx.get(f"{app.url}/headers-log").json()
    assert log[-1]["path"] == "/events"
    assert log[-1]["last_event_id"] == "99"


def test_page_and_static_files(app: Server) -> None:
    page = httpx.get(f"{app.url}/")
    assert page.status_code == 200
    assert 'src="static/app.js"' in page.text  # relative: works behind a proxy prefix
    script = httpx.get(f"{app.url}/static/app.js")
    assert script.status_code == 200
    assert "innerHTML" not in script.text.replace("never innerHTML", "")
    assert 'import("./sse.js")' in script.text  # the shared parser, relative to app.js
    parser = httpx.get(f"{app.url}/static/sse.js")
    assert parser.status_code == 200
    assert "export class EventStreamParser" in parser.text


# --- cleanup and concurrency: their own servers, so counts start at zero --------------------


def wait_for(predicate, timeout: float) -> float:  # type: ignore[no-untyped-def]
    """Poll `predicate` until it is true; return the seconds it took (fail after `timeout`)."""
    start = time.perf_counter()
    while not predicate():
        if time.perf_counter() - start > timeout:
            raise AssertionError(f"not true after {timeout} s")
        time.sleep(0.02)
    return time.perf_counter() - start


def test_generator_is_torn_down_when_the_client_leaves(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(APP)

    def stats() -> dict[str, int]:
        return httpx.get(f"{server.url}/stats").json().get("events", {})

    with httpx.stream("GET", f"{server.url}/events?interval=0.05", timeout=20) as response:
        decoder = Decoder()
        got: list[Event] = []
        for chunk in response.iter_bytes():
            got += decoder.feed(chunk)
            if len(got) >= 3:
                assert stats()["active"] == 1  # still reading: the generator runs
                break  # leaving the loop closes the connection (httpx closes the stream)
    left = wait_for(lambda: stats().get("active") == 0, timeout=5)
    assert stats() == {"active": 0, "finished": 0, "cancelled": 1, "failed": 0}
    assert left < 1.0, f"the generator outlived its client by {left:.2f} s"


def test_finished_streams_are_counted_as_finished(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(APP)
    read_events(f"{server.url}/events?limit=2&interval=0")
    read_events(f"{server.url}/countdown?start=1&interval=0")
    stats = httpx.get(f"{server.url}/stats").json()
    assert stats["events"] == {"active": 0, "finished": 1, "cancelled": 0, "failed": 0}
    assert stats["countdown"]["finished"] == 1


def test_a_blocking_async_generator_stalls_everyone(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(APP)
    path = "/sync-vs-async/{}?n=3&delay=0.4"
    sync = ping_latencies_during(server.url, path.format("sync"))
    blocked = ping_latencies_during(server.url, path.format("async"))
    assert statistics.median(sync) < 0.1, sync
    assert max(blocked) > 0.2, blocked
    assert len(sync) > 5 * len(blocked), (len(sync), len(blocked))


# --- CORS ------------------------------------------------------------------------------------


def test_cors_is_off_unless_configured(app: Server) -> None:
    response = httpx.get(f"{app.url}/ping", headers={"Origin": "http://127.0.0.1:1"})
    assert "access-control-allow-origin" not in response.headers


def test_cors_allows_configured_origins_with_credentials(serve) -> None:  # type: ignore[no-untyped-def]
    origin = "http://127.0.0.1:8888"
    server = serve(APP, env={"COURSE_CORS_ORIGINS": origin})
    response, _ = read_events(f"{server.url}/events?limit=1&interval=0", headers={"Origin": origin})
    assert response.headers["access-control-allow-origin"] == origin
    assert response.headers["access-control-allow-credentials"] == "true"
    other = httpx.get(f"{server.url}/ping", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers
