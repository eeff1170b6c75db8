"""server.apps.fastapi_streams against a real uvicorn on a free port: streams read to their end."""

from __future__ import annotations

import json
import re
import statistics
import time
from collections.abc import Iterator

import httpx  # only for httpx-sse: its connect_sse takes an httpx.Client, not an httpx2 one
import httpx2
import pytest
from httpx_sse import connect_sse

from server.apps.fastapi_streams import event_for
from server.clients import sse_client
from server.clients.resume import read_with_resume
from server.clients.stall import ping_latencies_during, seconds_behind_open_streams
from server.course.launcher import Server, start_app
from server.seed_texts import LIFTOFF, REPLY
from server.sse import Decoder, Event

APP = "server.apps.fastapi_streams:app"
DEADLINE = 10.0  # seconds: generous, for a loaded machine; the behaviour takes far less


@pytest.fixture(scope="module")
def app() -> Iterator[Server]:
    """One server for the read-only tests of this module (starting one costs about a second)."""
    with start_app(APP) as server:
        yield server


def read_events(url: str, method: str = "GET", **kwargs: object) -> tuple[httpx2.Response, bytes]:
    """The response and its whole body, read as a stream."""
    with httpx2.stream(method, url, timeout=20, **kwargs) as response:  # type: ignore[arg-type]
        return response, response.read()


def decode(body: bytes) -> list[Event]:
    decoder = Decoder()
    return decoder.feed(body) + decoder.close()


def assert_sse_headers(response: httpx2.Response) -> None:
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"


# --- the hand-made streams ------------------------------------------------------------------


def test_countdown_streams_one_event_per_interval(app: Server) -> None:
    arrivals: list[float] = []
    events: list[Event] = []
    url = f"{app.url}/countdown?start=3&interval=0.3"
    with httpx2.Client(timeout=20) as client, sse_client.connect_sse(client, "GET", url) as stream:
        assert_sse_headers(stream.response)
        start = time.perf_counter()
        for event in stream:  # each one as soon as its last byte arrives
            events.append(event)
            arrivals.append(time.perf_counter() - start)
    assert [e.data for e in events] == ["3", "2", "1", LIFTOFF]
    # Three pauses of 0.3 s lie between the first event and the last: streamed, they arrive
    # about 0.9 s apart; sent in one burst at the end, a few milliseconds apart.
    assert arrivals[-1] - arrivals[0] > 0.3, arrivals


def test_countdown_defaults_are_the_seeds(app: Server) -> None:
    _, body = read_events(f"{app.url}/countdown?interval=0")
    assert [e.data for e in decode(body)] == ["5", "4", "3", "2", "1", LIFTOFF]


def test_countdown_plain_has_no_framing(app: Server) -> None:
    response = httpx2.get(f"{app.url}/countdown-plain")
    assert response.text == f"54321{LIFTOFF}"  # where does one message end? nobody can tell


def test_fake_llm_streams_the_reply_then_done(app: Server) -> None:
    response, body = read_events(f"{app.url}/fake-llm?delay=0")
    assert_sse_headers(response)
    tokens = [e.data for e in decode(body)]
    assert tokens[-1] == "[DONE]"
    assert "".join(tokens[:-1]) == REPLY
    assert len(tokens) == len(REPLY) + 1  # one character per event, spaces included


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
    assert events[0].retry == 1500 and all(e.retry is None for e in events[1:])
    # The comment and `retry` ride on the first event: no block of their own (see below).
    assert body.startswith(b": resuming after 0\ndata: ")


