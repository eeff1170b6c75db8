"""Stage 3 (lesson 05): the learner's own page shows the countdown with `EventSource`.

How it is checked: the learner's app runs under uvicorn, and `/` is their `static/index.html`
(the app's static mount). The checker reads `/` with httpx2, then opens the page in a real
headless Chromium (Playwright) at `/?start=3&interval=0.3` and reads, from the page itself, the
list items, the `role="status"` element after every change (a MutationObserver) and the page's
`EventSource` objects. It opens the page with an `<img onerror>` payload as the launch text; it
kills the app in the middle of a countdown and starts it again on the same port
(`server.kill()`, then `server.restart()`: a crash cuts the stream at a known point, where a
graceful stop lets it run on for its 1 s grace); and last it opens the page through a real
Jupyter server with jupyter-server-proxy under `/user/learner/`, as a JupyterHub serves it
(`/user/learner/proxy/PORT/`). The real proxy rather than an nginx location standing in for it:
it is the one whose rules the page must meet (it streams only for `Accept: text/event-stream`,
which `EventSource` sends; a path from the root leaves the proxy), and it starts well within the
deadline: 3 to 8 s here with the hub's other server extensions off, in the background while the
browser behaviours run. The whole check takes 17 s on this 2-core machine at a load of 7, 26 to
34 s at 10 to 12; the stubs fail in about 5 s, before Chromium starts.

The restart is checked directly, not through the proxy: behind jupyter-server-proxy a server
that is down is a 5xx, which closes an `EventSource` for good
(tests/test_jupyterhub_proxy.py shows it).
Last in the browser, axe-core (`server.course.axe`) scans the page after the countdown: a
violation of impact serious or critical (an unlabelled control, text too pale to read) misses.
"""

from __future__ import annotations

import asyncio
import re
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import httpx2
from playwright.async_api import Browser, Page, Request, Response, async_playwright
from playwright.async_api import TimeoutError as PlaywrightTimeout

from server.course import axe
from server.course.browser import BrowserNotFoundError, launch_options
from server.course.errors import LauncherError
from server.course.stages.hub import PREFIX, start_hub, stop_hub
from server.course.stages.run import Missed, StageRun
from server.course.stages.waits import wait_until

TITLE = "your page shows the countdown with EventSource: as text, across a restart, via a hub"
LESSON = "05_browser_eventsource"
DEADLINE = 45.0
NEEDS = ("browser",)

LAUNCHED = ["3", "2", "1", "발사!"]
PAYLOAD = '<img src=x onerror="window.pwned=1">'
# Installed before the page's own scripts: every EventSource the page creates, and what the list
# and the status held after each change of the page.
WATCH = """
window.__stage = { sources: [], changes: [] };
const NativeEventSource = window.EventSource;
window.EventSource = class extends NativeEventSource {
  constructor(...args) {
    super(...args);
    window.__stage.sources.push(this);
  }
};
new MutationObserver(() => {
  const status = document.querySelector('[role="status"]');
  window.__stage.changes.push({
    items: document.querySelectorAll("main li").length,
    status: status ? status.textContent : null,
  });
}).observe(document, { subtree: true, childList: true, characterData: true });
"""
SEEN = """() => ({
  items: [...document.querySelectorAll("main li")].map((li) => li.textContent),
  status: document.querySelector('[role="status"]')?.textContent ?? null,
  states: window.__stage.sources.map((source) => source.readyState),
  changes: window.__stage.changes,
  elements: document.querySelectorAll("main li *").length,
  html: document.querySelector("main li")?.parentElement.innerHTML ?? "",
  pwned: window.pwned !== undefined,
})"""
SAYS_DONE = re.compile(r"\bdone\b", re.IGNORECASE)
DONE = "/\\bdone\\b/i.test(document.querySelector('[role=\"status\"]')?.textContent ?? '')"
CLOSED = (
    "window.__stage.sources.length > 0 && window.__stage.sources.every((s) => s.readyState === 2)"
)
# What a screen reader needs from this page, as problems found (empty: none).
LABELLED = """() => {
  const problems = [];
  if (!document.documentElement.lang) problems.push("<html> has no lang");
  const mains = document.querySelectorAll("main").length;
  if (mains !== 1) problems.push(`${mains} <main> elements`);
  const list = document.querySelector("main li")?.parentElement;
  const by = list?.getAttribute("aria-labelledby");
  const named = list?.getAttribute("aria-label") ||
    (by && by.split(/\\s+/).map((id) => document.getElementById(id)?.textContent).join(""));
  if (!named?.trim()) problems.push(`the list <${list?.localName}> has no label`);
  if (list?.closest('[aria-live], [role="status"], [role="log"], [role="alert"]'))
    problems.push("the list is inside a live region: each item would be announced");
  if (document.querySelectorAll('[role="status"]').length !== 1)
    problems.push('not exactly one role="status" element');
  return problems;
}"""


