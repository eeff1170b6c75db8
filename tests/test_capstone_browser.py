"""The capstone's page in a real Chromium, behind nginx, on two workers and one Redis.

Send, stream, stop, reload (history restored, a reply in progress read again), a worker
SIGKILLed mid-reply (the page reconnects with Last-Event-ID and the other worker finishes the
reply), and a refusal shown as its sentence. Each reply is compared with the fake model's
deterministic text for the seed the page was given, so a lost or repeated token fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from conftest import wait_until

from server.apps.fake_openai.model import reply_for
from server.course.capstone_stack import Capstone, start_capstone

pytestmark = [pytest.mark.browser, pytest.mark.nginx, pytest.mark.redis]

TOKENS = 40
ENDED = "['done', 'error', 'stopped', 'refused'].includes(document.body.dataset.state)"
STREAMING = "document.body.dataset.state === 'streaming'"


@pytest.fixture(scope="module")
def stack() -> Iterator[Capstone]:
    fake = {"FAKE_OPENAI_TPS": "10", "FAKE_OPENAI_TTFT": "0.2", "FAKE_OPENAI_TOKENS": str(TOKENS)}
    env = {"LEASE_SECONDS": "1.5", "SWEEP_SECONDS": "0.25", "MAX_MESSAGE_CHARS": "100"}
    with start_capstone(workers=2, env=env, fake_env=fake) as running:
        yield running


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()  # a new user: its own cookie and localStorage
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


def send(page: Any, message: str) -> None:
    page.fill("#message", message)
    page.click("#send")


def assistant_text(page: Any) -> str:
    return str(page.locator("#log .assistant").last.text_content())


def expected(page: Any, message: str) -> str:
    return reply_for(message, int(page.evaluate("document.body.dataset.seed")), TOKENS)


def test_send_and_stream_then_reload_restores_the_history(page: Any, stack: Capstone) -> None:
    page.goto(stack.url)
    page.wait_for_function("document.body.dataset.state === 'idle'")
    message = "<img src=x onerror=alert(1)> what is SSE?"
    send(page, message)
    page.wait_for_function(STREAMING)
    page.wait_for_function(ENDED)
    assert page.evaluate("document.body.dataset.state") == "done", page.text_content("#log")
    reply = expected(page, message)
    assert assistant_text(page) == reply
    assert page.locator("#log .user").last.text_content() == message  # text, not markup
    assert page.locator("#log img").count() == 0
    page.reload()
    page.wait_for_function("document.body.dataset.state === 'idle'")
    assert page.locator("#log .user").all_text_contents() == [message]
    assert page.locator("#log .assistant").all_text_contents() == [reply]
    assert "restored 2 messages" in str(page.text_content("#status"))


def test_stop_ends_the_reply_and_the_upstream_generation(page: Any, stack: Capstone) -> None:
    assert stack.upstream is not None
    cancelled = httpx2.get(f"{stack.upstream.url}/stats").json()["cancelled"]
    page.goto(stack.url)
    page.wait_for_function("document.body.dataset.state === 'idle'")
    send(page, "please stop me")
    page.wait_for_function("document.querySelector('#log .assistant')?.textContent.length > 0")
    page.click("#stop")
    page.wait_for_function("document.body.dataset.state === 'stopped'")
    shown = assistant_text(page)
    assert 0 < len(shown) < len(expected(page, "please stop me"))
    upstream = f"{stack.upstream.url}/stats"
    cancelling = "the upstream generation cancelled"
    wait_until(lambda: httpx2.get(upstream).json()["cancelled"] > cancelled, cancelling)
    assert page.is_enabled("#send") and not page.is_enabled("#stop")


def test_reload_mid_reply_reads_the_reply_again_to_its_end(page: Any, stack: Capstone) -> None:
    page.goto(stack.url)
    page.wait_for_function("document.body.dataset.state === 'idle'")
    send(page, "reload me halfway")
    page.wait_for_function("document.querySelector('#log .assistant')?.textContent.length > 20")
    reply = expected(page, "reload me halfway")
    page.reload()
    page.wait_for_function(ENDED)
    assert page.evaluate("document.body.dataset.state") == "done", page.text_content("#log")
    assert page.locator("#log .assistant").all_text_contents() == [reply]


def test_a_worker_killed_mid_reply_the_page_resumes_on_the_other(
    page: Any, stack: Capstone
) -> None:
    page.goto(stack.url)
    page.wait_for_function("document.body.dataset.state === 'idle'")
    send(page, "outlive your worker")
    page.wait_for_function("document.querySelector('#log .assistant')?.textContent.length > 20")
    owner = str(page.text_content("#status")).removeprefix("generating on worker ")
    assert owner in stack.workers, page.text_content("#status")
    stack.workers[owner].kill()
    try:
        page.wait_for_function(ENDED)
        assert page.evaluate("document.body.dataset.state") == "done", page.text_content("#log")
        assert assistant_text(page) == expected(page, "outlive your worker")
        assert int(page.evaluate("document.body.dataset.reconnects")) >= 1
        assert "took the reply over" in str(page.text_content("#status"))
    finally:
        stack.workers[owner].restart()


def test_a_refusal_is_shown_as_its_sentence(page: Any, stack: Capstone) -> None:
    page.goto(stack.url)
    page.wait_for_function("document.body.dataset.state === 'idle'")
    send(page, "x" * 101)
    page.wait_for_function("document.body.dataset.state === 'refused'")
    shown = str(page.locator("#log .error").last.text_content())
    assert "101 characters, at most 100" in shown and "(413)" in shown
