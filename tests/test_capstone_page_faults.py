"""The capstone's page against failures, in a real Chromium, behind nginx, on one worker.

Every fault is injected through Playwright's documented network hooks (`page.route`): a stream
cut after its third event, a malformed event, a chat POST whose answer is lost (the server got
it, the page gets a 502), a history or a Stop request that fails; or by what a real browser
does: a page closed mid-reply, a page on plain HTTP off localhost (`isSecureContext` false, so
no `crypto.randomUUID`). The reconnection delays are read from the page's own `setTimeout`
calls, so `Math.random` fixed by an init script makes the jitter deterministic.

Replies are 8 s long (160 tokens at 20 a second): longer than the page's grace after it is
closed (`api.LEAVE_GRACE`, 5 s), so a closed page's reply is seen stopping, and a reload is seen not
to stop it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from server.apps.fake_openai.model import reply_for
from server.course.browser import launch_options
from server.course.capstone_stack import Capstone, start_capstone
from server.course.stages.hub import PREFIX, start_hub

pytestmark = [pytest.mark.browser, pytest.mark.nginx, pytest.mark.redis]

TOKENS = 160
RETRY_MS = 2000
ENDED = "['done', 'error', 'stopped', 'refused'].includes(document.body.dataset.state)"
IDLE = "document.body.dataset.state === 'idle'"
SHOWING = "document.querySelector('#log .assistant')?.textContent.length > 10"
# The page's waits, as it asked for them: the reconnection delays are its only timers.
RECORD_TIMERS = """
window.timers = [];
const setTimeoutOfTheBrowser = window.setTimeout;
window.setTimeout = (f, ms, ...rest) => {
  window.timers.push(ms);
  return setTimeoutOfTheBrowser(f, ms, ...rest);
};
"""
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


@pytest.fixture(scope="module")
def stack() -> Iterator[Capstone]:
    fake = {"FAKE_OPENAI_TPS": "20", "FAKE_OPENAI_TTFT": "0.1", "FAKE_OPENAI_TOKENS": str(TOKENS)}
    env = {"RETRY_MS": str(RETRY_MS), "MAX_ACTIVE": "20", "RATE_PER_MINUTE": "60"}
    with start_capstone(workers=1, env=env, fake_env=fake) as running:
        yield running


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    context = browser.new_context()  # a new user: its own cookie and localStorage
    context.set_default_timeout(30_000)
    yield context
    context.close()


def opened(context: Any, stack: Capstone, init_script: str = RECORD_TIMERS) -> Any:
    page = context.new_page()
    page.add_init_script(init_script)
    page.goto(stack.url)
    page.wait_for_function(IDLE)
    return page


def send(page: Any, message: str) -> None:
    page.fill("#message", message)
    page.click("#send")


def expected(page: Any, message: str) -> str:
    return reply_for(message, int(page.evaluate("document.body.dataset.seed")), TOKENS)


def replies_shown(page: Any) -> list[str]:
    return [str(text) for text in page.locator("#log .assistant").all_text_contents()]


def state(page: Any) -> str:
    return str(page.evaluate("document.body.dataset.state"))


def cut_after_three_events(route: Any) -> None:
    """The first request of a reply's events: the server's answer, cut after three events."""
    response = route.fetch()
    body = response.body()
    end = 0
    for _ in range(3):
        end = body.index(b"\n\n", end) + 2
    route.fulfill(status=response.status, headers=response.headers, body=body[:end])


@pytest.mark.parametrize(("random", "delay"), [(0.25, 1500), (0.75, 2500)])
def test_a_broken_stream_is_resumed_after_the_servers_retry_with_jitter(
    context: Any, stack: Capstone, random: float, delay: int
) -> None:
    """After a worker dies, its pages must not all come back in the same instant: the page
    waits the server's `retry:` (2 s here), times a random factor from 0.5 to 1.5."""
    page = opened(context, stack, RECORD_TIMERS + f"Math.random = () => {random};")
    cuts: list[str] = []

    def events(route: Any) -> None:
        if cuts:
            route.continue_()
        else:
            cuts.append(route.request.url)
            cut_after_three_events(route)

    page.route("**/api/replies/*/events?*", events)
    send(page, "cut me once")
    page.wait_for_function(ENDED)
    assert state(page) == "done", page.text_content("#log")
    assert replies_shown(page) == [expected(page, "cut me once")]
    assert page.evaluate("window.timers") == [delay]