@dataclass
class Tab:
    """One page in a fresh browser context, with what it asked for and what went wrong."""

    page: Page
    status: int = 0  # of the page itself
    errors: list[str] = field(default_factory=list)
    streams: list[Request] = field(default_factory=list)

    async def seen(self) -> dict[str, Any]:
        found: dict[str, Any] = await self.page.evaluate(SEEN)
        return found

    async def wait(self, condition: str, within: float) -> bool:
        """True once the page's `condition` (a JavaScript expression) holds."""
        try:
            await self.page.wait_for_function(condition, timeout=within * 1000)
        except PlaywrightTimeout:
            return False
        return True

    def said(self) -> str:
        return f"; the page's errors: {self.errors[:3]}" if self.errors else ""

    def saw(self, response: Response) -> None:
        """Note an answer of 400 or more, with its path (the console's line names no URL)."""
        path = urlsplit(response.url).path
        if response.status >= 400 and not path.endswith("/favicon.ico"):
            self.errors.append(f"{response.status} for {path}")

    async def asked(self) -> str:
        """The page's EventSource requests, each with the Last-Event-ID it sent."""
        asked = []
        for request in self.streams:
            resumed = (await request.all_headers()).get("last-event-id")
            where = urlsplit(request.url)._replace(scheme="", netloc="").geturl()
            asked.append(where + (f" (Last-Event-ID: {resumed})" if resumed else ""))
        return ", ".join(asked)


async def open_tab(browser: Browser, url: str, *, login: str | None = None) -> Tab:
    context = await browser.new_context()
    await context.add_init_script(WATCH)
    tab = Tab(await context.new_page())
    tab.page.set_default_timeout(15_000)
    # What went wrong in the page: its script's exceptions and the answers it could not use. A
    # lost connection is not one: EventSource retries it.
    tab.page.on("pageerror", lambda error: tab.errors.append(str(error)))
    tab.page.on("response", tab.saw)
    tab.page.on(
        "request", lambda r: tab.streams.append(r) if r.resource_type == "eventsource" else None
    )
    if login:
        await tab.page.goto(login)
    response = await tab.page.goto(url)
    tab.status = response.status if response else 0
    return tab


async def counted_down(
    tab: Tab, expected: list[str], within: float, *, text_only: bool = False
) -> dict[str, Any]:
    """Wait for the status to say done; Missed unless the list is then exactly `expected`
    (and, with `text_only`, holds no element made from the events' text)."""
    ended = await tab.wait(f"{DONE} || {CLOSED}", within)
    done = ended and await tab.wait(DONE, 1)  # a page may say so just after closing
    seen = await tab.seen()
    if text_only and (seen["elements"] or seen["pwned"]):
        raise Missed(
            f"the list's items hold {seen['elements']} element(s) parsed from the text"
            f"{' and its onerror ran (window.pwned is set)' if seen['pwned'] else ''}: "
            f"{seen['html'][-120:]!r}"
        )
    if not done or seen["items"] != expected:
        status = seen["status"]
        said = 'no role="status" element' if status is None else f"the status said {status!r}"
        raise Missed(
            f"the list held {seen['items']}, {said}"
            f"{'' if ended else f' after {within:g} s'}; EventSource requests: {await tab.asked()}"
            + tab.said()
        )
    return seen


