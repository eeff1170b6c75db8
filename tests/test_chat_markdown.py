"""Lesson 06's chat page renders streamed Markdown safely, in a real headless Chromium.

The reply arrives in deltas that cut a code fence and an HTML tag in pieces; the page renders
the whole text again on each delta (`server/apps/static/markdown.js`). An ``<img onerror>``
in the model's text must stay text, and a fenced block must become a ``<pre>``.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlparse

import pytest

from server.course.launcher import Server

pytestmark = pytest.mark.browser

XSS = '<img src=x onerror="window.pwned = true">'
REPLY = f"Here is {XSS} and `x = 1`.\n\n```python\nprint('<b>hi</b>')\n```\n\nThe end."


def relayed(text: str, size: int) -> str:
    """The relay's stream of `text`, in deltas of `size` characters, then done."""
    deltas = [text[i : i + size] for i in range(0, len(text), size)]
    events = [f"data: {json.dumps({'delta': d})}\n\n" for d in deltas]
    return "".join(events) + 'event: done\ndata: {"finish_reason":"stop"}\n\n'


def send(page: Any, relay: Server, transport: str, body: str) -> Any:
    def fulfill(route: Any) -> None:
        route.fulfill(status=200, headers={"content-type": "text/event-stream"}, body=body)

    page.route(lambda url: urlparse(url).path == "/chat", fulfill)
    page.goto(f"{relay.url}/")
    page.select_option("#transport", transport)
    page.fill("#message", "show me")
    page.click("#send")
    page.wait_for_function("['done', 'error', 'cut-off'].includes(document.body.dataset.state)")
    assert page.evaluate("document.body.dataset.state") == "done"
    return page.locator(".assistant").last


@pytest.mark.parametrize("transport", ["fetch", "eventsource"])
def test_model_html_stays_text_and_a_fence_becomes_pre(
    page: Any, relay: Server, transport: str
) -> None:
    bubble = send(page, relay, transport, relayed(REPLY, 3))  # tags and fences cut in pieces
    assert bubble.locator("img, b, script").count() == 0  # no element from the model's text
    assert page.evaluate("window.pwned") is None
    paragraphs = bubble.locator("p").all_text_contents()
    assert paragraphs == [f"Here is {XSS} and x = 1.", "The end."]
    assert bubble.locator("p code").all_text_contents() == ["x = 1"]
    assert bubble.locator("pre > code").all_text_contents() == ["print('<b>hi</b>')"]


def test_an_unclosed_fence_is_already_code_while_it_streams(page: Any, relay: Server) -> None:
    page.goto(f"{relay.url}/")
    html = page.evaluate(
        """async (text) => {
            const { renderMarkdown } = await import("./markdown.js");
            const div = document.createElement("div");
            div.append(renderMarkdown(text));
            return div.innerHTML;
        }""",
        "Look:\n```js\nlet a = '<i>';",
    )
    assert html == "<p>Look:</p><pre><code>let a = '&lt;i&gt;';</code></pre>"
