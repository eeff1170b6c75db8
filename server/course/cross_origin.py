"""Lesson 05's cross-origin scene: what a browser hands a page from another origin's stream.

A stream on another port is another origin. From a page of `origin` (lesson 05's app, whose
`app.js` has `window.course.tryStream`), the page sets a cookie (cookies ignore ports) and opens
an `EventSource` to each of two more copies of the app, started here and stopped at the end:

- ``plain`` sends no CORS headers;
- ``api`` allows the page's origin with credentials (``COURSE_CORS_ORIGINS``).

`tryStream` reports how far each got (``{"messages": 2, "outcome": "received"}``, or
``"failed, CLOSED"`` when the browser closed it for good), and each server's
``GET /headers-log`` says what reached it (path, ``Origin``, whether a cookie came along): both
sides of CORS, what the browser let the page read and what the server saw.

It takes Playwright's async `Page`, as a notebook cell has one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx2

from server.course.launcher import Server, start_app

__all__ = ["APP", "CrossOrigin", "cross_origin_streams"]

APP = "server.apps.fastapi_streams:app"
COOKIE = "course_session=demo; path=/"
TRY_STREAM = "([url, credentials]) => window.course.tryStream(url, credentials)"


@dataclass(frozen=True, slots=True)
class CrossOrigin:
    """What each try gave the page (`tryStream`'s report), and what each server saw."""

    no_cors: dict[str, Any]
    cors: dict[str, Any]
    cors_credentials: dict[str, Any]
    plain_log: list[dict[str, Any]]  # the requests `plain` received, from /headers-log
    api_log: list[dict[str, Any]]  # the requests `api` received: without, then with credentials


async def cross_origin_streams(page: Any, origin: str) -> CrossOrigin:
    """Load `origin`'s page, then try a stream on `plain`, on `api`, and on `api` with cookies."""
    cors = {"COURSE_CORS_ORIGINS": origin}
    with start_app(APP, name="plain") as plain, start_app(APP, env=cors, name="api") as api:
        await page.goto(f"{origin}/")
        await page.evaluate(f"document.cookie = {COOKIE!r}")

        async def attempt(server: Server, credentials: bool) -> dict[str, Any]:
            url = f"{server.url}/events?limit=2&interval=0"
            return dict(await page.evaluate(TRY_STREAM, [url, credentials]))

        no_cors = await attempt(plain, False)
        with_cors, with_credentials = await attempt(api, False), await attempt(api, True)
        plain_log, api_log = (httpx2.get(f"{s.url}/headers-log").json() for s in (plain, api))
    return CrossOrigin(no_cors, with_cors, with_credentials, plain_log, api_log)