async def check(run: StageRun) -> None:
    app = run.app()
    async with httpx2.AsyncClient(base_url=app.url, timeout=10) as client:
        with run.step(
            "GET / answers 200 text/html: your page, with a <script>",
            hint="in mychat/static/index.html, between the STAGE 3 markers: a labelled <ol>, a "
            '<p role="status">, and <script src="countdown.js" defer></script>; the app serves '
            "static/ at /",
        ):
            response = await client.get("/")
            kind = response.headers.get("content-type", "")
            if response.status_code != 200 or not kind.startswith("text/html"):
                raise Missed(f"{response.status_code} {kind!r} {response.text[:80]!r}")
            if "<script" not in response.text:
                raise Missed(f"a page with no <script>: {response.text[:200]!r}")

    async with async_playwright() as playwright, AsyncExitStack() as stack:
        # The last behaviour's Jupyter server starts meanwhile (seconds of CPU on a busy machine).
        hub = asyncio.ensure_future(asyncio.to_thread(start_hub))
        stack.push_async_callback(stop_hub, hub)
        with run.step(
            'opened at /?start=3&interval=0.3, it opens EventSource("countdown" + location.search)',
            hint='in mychat/static/countdown.js: `new EventSource("countdown" + location.search)`'
            " (the page's own errors, if any, are in `received`)",
        ):
            try:
                browser = await playwright.chromium.launch(**launch_options())
            except BrowserNotFoundError as error:
                raise Missed(str(error)) from None
            stack.push_async_callback(browser.close)
            tab = await open_tab(browser, app.url + "/?start=3&interval=0.3")
            wanted = app.url + "/countdown?start=3&interval=0.3"
            # An error in the page (a typo, a 404 for the script) fails this at once.
            await wait_until(lambda: tab.streams or tab.errors, within=10)
            if not tab.streams and not await wait_until(lambda: tab.streams, within=1):
                raise Missed("the page opened no EventSource" + tab.said())
            if tab.streams[0].url != wanted:
                raise Missed(f"it asked for {tab.streams[0].url}, not {wanted}")

        with run.step(
            "it shows 3, 2, 1, 발사! as list items in order, then its status says done, once",
            hint="in `source.onmessage`, append an <li> with `item.textContent = event.data`; when "
            '`event.lastEventId === "0"` (the launch), close the source and set the role="status" '
            'element\'s text to say "done" (only then: each change of it is read out). A 404 or '
            "500 for /countdown is stages 1-2: finish them, or `make catch-up STAGE=3`",
        ):
            seen = await counted_down(tab, LAUNCHED, within=15)
            said = [c for c in seen["changes"] if c["items"] < len(LAUNCHED) and c["status"]]
            if any(SAYS_DONE.search(c["status"]) for c in said):
                early = next(c for c in said if SAYS_DONE.search(c["status"]))
                raise Missed(f"the status said {early['status']!r} with {early['items']} items")
            if len({c["status"] for c in said}) > 1:  # "Counting down…" alone is fine
                raise Missed(f"the status said {sorted({c['status'] for c in said})} on the way")

        with run.step(
            "after the launch, the stream is closed (no reconnection)",
            hint='call `source.close()` once the launch (id "0") has arrived; until then, '
            "EventSource reconnects whenever a stream ends",
        ):
            if not await tab.wait(CLOSED, 8):
                raise Missed(f"readyState of each EventSource: {(await tab.seen())['states']}")

        with run.step(
            'it is labelled: <html lang>, one <main>, a labelled list, one role="status"',
            hint='<html lang="en">; <ol aria-labelledby="ID-of-a-heading">; one <p role="status"> '
            "for the done message, and no aria-live on the list (each item would be announced)",
        ):
            problems = await tab.page.evaluate(LABELLED)
            if problems:
                raise Missed("; ".join(problems))

        with run.step(
            "axe-core finds nothing serious or critical on the page",
            hint="each line says the rule axe-core applies and the element that breaks it; "
            "search the rule's id with 'axe' for how to meet it",
        ):
            found = await axe.scan(tab.page)
            if axe.blocking(found):
                raise Missed(axe.report(found))
        await tab.page.context.close()

        with run.step(
            "a launch text of <img src=x onerror=...> appears as text, and no script runs",
            hint="`item.textContent = event.data`, never innerHTML: the event's data is text, "
            "whoever wrote it",
        ):
            tab = await open_tab(
                browser, app.url + "/?start=1&interval=0.1&launch=" + quote(PAYLOAD)
            )
            await counted_down(tab, ["1", PAYLOAD], within=15, text_only=True)
            await tab.page.context.close()

        with run.step(
            "your server crashes mid-countdown and restarts: the page resumes, each number once",
            hint="let EventSource reconnect by itself (it sends Last-Event-ID): no new EventSource "
            "in onerror, no clearing of the list on open",
        ):
            tab = await open_tab(browser, app.url + "/?start=6&interval=0.3")
            if not await tab.wait('document.querySelectorAll("main li").length >= 2', 15):
                raise Missed(f"the list held {(await tab.seen())['items']} before the crash")
            app.kill()  # as a crash would: the stream is cut after 6, 5 (or 4)
            try:
                await asyncio.to_thread(app.restart)
            except LauncherError as error:
                raise Missed(f"your app did not start again: {error}") from None
            await counted_down(tab, [*map(str, range(6, 0, -1)), "발사!"], within=25)
            await tab.page.context.close()

        with run.step(
            f"through a hub's proxy ({PREFIX}proxy/PORT/), the page counts down to done",
            hint='relative URLs only: "countdown" + location.search and src="countdown.js"; a '
            'path from the root ("/countdown") leaves the proxy path and reaches the hub instead',
        ):
            try:
                server, token = await asyncio.shield(hub)
            except LauncherError as error:
                raise Missed(
                    f"could not start Jupyter with jupyter-server-proxy: {error}"
                ) from None
            page = f"{server.url}{PREFIX}proxy/{app.port}/?start=3&interval=0.3"
            # Any request with the token gets the Jupyter server's login cookie.
            tab = await open_tab(
                browser, page, login=f"{server.url}{PREFIX}api/status?token={token}"
            )
            if tab.status == 404:
                raise Missed(
                    "the Jupyter server answered 404 for the proxy path: jupyter-server-proxy "
                    "is not enabled (`jupyter server extension enable --sys-prefix "
                    "jupyter_server_proxy`)"
                )
            await counted_down(tab, LAUNCHED, within=15)
