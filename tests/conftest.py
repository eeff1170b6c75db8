"""Shared fixtures: real servers on free ports, stopped after each test."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _pytest.nodeid import NodeId

from server.course.browser import BrowserNotFoundError, find_chromium, launch_options
from server.course.launcher import Server, start_app, start_redis

DEADLINE = 30.0
"""Seconds a test waits for something that takes milliseconds: generous for a loaded 2-core
machine, and still a failure rather than a hang when the thing never happens."""

Waiter = Callable[..., float]

SLOW_KINDS = ("bench", "stage", "browser")
"""Markers of the tests that take longest, slowest kind first: a bench smoke runs a benchmark
(the capacity one for minutes), a stage check starts a learner's whole stack several times, a
browser test drives Chromium."""

ON_THEIR_OWN = ("bench", "stage")
"""Tests that start everything they need and share nothing with their module (a subprocess, a
stage check in a folder of its own): parallel workers take them one by one."""


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Hand parallel workers (`make`: `--dist loadgroup --no-loadscope-reorder`) the slowest
    work first, and keep each module's tests, so its stack started once, on one worker.

    A module's tests are one group, except the ones that stand on their own: the bench smokes
    of tests/test_bench_runs.py took 13 minutes in a row on one worker, longer than all the
    rest of the suite on the other three. Groups go out slowest kind first, then by their
    number of tests (xdist's own order, which put the stage checks last): work of minutes
    handed out last runs alone while the other workers idle."""
    kind: dict[str, int] = {}
    count: dict[str, int] = {}
    groups: dict[pytest.Item, str] = {}
    for item in items:
        alone = any(item.get_closest_marker(name) for name in ON_THEIR_OWN)
        group = groups[item] = item.nodeid if alone else item.nodeid.split("::")[0]
        if not alone:
            item.add_marker(pytest.mark.xdist_group(group))
        marked = [n for n, name in enumerate(SLOW_KINDS) if item.get_closest_marker(name)]
        kind[group] = min([kind.get(group, len(SLOW_KINDS)), *marked])
        count[group] = count.get(group, 0) + 1
    items.sort(key=lambda item: (kind[g := groups[item]], -count[g], g))


@pytest.hookimpl(trylast=True, specname="pytest_collection_modifyitems")  # a second one
def pytest_collection_modifyitems_named_groups(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Make `--dist loadgroup` group at all: xdist (3.8) tells its scheduler a test's group
    by appending `@group` to the test's node id, but writes the field that pytest before 9.2
    read the id from; pytest 9.2 builds it from `_id`, so no group ever reached the scheduler
    (pytest-dev/pytest-xdist#1386) and every test went out on its own: a module's stack
    started on each worker that got one of its tests. Here the id gets its `@group` as xdist
    meant, after xdist's own attempt (a no-op when that one took)."""
    if not getattr(config.option, "loadgroup", False):  # in xdist workers, --dist loadgroup
        return
    for item in items:
        mark = item.get_closest_marker("xdist_group")
        if mark is None or "@" in item.nodeid.rpartition("]")[2]:
            continue
        item._id = NodeId.parse(f"{item.nodeid}@{mark.args[0]}")


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


def wait_until(condition: Callable[[], object], what: str, deadline: float = DEADLINE) -> float:
    """Poll `condition` until it is true; the seconds it took. Fails, naming `what`, after
    `deadline` seconds: a signal waited for, never a sleep that hopes."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < deadline, f"not after {deadline:g} s: {what}"
        time.sleep(0.02)
    return time.monotonic() - start


@pytest.fixture
def wait_for() -> Waiter:
    """`wait_for(condition, "what it waits for")`: `wait_until` as a fixture."""
    return wait_until


@pytest.fixture
def redis() -> Iterator[Server]:
    """A real redis-server on a free port, empty, stopped after the test."""
    with start_redis() as server:
        yield server


@pytest.fixture(scope="module")
def relay() -> Iterator[Server]:
    """Lesson 06's relay in front of the local model, answering at once (no pacing)."""
    env = {"FAKE_OPENAI_TTFT": "0", "FAKE_OPENAI_TPS": "0"}
    with start_app("server.apps.fake_openai:app", env=env, name="fake_openai") as llm:
        env = {"OPENAI_BASE_URL": f"{llm.url}/v1", "OPENAI_API_KEY": "sk-test", "OPENAI_MODEL": ""}
        with start_app("server.apps.llm_relay:app", env=env, name="llm_relay") as server:
            yield server


@pytest.fixture(scope="module")
def chromium() -> None:
    """Chromium is installed: the test is skipped where it is not, except with
    COURSE_REQUIRE_BROWSER=1 (CI), where a missing browser fails the test instead: browser
    tests must never pass by not running."""
    try:
        find_chromium()
    except BrowserNotFoundError as error:
        if os.environ.get("COURSE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"COURSE_REQUIRE_BROWSER=1 but {error}")
        pytest.skip(str(error))


@pytest.fixture(scope="module")
def browser(chromium: None) -> Iterator[Any]:
    """A real headless Chromium (Playwright, sync API), shared by a module's tests."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(**launch_options())
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh tab in a context of its own (its own cookies), closed after the test."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()
