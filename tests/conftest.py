"""Shared fixtures: real servers on free ports, stopped after each test."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from server.course.browser import BrowserNotFoundError, find_chromium, launch_options
from server.course.launcher import Server, start_app


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    """Start an ASGI app (import string) under uvicorn: `serve("server.x:app")`.

    Every server it started is stopped when the test ends.
    """
    started: list[Server] = []

    def _serve(app: str, **kwargs: Any) -> Server:
        server = start_app(app, **kwargs)
        started.append(server)
        return server

    yield _serve
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A real headless Chromium (Playwright, sync API), shared by a module's tests.

    Skipped where no Chromium is installed, except with COURSE_REQUIRE_BROWSER=1 (CI), where a
    missing browser fails the test instead: browser tests must never pass by not running.
    """
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
