"""Lesson 05's cross-origin scene in a real Chromium against real servers on free ports: what
the page got and what each server saw, as the lesson's claims read them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from playwright.async_api import async_playwright

from server.course.browser import launch_options
from server.course.cross_origin import APP, CrossOrigin, cross_origin_streams
from server.course.launcher import Server, start_app

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def scene(chromium: None) -> Iterator[tuple[Server, CrossOrigin]]:
    """The scene played once from a page of a third copy of the app, as the lesson does."""

    async def play(origin: str) -> CrossOrigin:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(**launch_options())
            page = await browser.new_page()
            page.set_default_timeout(15_000)
            try:
                return await cross_origin_streams(page, origin)
            finally:
                await browser.close()

    with start_app(APP) as origin:
        yield origin, asyncio.run(play(origin.url))


def test_without_cors_the_page_got_nothing_though_the_server_was_asked(
    scene: tuple[Server, CrossOrigin],
) -> None:
    _, seen = scene
    assert seen.no_cors == {"messages": 0, "outcome": "failed, CLOSED"}
    assert [entry["path"] for entry in seen.plain_log] == ["/events"], seen.plain_log


def test_with_cors_both_tries_received_and_only_one_sent_the_cookie(
    scene: tuple[Server, CrossOrigin],
) -> None:
    origin, seen = scene
    assert seen.cors == seen.cors_credentials == {"messages": 2, "outcome": "received"}
    assert [entry["cookie"] for entry in seen.api_log] == [False, True], seen.api_log
    assert {entry["origin"] for entry in seen.api_log} == {origin.url}, seen.api_log