def test_events_read_by_an_independent_parser(app: Server) -> None:
    with (
        httpx.Client(timeout=20) as client,
        connect_sse(client, "GET", f"{app.url}/events?limit=5&interval=0") as source,
    ):
        events = list(source.iter_sse())
    # A block with `retry` but no data would reach httpx-sse (and the openai client) as an
    # event with empty data, which a browser never dispatches: `retry` rides on event 1.
    assert events[0].retry == 1000
    assert [(e.event, e.id, e.json()["n"]) for e in events] == [
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


def test_resume_after_an_id_in_the_url(app: Server) -> None:
    # A new EventSource cannot send Last-Event-ID: a page that reconnects by itself (lesson
    # 05) puts the id in the URL. The header, which the browser sets itself, wins.
    _, body = read_events(f"{app.url}/events?limit=2&interval=0&lastEventId=41")
    assert [e.id for e in decode(body)] == ["42", "43"]
    url = f"{app.url}/events?limit=1&interval=0&lastEventId=41"
    _, body = read_events(url, headers={"Last-Event-ID": "7"})
    assert [e.id for e in decode(body)] == ["8"]
    bad = httpx2.get(f"{app.url}/events?lastEventId=x")
    assert bad.status_code == 400
    assert "lastEventId" in bad.json()["detail"]


def test_reconnecting_client_loses_and_duplicates_nothing(app: Server) -> None:
    # Each connection ends after 4 events; the client resumes 4 times to get 17.
    events = read_with_resume(f"{app.url}/events?limit=4&interval=0&retry=10", 17)
    assert [int(e.id) for e in events] == list(range(1, 18))


def test_until_ends_the_stream_and_204_stops_reconnection(app: Server) -> None:
    events = read_with_resume(f"{app.url}/events?limit=4&until=6&interval=0&retry=10", 100)
    assert [e.id for e in events] == ["1", "2", "3", "4", "5", "6"]
    response = httpx2.get(f"{app.url}/events?until=6", headers={"Last-Event-ID": "6"})
    assert response.status_code == 204
    assert response.content == b""


@pytest.mark.parametrize("bad", ["abc", "-1", "1.5", "1 2", "３".encode(), "9" * 19])
def test_malformed_last_event_id_is_a_clear_400(app: Server, bad: str | bytes) -> None:
    response = httpx2.get(f"{app.url}/events?limit=1", headers={"Last-Event-ID": bad})
    assert response.status_code == 400
    assert "Last-Event-ID" in response.json()["detail"]


def test_heartbeats_fill_the_gaps_between_events(app: Server) -> None:
    _, body = read_events(f"{app.url}/events?limit=3&interval=0.5&heartbeat=0.1")
    # Before event 1, between 1 and 2, between 2 and 3, after 3. About four beats fit in each
    # 0.5 s gap; one is enough to keep a proxy from cutting the connection.
    around_events = re.split(rb"data: [^\n]*\nid: \d+\n(?:retry: \d+\n)?\n", body)
    beats = [piece.count(b": heartbeat\n\n") for piece in around_events]
    assert beats[0] == beats[3] == 0 and beats[1] >= 1 and beats[2] >= 1, beats
    assert [e.id for e in decode(body)] == ["1", "2", "3"]  # and they are not events


def test_fastapi_sse_heartbeats_reach_httpx_sse_as_empty_events(app: Server) -> None:
    """fastapi.sse ends every comment with a blank line (it has no other way to send one), and
    once an id was sent, httpx-sse (like the openai client) dispatches an empty event on each
    blank line. Lessons 03 and 04 say which clients see what; this test keeps them honest."""
    url = f"{app.url}/events?limit=2&interval=0.5&heartbeat=0.1"
    with httpx.Client(timeout=20) as client, connect_sse(client, "GET", url) as source:
        events = list(source.iter_sse())
    assert [e.id for e in events if e.data] == ["1", "2"]
    empty = [e for e in events if not e.data]
    assert empty, "a heartbeat after id 1 should reach httpx-sse as an empty event"
    assert {(e.event, e.id) for e in empty} == {("message", "1")}


def test_echo_sends_text_as_is_then_204(app: Server) -> None:
    payload = '<img src=x onerror="alert(1)">'
    response, body = read_events(f"{app.url}/echo", params={"text": payload})
    assert_sse_headers(response)
    assert [(e.data, e.id) for e in decode(body)] == [(payload, "1")]
    again = httpx2.get(f"{app.url}/echo", params={"text": payload}, headers={"Last-Event-ID": "1"})
    assert again.status_code == 204


def test_chat_streams_over_post(app: Server) -> None:
    response, body = read_events(f"{app.url}/chat?delay=0", method="POST", json={"message": "안녕"})
    assert_sse_headers(response)
    events = decode(body)
    assert events[-1].data == "[DONE]"  # raw_data: no JSON quotes
    text = "".join(json.loads(e.data)["token"] for e in events[:-1])  # data: always JSON
    assert text == f"“안녕” {REPLY}"


@pytest.mark.parametrize("text", ["hello", "[DONE]", 'say "hi"\nbye'])
def test_data_is_json_and_raw_data_is_as_is(app: Server, text: str) -> None:
    response, body = read_events(f"{app.url}/data-vs-raw", params={"text": text})
    assert_sse_headers(response)
    as_data, as_raw = decode(body)
    assert as_data.data == json.dumps(text)  # quoted, escaped
    assert as_raw.data == text


def test_data_vs_raw_on_the_wire(app: Server) -> None:
    assert httpx2.get(f"{app.url}/data-vs-raw").content == b'data: "hello"\n\ndata: hello\n\n'


def test_headers_log_records_last_event_id(app: Server) -> None:
    read_events(f"{app.url}/events?limit=1&interval=0", headers={"Last-Event-ID": "99"})
    log = httpx2.get(f"{app.url}/headers-log").json()
    assert log[-1]["path"] == "/events"
    assert log[-1]["last_event_id"] == "99"


def test_page_and_static_files(app: Server) -> None:
    page = httpx2.get(f"{app.url}/")
    assert page.status_code == 200
    assert 'src="static/app.js"' in page.text  # relative: works behind a proxy prefix
    script = httpx2.get(f"{app.url}/static/app.js")
    assert script.status_code == 200
    assert "innerHTML" not in script.text.replace("never innerHTML", "")
    assert 'import("./sse.js")' in script.text  # the shared parser, relative to app.js
    parser = httpx2.get(f"{app.url}/static/sse.js")
    assert parser.status_code == 200
    assert "export class EventStreamParser" in parser.text


# --- cleanup and concurrency: their own servers, so counts start at zero --------------------


def test_generator_is_torn_down_when_the_client_leaves(serve, wait_for) -> None:  # type: ignore[no-untyped-def]
    server = serve(APP)

    def stats() -> dict[str, int]:
        return httpx2.get(f"{server.url}/stats").json().get("events", {})

    # An endless stream: once its client has gone, only a cancellation can end it.
    url = f"{server.url}/events?interval=0.05"
    with httpx2.Client(timeout=20) as client, sse_client.connect_sse(client, "GET", url) as events:
        for n, _ in enumerate(events, 1):
            if n >= 3:
                assert stats()["active"] == 1  # still reading: the generator runs
                break  # leaving the loop closes the connection (httpx2 closes the stream)
    wait_for(lambda: stats().get("active") == 0, "the generator outlived its client")
    assert stats() == {"active": 0, "finished": 0, "cancelled": 1, "failed": 0}


def test_finished_streams_are_counted_as_finished(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(APP)
    read_events(f"{server.url}/events?limit=2&interval=0")
    read_events(f"{server.url}/countdown?start=1&interval=0")
    stats = httpx2.get(f"{server.url}/stats").json()
    assert stats["events"] == {"active": 0, "finished": 1, "cancelled": 0, "failed": 0}
    assert stats["countdown"]["finished"] == 1


def test_a_blocking_async_generator_stalls_everyone(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(APP)
    delay = 0.4
    path = f"/sync-vs-async/{{}}?n=3&delay={delay}"
    sync = ping_latencies_during(server.url, path.format("sync"))
    blocked = ping_latencies_during(server.url, path.format("async"))
    # The sleep is the yardstick, and the two sides are orders of magnitude apart: beside the
    # sync stream a ping takes about a millisecond (a few under load: the bound is 25x that);
    # beside the blocking one, a ping waits for the sleeps (the first one measured ~1.2 s: all
    # three), so a generator that blocked the loop could not pass the first assert.
    assert statistics.median(sync) < delay / 4, sync
    assert max(blocked) >= delay, blocked


def test_sync_streams_hold_a_worker_thread_each(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(APP)
    # Async streams wait on the event loop and hold no thread: a sync endpoint answers at once.
    events = "/events?interval=0.5&limit=2"
    waits = seconds_behind_open_streams(server.url, events, 60, ["/ping-sync"])
    assert waits["/ping-sync"] < DEADLINE / 10, waits
    # Each sync countdown sleeps in one of anyio's 40 worker threads. With 40 of them open, a
    # plain `def` endpoint and a 41st countdown wait for a thread; the event loop does not.
    hold = 3.0
    countdown = f"/countdown?start=1&interval={hold}"
    quick_countdown = "/countdown?start=1&interval=0"
    probes = ["/ping", "/ping-sync", quick_countdown]
    waits = seconds_behind_open_streams(server.url, countdown, 40, probes)
    assert waits["/ping"] < hold / 3, waits
    assert waits["/ping-sync"] > hold / 3, waits
    assert waits[quick_countdown] > hold / 3, waits
    # With one thread left, nobody waits: the limit is exactly 40.
    waits = seconds_behind_open_streams(server.url, countdown, 39, probes[1:])
    assert max(waits.values()) < hold / 3, waits
    counts = httpx2.get(f"{server.url}/stats").json()["countdown"]
    assert counts == {"active": 0, "finished": 40 + 39 + 2, "cancelled": 0, "failed": 0}


def test_an_abandoned_sync_generator_is_closed_by_the_garbage_collector(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(APP)

    def counts() -> dict[str, int]:
        return httpx2.get(f"{server.url}/stats").json()["countdown"]

    countdown = f"{server.url}/countdown?start=3&interval=0.1"
    with httpx2.stream("GET", countdown, timeout=20) as response:
        next(response.iter_raw())  # the first event, then hang up
    read_events(countdown)  # the same countdown, started later, read to its end
    # The abandoned one never finishes: nobody asks its generator for the next event. Its
    # `with` block ends (as "cancelled") only when Python frees it: not at the disconnect.
    before = counts()
    assert before["finished"] == 1 and before["active"] + before["cancelled"] == 1, before
    httpx2.post(f"{server.url}/gc")
    assert counts() == {"active": 0, "finished": 1, "cancelled": 1, "failed": 0}


# --- CORS ------------------------------------------------------------------------------------


def test_cors_is_off_unless_configured(app: Server) -> None:
    response = httpx2.get(f"{app.url}/ping", headers={"Origin": "http://127.0.0.1:1"})
    assert "access-control-allow-origin" not in response.headers


def test_cors_allows_configured_origins_with_credentials(serve) -> None:  # type: ignore[no-untyped-def]
    origin = "http://127.0.0.1:8888"
    server = serve(APP, env={"COURSE_CORS_ORIGINS": origin})
    response, _ = read_events(f"{server.url}/events?limit=1&interval=0", headers={"Origin": origin})
    assert response.headers["access-control-allow-origin"] == origin
    assert response.headers["access-control-allow-credentials"] == "true"
    other = httpx2.get(f"{server.url}/ping", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers
