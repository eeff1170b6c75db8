"""Lesson 06's chat page in a real Chromium: what a streamed reply becomes on the page.

The page (`server/apps/static/chat.html`, `chat.js`, `markdown.js`) renders the model's
Markdown on every delta. Whether that is safe is a question for a browser, not for a
reading of the code: `render_streamed` opens the page served by the relay, answers its
``POST chat`` with a stream of `reply` cut into small deltas (so that tags and code fences
arrive in pieces), sends a message, and reports what the reply's bubble holds once ``done``
has arrived. The relay's model is not asked: the page's request is answered by Playwright.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from playwright.async_api import Route, async_playwright

from server.course.browser import launch_options


@dataclass(frozen=True)
class Rendered:
    """The reply's bubble, after the stream ended."""

    html: str  # its innerHTML: what the page built from the model's text
    elements: list[str]  # the tag names inside it, in order
    code_blocks: list[str]  # the text of each <pre>
    script_ran: bool  # whether an onerror= or <script> in the reply ran (window.pwned)


def relayed(reply: str, size: int = 3) -> str:
    """The relay's SSE body for `reply`, in deltas of `size` characters, then ``done``."""
    deltas = [reply[i : i + size] for i in range(0, len(reply), size)]
    events = [f"data: {json.dumps({'delta': delta})}\n\n" for delta in deltas]
    return "".join(events) + 'event: done\ndata: {"finish_reason":"stop"}\n\n'


async def render_streamed(page_url: str, reply: str, size: int = 3) -> Rendered:
    """Stream `reply` to the chat page at `page_url` (the relay's ``/``) over fetch + POST."""
    body = relayed(reply, size)

    async def answer(route: Route) -> None:
        headers = {"content-type": "text/event-stream"}
        await route.fulfill(status=200, headers=headers, body=body)

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(**launch_options())
        try:
            page = await browser.new_page()
            page.set_default_timeout(10_000)
            await page.route(lambda url: url.split("?")[0].endswith("/chat"), answer)
            await page.goto(page_url)
            await page.select_option("#transport", "fetch")
            await page.fill("#message", "show me")
            await page.click("#send")
            await page.wait_for_function("document.body.dataset.state === 'done'")
            bubble = page.locator(".assistant").last
            found: dict[str, Any] = await bubble.evaluate(
                """(node) => ({
                    html: node.innerHTML,
                    elements: [...node.querySelectorAll("*")].map((e) => e.localName),
                    code: [...node.querySelectorAll("pre")].map((e) => e.textContent),
                    ran: window.pwned === true,
                })"""
            )
        finally:
            await browser.close()
    return Rendered(found["html"], found["elements"], found["code"], found["ran"])
