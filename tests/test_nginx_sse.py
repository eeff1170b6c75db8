"""The config lesson 08 ends with (`server/course/nginx_sse.conf.template`), and the lesson's
experiment runners (`server.course.nginx_runs`), each against a real nginx and a real app.

The config is checked as the lesson checks it: `nginx -t` accepts it, a stream read through it
over HTTP/2 arrives event by event (5 KB events, which a buffering nginx would hold until the
next one) and is not gzipped, and it keeps one connection to the app. A copy without the
course's private lines has nothing of the course's folder in it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2
import matplotlib
import pytest
from playwright.async_api import async_playwright

from server.clients.delivery_times import (
    Delivery,
    held_to_the_end,
    ids_and_ending,
    passed_on,
    waited_for_the_next,
)
from server.course import nginx, nginx_sse
from server.course.browser import launch_options
from server.course.certificate import Certificate, self_signed_certificate
from server.course.errors import LauncherError
from server.course.eventsource_pages import open_sources, timeout_race
from server.course.launcher import Server, start_app, start_nginx
from server.course.nginx_runs import (
    compare,
    framing_for_http10,
    measure_block,
    reload_during_streams,
    seconds_until_app_sees_leave,
    upstream_view,
)

pytestmark = pytest.mark.nginx

APP = "server.apps.stamped_events:app"
HTTP10 = "proxy_http_version 1.0;"


@pytest.fixture(scope="module")
def app() -> Iterator[Server]:
    with start_app(APP) as server:
        yield server


@pytest.fixture(scope="module")
def strict() -> Iterator[Server]:
    with start_app(APP, args=["--http", "h11"], name="uvicorn-h11") as server:
        yield server


# --- the verdicts on a stream's deliveries (pure) ------------------------------------------


def stream(*pairs: tuple[float, float]) -> list[Delivery]:
    return [Delivery(str(n), sent, received) for n, (sent, received) in enumerate(pairs, 1)]


ON_TIME = stream((0.0, 0.001), (0.25, 0.251), (0.5, 0.502))
ONE_BEHIND = stream((0.0, 0.25), (0.25, 0.5), (0.5, 0.501))
BURST = stream((0.0, 0.5), (0.25, 0.501), (0.5, 0.502))


@pytest.mark.parametrize(
    ("found", "verdicts"),
    [
        (ON_TIME, (True, False, False)),
        (ONE_BEHIND, (False, True, False)),
        (BURST, (False, False, True)),
    ],
    ids=["on-time", "one-behind", "burst"],
)
def test_each_verdict_fits_one_pattern(found: list[Delivery], verdicts: tuple[bool, ...]) -> None:
    assert (
        passed_on(found),
        waited_for_the_next(found, 0.1),
        held_to_the_end(found, 0.1),
    ) == verdicts


def test_one_event_proves_nothing() -> None:
    one = stream((0.0, 0.001))
    assert not passed_on(one) and not waited_for_the_next(one, 0.1)
    assert not held_to_the_end(one, 0.1)


def test_the_timeline_draws_a_row_per_run() -> None:
    matplotlib.use("Agg")
    from server.course.timelines import plot_timelines

    figure = plot_timelines({"on time": ON_TIME, "burst": BURST}, "t", held=0.1, show=False)
    labels = [tick.get_text() for tick in figure.axes[0].get_yticklabels()]
    assert labels == ["burst", "on time"]  # bottom to top: the first run is the top row
    red = [
        c
        for c in figure.axes[0].collections
        if len(c.get_offsets()) and c.get_facecolor()[0][0] > 0.8
    ]
    assert len(red) >= 1  # the burst's held events


# --- the complete config ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate() -> Certificate:
    return self_signed_certificate()


def test_the_config_passes_nginx_t_and_streams_over_http2_unbuffered(
    strict: Server, certificate: Certificate
) -> None:
    with nginx_sse.start_sse_nginx(strict, certificate) as proxy:
        assert proxy.workdir is not None
        assert "test is successful" in nginx.check_config(proxy.workdir)
        seen = nginx_sse.read_through(proxy, certificate, "/events?limit=6&interval=0.2&pad=5000")
        ports = {httpx2.get(f"{strict.url}/stats").status_code}  # the app is up
        config = nginx.rendered_config(proxy)
    assert seen.protocol == "HTTP/2" and seen.content_encoding is None
    assert [d.id for d in seen.found] == ["1", "2", "3", "4", "5", "6"]
    assert passed_on(seen.found), seen.found
    assert ports == {200}
    for line in ("keepalive 16;", "proxy_buffering off;", "worker_shutdown_timeout", "http2"):
        assert line in config
    assert "#" not in config and "text/event-stream" not in config


def test_buffering_on_would_have_held_the_same_stream(strict: Server) -> None:
    """The check above can fail: the same 5 KB events through a buffering location wait."""
    found = compare(
        {
            "buffered": (
                strict,
                'proxy_http_version 1.1;\nproxy_set_header Connection "";',
                "/events?limit=4&interval=0.25&pad=5000",
            )
        }
    )
    assert waited_for_the_next(found["buffered"], 0.125), found


def test_a_production_copy_has_no_course_lines(certificate: Certificate) -> None:
    text = nginx_sse.render_sse_config("127.0.0.1:8000", listen="443", certificate=certificate)
    assert "daemon" not in text and "_temp_path" not in text and "{{" not in text
    assert "server 127.0.0.1:8000;" in text and "listen 443 ssl" in text


@pytest.mark.parametrize(("version", "http2_on"), [((1, 22, 1), False), ((1, 25, 1), True)])
def test_the_http2_line_suits_the_installed_nginx(
    monkeypatch: pytest.MonkeyPatch,
    certificate: Certificate,
    version: tuple[int, int, int],
    http2_on: bool,
) -> None:
    monkeypatch.setattr(nginx_sse, "nginx_version", lambda: version)
    text = nginx_sse.render_sse_config("127.0.0.1:8000", listen="443", certificate=certificate)
    lines = [line.split("#")[0].strip() for line in text.splitlines()]
    assert ("http2 on;" in lines) == http2_on
    assert ("listen 443 ssl http2;" in lines) == (not http2_on)


def test_check_config_reports_nginx_s_own_message(tmp_path: Path) -> None:
    (tmp_path / "nginx.conf").write_text("events {}\nhttp { bogus_directive on; }\n")
    with pytest.raises(LauncherError, match="unknown directive"):
        nginx.check_config(tmp_path)


def test_a_missing_placeholder_is_named() -> None:
    with pytest.raises(KeyError, match="port"):
        nginx.fill_placeholders("listen {{port}};", {})


def test_rendered_config_drops_comments_unless_asked(app: Server) -> None:
    with start_nginx([app]) as proxy:
        bare, whole = nginx.rendered_config(proxy), nginx.rendered_config(proxy, comments=True)
    assert "#" not in bare and "# One line per request" in whole
    assert "proxy_buffering off;" in bare and len(bare) < len(whole)
    assert "\n            proxy_buffering off;\n" in whole  # indented like its placeholder


def test_access_lines_waits_for_the_line_and_then_gives_up(app: Server) -> None:
    with start_nginx([app]) as proxy:
        httpx2.get(f"{proxy.url}/events?limit=1&interval=0").raise_for_status()
        assert len(nginx.access_lines(proxy, "/events", 1)) == 1
        with pytest.raises(TimeoutError, match="1 of 2"):
            nginx.access_lines(proxy, "/events", 2, timeout=0.3)


# --- the experiment runners ----------------------------------------------------------------


def test_seed_block_without_buffering_off_holds_large_events(strict: Server) -> None:
    path = "/events?limit=4&interval=0.25&pad=5000"
    whole = measure_block(
        strict,
        ["proxy_http_version 1.1;", "proxy_buffering off;", "chunked_transfer_encoding off;"],
        path,
    )
    buffered = measure_block(
        strict, ['proxy_http_version 1.1;\nproxy_set_header Connection "";'], path
    )
    assert (whole["held back"], whole["framing"], whole["client keep-alive"]) == (
        "no",
        "until close",
        "no",
    )
    assert (buffered["held back"], buffered["framing"], buffered["app connections"]) == (
        "yes",
        "chunked",
        1,
    )


def test_httptools_chunks_an_http10_answer_and_h11_does_not(app: Server, strict: Server) -> None:
    assert (framing_for_http10(app), framing_for_http10(strict)) == ("chunked", "until close")


def test_the_app_hears_of_a_leave_at_once_unless_nginx_ignores_it(app: Server) -> None:
    assert seconds_until_app_sees_leave(app, nginx.SSE_PROXY) < 0.4
    ignoring = nginx.SSE_PROXY + "\nproxy_ignore_client_abort on;"
    assert 0.5 < seconds_until_app_sees_leave(app, ignoring) < 5


def test_a_reload_waits_for_streams_or_for_the_shutdown_timeout(app: Server) -> None:
    graceful = reload_during_streams(app, streams=1)
    bounded = reload_during_streams(app, "worker_shutdown_timeout 1s;", streams=1)
    assert graceful.new_request == bounded.new_request == 200
    assert graceful.streams == [([str(n) for n in range(1, 13)], "ended")]
    assert 1.5 < graceful.old_worker_gone < 5
    [(ids, how)] = bounded.streams
    assert how == "RemoteProtocolError" and 1 <= len(ids) < 12
    assert 0.9 < bounded.old_worker_gone < 3


def test_ids_and_ending_names_a_refused_connection() -> None:
    assert ids_and_ending("http://127.0.0.1:1/events", timeout=2) == ([], "ConnectError")


def test_the_wiretap_sees_http10_close_and_http11_keepalive(app: Server) -> None:
    old = upstream_view(app, HTTP10, streams=3)
    kept = upstream_view(app, nginx.SSE_PROXY, streams=3)
    assert old["request line"].endswith("HTTP/1.0") and old["Connection"] == "close"
    assert old["app connections"] == 3 and "connection: close" in old["answer head"]
    assert kept["request line"].endswith("HTTP/1.1") and kept["Connection"] == "(none)"
    assert kept["app connections"] == 1


# --- the browser scenes (a real Chromium, async API as in a notebook) -------------------------


@pytest.mark.browser
def test_the_browser_scenes_through_nginx(browser: Any, app: Server) -> None:
    """Quiet streams are cut by proxy_read_timeout, heartbeats keep theirs; HTTP/2 opens ten."""
    del browser  # the fixture skips (or fails in CI) where no Chromium is installed
    certificate = self_signed_certificate()

    async def scenes() -> tuple[dict[str, list[tuple[str, int]]], tuple[str, list[int]]]:
        async with async_playwright() as playwright:
            chromium = await playwright.chromium.launch(**launch_options())
            context = await chromium.new_context(ignore_https_errors=True)
            page = await context.new_page()
            with start_nginx([app], location=nginx.sse_proxy("1s")) as proxy:
                await page.goto(f"{proxy.url}/")
                log = await timeout_race(
                    page, "/events?interval=1.5&retry=200", "/events?interval=1.5&heartbeat=0.3"
                )
            with start_nginx([app], tls=certificate, http2=True) as proxy:
                await page.goto(f"{proxy.url}/")
                opened = await open_sources(page, 10)
            await chromium.close()
            return log, opened

    with ThreadPoolExecutor(1) as pool:  # the sync fixture's loop runs in this thread
        log, (protocol, counts) = pool.submit(asyncio.run, scenes()).result()
    assert [what for what, _ in log["heartbeat"]] == ["open", "event 1", "event 2"]
    assert [what for what, _ in log["quiet"]].count("error") >= 2
    assert protocol == "h2" and all(n > 0 for n in counts), counts
