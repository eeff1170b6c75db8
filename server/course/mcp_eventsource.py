"""What a real browser's `EventSource` dispatches for given bytes: lesson 12's priming event.

MCP's priming event (SEP-1699) is an ``id`` with empty ``data``. What a reader does with it is a
question about the WHATWG parsing rules, so the lesson asks a real Chromium rather than
describe them: each body is served, as it is, as ``text/event-stream`` to a page that opens an
`EventSource` on it and records every ``message`` event until the stream ends.

    reads = await eventsource_reads({"priming": b"id: a:1\\ndata: \\n\\n"})
    reads["priming"]     # [{"data": "", "lastEventId": "a:1"}]

Playwright's request routing serves the bytes (the page and the stream share one made-up
origin), so no server is needed and the browser sees exactly the bytes given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from playwright.async_api import Route, async_playwright

from server.course.browser import launch_options

__all__ = ["eventsource_reads"]

ORIGIN = "http://eventsource.test"
PAGE = "<!doctype html><html lang=en><title>EventSource</title><main><h1>reads</h1></main></html>"
READ_ALL = """url => new Promise(resolve => {
    const seen = [];
    const source = new EventSource(url);
    source.onmessage = event => seen.push({data: event.data, lastEventId: event.lastEventId});
    source.onerror = () => { source.close(); resolve(seen); };  // the end of the body
})"""


async def eventsource_reads(bodies: Mapping[str, bytes]) -> dict[str, list[dict[str, Any]]]:
    """For each named body, the ``message`` events a Chromium `EventSource` dispatched."""

    async def serve(route: Route) -> None:
        name = route.request.url.removeprefix(f"{ORIGIN}/streams/")
        if name in bodies:
            await route.fulfill(
                status=200, headers={"Content-Type": "text/event-stream"}, body=bodies[name]
            )
        else:
            await route.fulfill(status=200, headers={"Content-Type": "text/html"}, body=PAGE)

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(**launch_options())
        try:
            page = await browser.new_page()
            await page.route(f"{ORIGIN}/**", serve)
            await page.goto(f"{ORIGIN}/")
            return {name: await page.evaluate(READ_ALL, f"/streams/{name}") for name in bodies}
        finally:
            await browser.close()
