"""The lesson 05 page in a real headless Chromium: what EventSource really does.

Chromium missing: these tests skip with the reason, unless COURSE_REQUIRE_BROWSER=1 (CI),
where a missing browser is a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from server.browser import BrowserNotFoundError, find_chromium, launch_options
from server.launcher import Server, free_port, start_app

pytestmark = pytest.mark.browser

APP = "server.streaming:app"
XSS = '<img src=x onerror="window.pwned = true">'


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        find_chromium()
    except BrowserNotFoundError as error:
        if os.environ.get("COURSE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"COURSE_REQUIRE_BROWSER=1 but {error}")
        pytest.skip(str(error))
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(**launch_options())
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


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
        log = httpx.get(f"{second.url}/headers-log").json()
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
    log = httpx.get(f"{app.url}/headers-log").json()
    assert [e["last_event_id"] for e in log if e["path"] == "/events"][-1] == "3"


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


def test_http11_allows_six_connections_per_origin(page: Any, app: Server) -> None:
    page.goto(f"{app.url}/")
    page.evaluate("window.course.openMany(7, 'events?interval=1')")
    page.wait_for_function("window.course.seen.many.filter(s => s === 1).length === 6")
    page.wait_for_timeout(500)  # give the seventh every chance: it must still be waiting
    assert seen(page)["many"].count(0) == 1
    page.evaluate("window.course.closeMany(1)")
    page.wait_for_function("window.course.seen.many.filter(s => s === 1).length === 6")
    assert seen(page)["many"][6] == 1  # the seventh got the freed connection
    page.evaluate("window.course.closeMany()")