def test_a_malformed_event_is_reported_once_not_reconnected(context: Any, stack: Capstone) -> None:
    page = opened(context, stack)
    requests: list[str] = []

    def malformed(route: Any) -> None:
        requests.append(route.request.url)
        body = 'retry: 100\nid: 1-0\ndata: {"i": 0, "delta": \n\n'  # JSON cut short
        route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=body)

    page.route("**/api/replies/*/events?*", malformed)
    send(page, "break the parser")
    page.wait_for_function(ENDED, timeout=60_000)
    assert state(page) == "error"
    assert len(requests) == 1, f"the page asked again {len(requests) - 1} times"
    errors = page.locator("#log .error").all_text_contents()
    assert len(errors) == 1 and "malformed" in errors[0], errors
    assert page.is_enabled("#send")


def test_a_send_whose_answer_was_lost_is_retried_with_the_same_key(
    context: Any, stack: Capstone
) -> None:
    """The server accepted the message, but its answer was lost (a 502 from a proxy whose
    worker died after answering): the page sends it again with the same Idempotency-Key, and
    the server answers with the reply the first one started (200, not a second reply)."""
    page = opened(context, stack)
    keys: list[str | None] = []
    statuses: list[int] = []

    def chat(route: Any) -> None:
        keys.append(route.request.headers.get("idempotency-key"))
        response = route.fetch()
        statuses.append(response.status)
        if len(keys) == 1:
            route.fulfill(status=502, body="<html>502 Bad Gateway</html>")
        else:
            route.fulfill(response=response)

    page.route("**/api/chat", chat)
    send(page, "say it once")
    page.wait_for_function(ENDED)
    assert state(page) == "done", page.text_content("#log")
    assert len(keys) == 2 and keys[0] == keys[1] and keys[0] is not None, keys
    assert statuses == [202, 200]
    assert replies_shown(page) == [expected(page, "say it once")]


def test_a_page_on_plain_http_off_localhost_still_makes_its_key(
    browser: Any, stack: Capstone
) -> None:
    """`crypto.randomUUID` exists only in a secure context: not on http://some-host. The page
    is loaded as http://capstone.test (resolved to the loopback stack by Chromium)."""
    options = launch_options()
    options["args"] = [*options["args"], "--host-resolver-rules=MAP capstone.test 127.0.0.1"]
    port = httpx2.URL(stack.url).port
    keys: list[str | None] = []

    def chat(route: Any) -> None:
        keys.append(route.request.headers.get("idempotency-key"))
        route.continue_()

    elsewhere = browser.browser_type.launch(**options)  # a second Chromium, same Playwright
    try:
        page = elsewhere.new_page()
        page.set_default_timeout(30_000)
        page.route("**/api/chat", chat)
        page.goto(f"http://capstone.test:{port}/")
        page.wait_for_function(IDLE)
        assert page.evaluate("window.isSecureContext") is False
        assert page.evaluate("typeof crypto.randomUUID") == "undefined"
        send(page, "no secure context")
        page.wait_for_function(ENDED)
        assert state(page) == "done", page.text_content("#log")
    finally:
        elsewhere.close()
    assert len(keys) == 1 and keys[0] is not None and UUID.fullmatch(keys[0]), keys


@pytest.mark.parametrize("failure", ["unreachable", "not json"])
def test_a_history_that_fails_to_load_leaves_the_page_usable(
    context: Any, stack: Capstone, failure: str
) -> None:
    page = opened(context, stack)
    page.evaluate("localStorage.setItem('capstone.conversation', '0'.repeat(32))")
    if failure == "unreachable":
        page.route("**/api/conversations/*", lambda route: route.abort("connectionrefused"))
    else:  # a proxy's login page, with a 200
        page.route("**/api/conversations/*", lambda route: route.fulfill(body="<html>log in"))
    page.reload()
    page.wait_for_function(IDLE)
    errors = page.locator("#log .error").all_text_contents()
    assert len(errors) == 1 and "history" in errors[0], errors
    assert page.is_enabled("#send")


