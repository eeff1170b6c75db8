"""Stage 4's page, `chat.html`, driven in headless Chromium through a hub's proxy.

The page is opened through a real Jupyter server's jupyter-server-proxy (stage 3's hub), at
`/user/learner/proxy/PORT/chat.html`, as a JupyterHub serves it: a relative URL and
`Accept: text/event-stream` are then what make the page work, not a matter of style. A
MutationObserver, installed before the page's own script, records each text the reply element
showed and its `aria-busy`; after the reply, axe-core (`server.course.axe`) scans the page (a
serious or critical violation misses, moderate ones are listed as hints); a last reply, replaced
by the checker, holds markup.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack

from playwright.async_api import Request, async_playwright
from playwright.async_api import TimeoutError as PlaywrightTimeout

from server.course import axe
from server.course.browser import BrowserNotFoundError, launch_options
from server.course.errors import LauncherError
from server.course.launcher import Server
from server.course.stages.hub import PREFIX
from server.course.stages.run import Missed, StageRun
from server.course.stages.waits import wait_until
from server.seed_texts import PROMPT, REPLY
from server.sse import MEDIA_TYPE, encode_json

MARKUP = '<img src=x onerror="window.pwned=1">'

# The page's own record of the reply element: each text it showed, and its aria-busy meanwhile.
WATCH = """
window.__stage = { texts: [], busy: [] };
new MutationObserver(() => {
  const reply = document.getElementById("reply");
  if (!reply) return;
  const last = window.__stage.texts.at(-1);
  if (reply.textContent !== last) window.__stage.texts.push(reply.textContent);
  window.__stage.busy.push(reply.getAttribute("aria-busy"));
}).observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
"""


def said(errors: list[str]) -> str:
    return f"; the page's errors: {errors[:3]}" if errors else ""


async def page_checks(run: StageRun, app: Server, hub: asyncio.Future[tuple[Server, str]]) -> None:
    async with async_playwright() as playwright, AsyncExitStack() as stack:
        with run.step(
            "through a hub's proxy, chat.html has a labelled text box and a Send button",
            hint='in mychat/static/chat.html: <label for="message">, <input id="message">, '
            '<button type="submit">Send</button> in a <form>, and <p id="reply">',
        ):
            try:
                browser = await playwright.chromium.launch(**launch_options())
            except BrowserNotFoundError as error:
                raise Missed(str(error)) from None
            stack.push_async_callback(browser.close)
            try:
                server, token = await asyncio.shield(hub)
            except LauncherError as error:
                raise Missed(
                    f"could not start Jupyter with jupyter-server-proxy: {error}"
                ) from None
            context = await browser.new_context()
            await context.add_init_script(WATCH)
            page = await context.new_page()
            page.set_default_timeout(15_000)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            posts: list[Request] = []
            page.on("request", lambda r: posts.append(r) if r.method == "POST" else None)
            await page.goto(f"{server.url}{PREFIX}api/status?token={token}")  # the login cookie
            base = f"{server.url}{PREFIX}proxy/{app.port}/"
            shown = await page.goto(base + "chat.html")
            box = page.get_by_role("textbox", name="Message")
            send = page.get_by_role("button", name="Send")
            if not shown or shown.status != 200:
                raise Missed(f"chat.html answered {shown.status if shown else 'nothing'}")
            if (
                await box.count() != 1
                or await send.count() != 1
                or not await page.locator("#reply").count()
            ):
                found = await page.locator("main").inner_html()
                raise Missed(f"the page's <main>: {found[:300]!r}")

        with run.step(
            "typing a message and pressing Enter POSTs it to chat (relative), Accept: "
            "text/event-stream",
            hint='in chat.js, on the form\'s submit: fetch("chat", {method: "POST", headers: '
            '{"Content-Type": "application/json", Accept: "text/event-stream"}, body: '
            "JSON.stringify({message})}); a path from the root leaves the hub's proxy",
        ):
            await box.fill(PROMPT)
            await box.press("Enter")
            if not await wait_until(lambda: posts, within=10):
                raise Missed(f"no POST within 10 s{said(errors)}")
            request = posts[0]
            if request.url != base + "chat":
                raise Missed(f"it posted to {request.url}, not {base}chat")
            if request.headers.get("accept") != MEDIA_TYPE:
                raise Missed(f"its Accept header: {request.headers.get('accept')!r}")

        with run.step(
            "the reply appears piece by piece, as text, marked aria-busy while it streams",
            hint="read `response.body` with a reader; per event, `reply.textContent += delta`; "
            'set reply\'s aria-busy to "true" before the fetch and "false" in a finally',
        ):
            try:
                await page.wait_for_function(
                    f"document.getElementById('reply').textContent === {json.dumps(REPLY)}"
                    " && document.getElementById('reply').getAttribute('aria-busy') !== 'true'"
                )
            except PlaywrightTimeout:
                text = await page.locator("#reply").text_content()
                busy = await page.locator("#reply").get_attribute("aria-busy")
                raise Missed(
                    f"after 15 s the reply showed {text!r}, aria-busy={busy!r}{said(errors)}"
                ) from None
            seen = await page.evaluate("window.__stage")
            if "true" not in seen["busy"]:
                raise Missed("aria-busy was never true while the reply came in")
            if len([text for text in seen["texts"] if text]) < 3:
                raise Missed(f"the reply showed only {seen['texts']}: it came in one piece")

        with run.step(
            "after the reply, axe-core finds nothing serious or critical on the page",
            hint="each line says the rule axe-core applies and the element that breaks it; "
            "search the rule's id with 'axe' for how to meet it",
        ):
            violations = await axe.scan(page)
            if axe.blocking(violations):
                raise Missed(axe.report(violations))

        with run.step(
            "a reply holding markup (<img onerror>) shows as text, and no script runs",
            hint="`reply.textContent += delta`, never innerHTML: the model's text is untrusted",
        ):
            crafted = encode_json({"delta": MARKUP}) + encode_json({"usage": None}, event="done")
            await page.route(
                base + "chat",
                lambda route: route.fulfill(
                    status=200, headers={"Content-Type": MEDIA_TYPE}, body=crafted
                ),
            )
            await box.fill("Show me an image")
            await send.click()
            shown_markup = (
                f"document.getElementById('reply').textContent.includes({json.dumps(MARKUP)})"
            )
            try:
                await page.wait_for_function(shown_markup, timeout=10_000)
            except PlaywrightTimeout:
                text = await page.locator("#reply").inner_html()
                raise Missed(f"the reply's HTML: {text[:200]!r}{said(errors)}") from None
            made = await page.locator("#reply *").count()
            if made or await page.evaluate("window.pwned !== undefined"):
                raise Missed(f"{made} elements were made from the reply's text")
