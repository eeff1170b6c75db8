"""The lesson 05 page in a real headless Chromium: what EventSource really does.

Chromium missing: these tests skip with the reason, unless COURSE_REQUIRE_BROWSER=1 (CI),
where a missing browser is a failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlparse

import httpx2
import pytest

from server.course.launcher import Server, free_port, start_app
from server.seed_texts import PROMPT, REPLY
from server.sse import Decoder

pytestmark = pytest.mark.browser

APP = "server.apps.fastapi_streams:app"
XSS = '<img src=x onerror="window.pwned = true">'


@pytest.fixture(scope="module")
def app() -> Iterator[Server]:
    with start_app(APP) as server:
        yield server


def seen(page: Any) -> dict[str, Any]:
    return page.evaluate("window.course.seen")


def all_ids(state: dict[str, Any]) -> list[int]:
    return sorted(int(m["id"]) for m in state["messages"] + state["named"])


def test_events_arrive_with_named_events_and_ready_state(page: Any, app: Server) -> None:
    page.goto(f"{app.url}/?src=" + quote("events?interval=0.05"))
    page.wait_for_function("window.course.seen.messages.length >= 8")
    state = seen(page)
    assert state["states"][:2] == ["CONNECTING", "OPEN"]
    assert page.text_content("#state") == "1 OPEN"
    # The fifth event is named: onmessage never saw it, the "milestone" listener did.
    assert "5" not in [m["id"] for m in state["messages"]]
    assert state["named"][0] == {"type": "milestone", "id": "5", "data": '{"n": 5, "square": 25}'}
    assert all_ids(state) == list(range(1, len(all_ids(state)) + 1))


def test_browser_reconnects_after_a_restart_and_misses_nothing(page: Any) -> None:
    port = free_port()
    first = start_app(APP, port=port)
    try:
        page.goto(f"{first.url}/?src=" + quote("events?interval=0.05&retry=200"))
        page.wait_for_function("window.course.seen.messages.length >= 5")
    finally:
        first.stop()
    page.wait_for_function("window.course.seen.errors >= 1")
    before = all_ids(seen(page))
    assert page.evaluate("window.course.seen.states.at(-1)") == "CONNECTING"  # retrying alone
    with start_app(APP, port=port) as second:
        page.wait_for_function("window.course.seen.opens >= 2")
        page.wait_for_function(f"window.course.seen.messages.length >= {len(before) + 5}")
        log = httpx2.get(f"{second.url}/headers-log").json()
    ids = all_ids(seen(page))
    assert ids == list(range(1, len(ids) + 1)), "a gap or a duplicate across the restart"
    assert log[0]["path"] == "/events"
    assert log[0]["last_event_id"] == str(before[-1])  # the browser said where it stopped


def test_204_ends_reconnection(page: Any, app: Server) -> None:
    page.goto(f"{app.url}/?src=" + quote("events?interval=0&until=3&retry=100"))
    page.wait_for_function("window.course.seen.states.at(-1) === 'CLOSED'")
    state = seen(page)
    assert all_ids(state) == [1, 2, 3]
    assert state["opens"] == 1  # it reconnected once, got 204, and gave up for good
    log = httpx2.get(f"{app.url}/headers-log").json()
    assert [e["last_event_id"] for e in log if e["path"] == "/events"][-1] == "3"


def test_a_502_closes_event_source_for_good_and_the_page_level_retry_resumes(page: Any) -> None:
    port = free_port()
    first = start_app(APP, port=port)
    plain, reopening = page, page.context.new_page()
    stream = "events?interval=0.05&retry=100"
    try:
        plain.goto(f"{first.url}/?src=" + quote(stream))
        reopening.goto(f"{first.url}/?reopen=1&src=" + quote(stream))
        for each in (plain, reopening):
            each.wait_for_function("window.course.seen.messages.length >= 3")
    finally:
        first.stop()
    # A deploy: the proxy answers 502 while the app is away.
    with start_app("server.apps.bad_gateway:app", port=port):
        plain.wait_for_function("window.course.seen.states.at(-1) === 'CLOSED'")
        reopening.wait_for_function("window.course.seen.pageRetries >= 1")
    closed_with = len(seen(plain)["messages"])
    before = all_ids(seen(reopening))
    with start_app(APP, port=port):
        reopening.wait_for_function(f"window.course.seen.messages.length >= {len(before) + 5}")
        state = seen(plain)
    ids = all_ids(seen(reopening))
    assert ids == list(range(1, len(ids) + 1)), "a gap or a duplicate across the 502"
    # The plain EventSource never tried again: a CLOSED source stays closed.
    assert state["states"][-1] == "CLOSED"
    assert len(state["messages"]) == closed_with
    reopening.close()


def test_html_in_events_is_shown_as_text(page: Any, app: Server) -> None:
    page.goto(f"{app.url}/?src=" + quote("echo?text=" + quote(XSS)))
    page.wait_for_function("window.course.seen.messages.length >= 1")
    assert page.text_content("#messages li") == f"#1 {XSS}"
    assert page.locator("#messages img").count() == 0
    assert page.evaluate("window.pwned === undefined")


def test_fetch_streams_a_post_response_as_text(page: Any, app: Server) -> None:
    page.goto(f"{app.url}/")
    chat = page.evaluate("message => window.course.chat(message)", XSS)
    assert chat["status"] == 200
    assert chat["done"] is True
    assert chat["text"].startswith(f"“{XSS}”")
    assert page.text_content("#reply") == chat["text"]
    assert page.locator("#reply img").count() == 0
    assert page.evaluate("window.pwned === undefined")


def test_fetch_chat_asks_for_an_event_stream(page: Any, app: Server) -> None:
    # jupyter-server-proxy streams a response as it comes only when the request's Accept is
    # exactly text/event-stream; any other fetch() it buffers whole, so on a hub the reply
    # would appear all at once at the end.
    page.goto(f"{app.url}/")
    with page.expect_request(lambda request: request.url.endswith("/chat")) as request:
        page.evaluate("window.course.chat('hi')")
    assert request.value.headers["accept"] == "text/event-stream"


def test_http11_allows_six_connections_per_origin(page: Any, app: Server) -> None:
    page.goto(f"{app.url}/")
    httpx2.post(f"{app.url}/stats/reset")  # empties the log of stream requests
    page.evaluate("window.course.openMany(7, 'events?interval=0.05')")
    # Not a fixed wait: by the time six sources have 5 events each, the seventh had its chance.
    page.wait_for_function("window.course.seen.manyMessages.filter(n => n >= 5).length === 6")
    state = seen(page)
    assert state["many"].count(0) == 1 and state["manyMessages"].count(0) == 1, state
    log = httpx2.get(f"{app.url}/headers-log").json()
    assert len(log) == 6, "the seventh request must not even leave the browser"
    page.evaluate("window.course.closeMany(1)")
    page.wait_for_function("window.course.seen.many.filter(s => s === 1).length === 6")
    assert seen(page)["many"][6] == 1  # the seventh got the freed connection
    page.evaluate("window.course.closeMany()")


# --- sse.js: the parser the fetch code of both pages uses ---------------------------------------

# Every rule lesson 03 lists, with all three line ends mixed: comments, one space stripped (not
# two), a field without a colon, several data lines, `event:` and `id:`, a block with no data
# (dispatches nothing), an empty data line (dispatches ""), an unknown field, and CR alone.
TRICKY = (
    ": hello\r\n"
    "data:  two spaces\r\n"
    "data:no space\n"
    "\r\n"
    "event: milestone\rid: 7\rdata: 안녕\r\r"
    "id: 8\nevent: ignored\n\n"
    "data\r\nretry: 250\r\nfoo: bar\r\n\r\n"
    "data: last\r\n"
    "\r\n"
    "data: never finished\r\n"
)

PARSE_PIECES = """async (cuts) => {
  const { EventStreamParser } = await import("./static/sse.js");
  return cuts.map((pieces) => {
    const parser = new EventStreamParser();
    return pieces.map((piece) => parser.feed(piece));
  });
}"""


def python_events(pieces: list[str]) -> list[list[dict[str, str]]]:
    """What server.sse.Decoder (the reference) completes after each piece."""
    decoder = Decoder()
    return [
        [{"type": e.event, "data": e.data, "lastEventId": e.id} for e in decoder.feed(p.encode())]
        for p in pieces
    ]


def test_sse_js_parses_like_the_python_decoder_however_the_text_is_cut(
    page: Any, app: Server
) -> None:
    page.goto(f"{app.url}/")
    cuts = [[TRICKY[:i], TRICKY[i:]] for i in range(len(TRICKY) + 1)]
    cuts.append(list(TRICKY))  # one character at a time
    results = page.evaluate(PARSE_PIECES, cuts)
    whole = [event for events in results[0] for event in events]
    assert whole == [
        {"type": "message", "data": " two spaces\nno space", "lastEventId": ""},
        {"type": "milestone", "data": "안녕", "lastEventId": "7"},
        {"type": "message", "data": "", "lastEventId": "8"},
        {"type": "message", "data": "last", "lastEventId": "8"},
    ]
    for pieces, got in zip(cuts, results, strict=True):
        # Same events, completed after the same piece: nothing dispatched early or late.
        assert got == python_events(pieces), pieces


def test_sse_js_does_not_take_a_cut_crlf_for_an_empty_line(page: Any, app: Server) -> None:
    page.goto(f"{app.url}/")
    pieces = ["data: a\r", "\ndata: b\r", "\n\r", "\n"]
    # The bug: read "\r" then "\n" as two line ends, and "a" and "b" become two events.
    assert page.evaluate(PARSE_PIECES, [pieces])[0] == [
        [],
        [],
        [{"type": "message", "data": "a\nb", "lastEventId": ""}],
        [],
    ]


def test_sse_js_read_events_decodes_bytes_cut_anywhere(page: Any, app: Server) -> None:
    page.goto(f"{app.url}/")
    body = "data: 안녕\r\n\r\nevent: done\r\ndata: {}\r\n\r\n".encode()
    cut = body.index("안".encode()) + 1  # inside a character
    crlf = body.index(b"\r\n\r\nevent") + 1  # between a CR and its LF
    chunks = [list(body[:cut]), list(body[cut:crlf]), list(body[crlf:])]
    events = page.evaluate(
        """async (chunks) => {
          const { readEvents } = await import("./static/sse.js");
          const body = new ReadableStream({ start(controller) {
            for (const chunk of chunks) controller.enqueue(new Uint8Array(chunk));
            controller.close();
          } });
          const events = [];
          for await (const event of readEvents(new Response(body))) events.push(event);
          return events;
        }""",
        chunks,
    )
    assert events == [
        {"type": "message", "data": "안녕", "lastEventId": ""},
        {"type": "done", "data": "{}", "lastEventId": ""},
    ]


# Replaces the page's fetch of "chat" with a body that arrives in exactly these pieces.
FAKE_CHAT_FETCH = """(pieces) => {
  const realFetch = window.fetch;
  window.fetch = (url, init) => {
    if (url !== "chat") return realFetch(url, init);
    const encoder = new TextEncoder();
    const body = new ReadableStream({ start(controller) {
      for (const piece of pieces) controller.enqueue(encoder.encode(piece));
      controller.close();
    } });
    const headers = { "Content-Type": "text/event-stream" };
    return Promise.resolve(new Response(body, { headers }));
  };
}"""


def test_fetch_chat_survives_a_crlf_cut_between_reads(page: Any, app: Server) -> None:
    page.goto(f"{app.url}/")
    # One event whose JSON spans two data lines, its CRLFs cut between reads: taken for an
    # empty line, the cut would dispatch `{"token":` alone, which is not JSON.
    pieces = ['data: {"token":\r', '\ndata: "x"}\r', "\n\r", "\n", "data: [DONE]\r\n\r\n"]
    page.evaluate(FAKE_CHAT_FETCH, pieces)
    chat = page.evaluate("window.course.chat('ignored')")
    assert (chat["text"], chat["tokens"], chat["done"]) == ("x", 1, True)


# --- the chat view of server/apps/llm_relay (lesson 06), which uses sse.js too -------

HELLO, HELLO_REPLY = PROMPT, REPLY  # the seeds' prompt and the fake model's answer


def send_in_chat_view(page: Any, transport: str, message: str) -> str:
    page.select_option("#transport", transport)
    page.fill("#message", message)
    page.click("#send")
    page.wait_for_function("['done', 'error'].includes(document.body.dataset.state)")
    assert page.evaluate("document.body.dataset.state") == "done", page.text_content("#log")
    return page.locator(".assistant").last.text_content()


def test_chat_view_streams_a_reply_over_both_transports(page: Any, relay: Server) -> None:
    assert httpx2.get(f"{relay.url}/sse.js").headers["content-type"].startswith("text/javascript")
    page.goto(f"{relay.url}/")
    assert send_in_chat_view(page, "fetch", HELLO) == HELLO_REPLY
    assert send_in_chat_view(page, "eventsource", HELLO) == HELLO_REPLY


@pytest.mark.parametrize("transport", ["fetch", "eventsource"])
def test_chat_view_shows_a_reply_cut_off_without_done(
    page: Any, relay: Server, transport: str
) -> None:
    # The relay's stream as a proxy that lost the relay would end it: a delta, then the end
    # of the body, with neither `done` nor `error`. The page must not wait forever.
    def cut_off(route: Any) -> None:
        body = 'data: {"delta":"안녕"}\n\n'
        route.fulfill(status=200, headers={"content-type": "text/event-stream"}, body=body)

    page.route(lambda url: urlparse(url).path == "/chat", cut_off)
    page.goto(f"{relay.url}/")
    page.select_option("#transport", transport)
    page.fill("#message", "hi")
    page.click("#send")
    ended = "['done', 'error', 'cut-off', 'stopped'].includes(document.body.dataset.state)"
    page.wait_for_function(ended, timeout=5_000)
    assert page.evaluate("document.body.dataset.state") == "cut-off"
    assert page.locator(".assistant").last.text_content() == "안녕"  # what came is kept
    assert "cut off" in page.locator(".error").last.text_content()
    assert page.is_enabled("#send") and not page.is_enabled("#stop")


def test_chat_view_survives_a_crlf_cut_between_reads(page: Any, relay: Server) -> None:
    page.goto(f"{relay.url}/")
    pieces = ['data: {"delta":\r', '\ndata: "hi"}\r', "\n\r", "\nevent: done\r\ndata: {}\r\n\r\n"]
    page.evaluate(FAKE_CHAT_FETCH, pieces)
    assert send_in_chat_view(page, "fetch", "ignored") == "hi"


def test_try_stream_reports_a_cors_refusal_and_a_cookie_only_with_credentials(
    page: Any, app: Server
) -> None:
    """app.js's tryStream (lesson 05, section 6): a cross-origin EventSource without CORS is
    closed for good with nothing delivered; with CORS it receives, and the cookie goes along
    only with withCredentials."""
    with start_app(APP) as plain, start_app(APP, env={"COURSE_CORS_ORIGINS": app.url}) as api:
        page.goto(f"{app.url}/")
        page.evaluate("document.cookie = 'course_session=demo; path=/'")

        def try_stream(server: Server, credentials: bool) -> dict[str, Any]:
            url = f"{server.url}/events?limit=2&interval=0"
            return page.evaluate("([u, c]) => window.course.tryStream(u, c)", [url, credentials])

        assert try_stream(plain, False) == {"messages": 0, "outcome": "failed, CLOSED"}
        assert (
            try_stream(api, False)
            == try_stream(api, True)
            == {
                "messages": 2,
                "outcome": "received",
            }
        )
        cookies = [entry["cookie"] for entry in httpx2.get(f"{api.url}/headers-log").json()]
        assert cookies == [False, True], cookies
        slow = page.evaluate("window.course.tryStream('events?interval=60', false, 300)")
        assert slow["outcome"] == "timed out" and slow["messages"] < 2, slow