def test_a_stop_that_fails_says_so_and_stop_works_again(context: Any, stack: Capstone) -> None:
    page = opened(context, stack)
    page.route("**/api/replies/*/stop", lambda route: route.abort("connectionrefused"))
    send(page, "stop me twice")
    page.wait_for_function(SHOWING)
    page.click("#stop")
    page.wait_for_function("document.querySelector('#log .error')")
    assert "could not stop" in str(page.locator("#log .error").last.text_content()).lower()
    assert state(page) == "streaming" and page.is_enabled("#stop")
    page.unroute("**/api/replies/*/stop")
    page.click("#stop")
    page.wait_for_function(ENDED)
    assert state(page) == "stopped"
    assert 0 < len(replies_shown(page)[0]) < len(expected(page, "stop me twice"))


def test_a_closed_page_stops_its_reply(context: Any, stack: Capstone) -> None:
    """Behind jupyter-server-proxy the server never learns that a tab closed: the page's
    `pagehide` beacon says so, and the reply stops once no page has read it for a grace."""
    assert stack.upstream is not None
    cancelled = httpx2.get(f"{stack.upstream.url}/stats").json()["cancelled"]
    page = opened(context, stack)
    send(page, "close me")
    page.wait_for_function(SHOWING)
    history = f"{stack.url}/api/conversations/" + page.evaluate(
        "localStorage.getItem('capstone.conversation')"
    )
    page.close(run_before_unload=True)
    deadline = time.monotonic() + 60
    while context.request.get(history).json()["pending"] is not None:
        assert time.monotonic() < deadline, "the reply never ended"
        time.sleep(0.1)
    last = context.request.get(history).json()["messages"][-1]
    assert last["role"] == "assistant" and last["status"] == "stopped", last
    assert httpx2.get(f"{stack.upstream.url}/stats").json()["cancelled"] > cancelled


@pytest.fixture(scope="module")
def hub() -> Iterator[tuple[str, str]]:
    """(url, token) of a Jupyter server with jupyter-server-proxy, as a JupyterHub runs one."""
    server, token = start_hub()
    try:
        yield server.url, token
    finally:
        server.kill()  # it holds nothing to save


def test_a_closed_page_behind_jupyter_server_proxy_stops_its_reply(
    context: Any, stack: Capstone, hub: tuple[str, str]
) -> None:
    """The case the beacon is for: the proxy keeps its connection to the app open after the
    tab's is gone, so the app's stream (a slot, a Redis connection) and the model's
    generation would go on to the reply's end; the beacon stops both."""
    url, token = hub
    page = context.new_page()
    page.goto(f"{url}{PREFIX}api/status?token={token}")  # the hub's login cookie
    page.goto(f"{url}{PREFIX}proxy/{httpx2.URL(stack.url).port}/")
    page.wait_for_function(IDLE)
    send(page, "close me behind the hub")
    page.wait_for_function(SHOWING)
    conv = page.evaluate("localStorage.getItem('capstone.conversation')")
    history = f"{url}{PREFIX}proxy/{httpx2.URL(stack.url).port}/api/conversations/{conv}"
    page.close(run_before_unload=True)
    deadline = time.monotonic() + 60
    while context.request.get(history).json()["pending"] is not None:
        assert time.monotonic() < deadline, "the reply never ended"
        time.sleep(0.1)
    last = context.request.get(history).json()["messages"][-1]
    assert last["role"] == "assistant" and last["status"] == "stopped", last
    while stack.metrics("A")["capstone_open_streams"] > 0:  # the proxy's stream ended too
        assert time.monotonic() < deadline, "the stream behind the proxy stayed open"
        time.sleep(0.1)


def test_a_reload_mid_reply_does_not_stop_it(context: Any, stack: Capstone) -> None:
    """The same beacon goes out on a reload: the reloaded page reads the reply again within
    the grace, so the reply goes on to its end."""
    page = opened(context, stack)
    send(page, "reload me")
    page.wait_for_function(SHOWING)
    reply = expected(page, "reload me")
    page.reload()
    page.wait_for_function(f"{ENDED} || {IDLE}")  # idle: restored as an ended reply
    assert state(page) == "done", page.text_content("#log")
    assert replies_shown(page) == [reply]
