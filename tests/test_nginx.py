"""Lesson 08's claims against a real nginx: buffering, timeouts, upstream keep-alive,
disconnects, connection limits, reload, TLS and HTTP/2 (in a real Chromium), and the bench.

Each test starts its own nginx (`start_nginx`) in front of `server.apps.stamped_events`, whose
events carry the time they were sent, so "held back" and "on time" are measured per event.
Timing asserts are generous deadlines for the behaviour on a loaded 2-core machine: events come
0.2 s apart or more, so an event held for a whole interval is told from one delayed by load.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx2
import pytest
from conftest import wait_until

from server.clients.delivery_times import Delivery, deliveries
from server.clients.load import HeldStreams, LoadSummary
from server.clients.resume import read_with_resume
from server.clients.sse_client import connect_sse
from server.course import nginx
from server.course.binaries import find_binary
from server.course.certificate import Certificate, self_signed_certificate
from server.course.errors import LauncherError
from server.course.launcher import Server, start_app, start_nginx

pytestmark = pytest.mark.nginx

APP = "server.apps.stamped_events:app"
ROOT = Path(__file__).resolve().parent.parent
HTTP10 = "proxy_http_version 1.0;"
HTTP11 = 'proxy_http_version 1.1;\nproxy_set_header Connection "";'
INTERVAL = 0.2
FIVE = f"/events?limit=5&interval={INTERVAL}"  # the last event is sent 0.8 s in
HELD = INTERVAL / 2  # held events wait a whole interval or more; passed-on ones about 1 ms
NEW_DEFAULTS = (1, 29, 7)  # HTTP/1.1 and keep-alive to the upstream by default


@pytest.fixture(scope="module")
def app() -> Iterator[Server]:
    """The app on uvicorn's default HTTP implementation (httptools)."""
    with start_app(APP) as server:
        yield server


@pytest.fixture(scope="module")
def strict() -> Iterator[Server]:
    """The app on h11, which answers HTTP/1.0 with a body that ends at the close."""
    with start_app(APP, args=["--http", "h11"], name="uvicorn-h11") as server:
        yield server


def through(upstream: Server, location: str, path: str, **options: Any) -> list[Delivery]:
    with start_nginx([upstream], location=location, **options) as proxy:
        return deliveries(proxy.url + path)


def read_ids(url: str) -> tuple[list[str], str]:
    """The ids received and how the stream ended: "ended" or the error's class name."""
    ids: list[str] = []
    try:
        with httpx2.Client(timeout=30) as client, connect_sse(client, "GET", url) as events:
            for event in events:  # kept one by one: a cut ends the loop, not what came before
                ids.append(event.id or "")
    except httpx2.HTTPError as error:
        return ids, type(error).__name__
    return ids, "ended"


def passed_on(found: list[Delivery]) -> bool:
    """The events arrived before the app sent the next one: none waited for more data.

    An event held back never does (it waits for the next one's bytes, or for the end); a
    loaded machine may read one late, so at least half of them, not every one, must."""
    early = [d.received < after.sent for d, after in pairwise(found)]
    return len(found) > 1 and 2 * sum(early) >= len(early)


def held_to_the_end(found: list[Delivery]) -> bool:
    """All five events arrived in one burst, with the last one (0.8 s in)."""
    burst = found[-1].received - found[0].received
    return len(found) == 5 and burst < HELD and found[0].late > 3 * INTERVAL


# --- 1. buffering ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "query", "held"),
    [
        (HTTP10, "", True),
        (HTTP10 + "\nproxy_buffering off;", "", False),
        (HTTP10, "&accel=no", False),
        (HTTP10 + "\nproxy_ignore_headers X-Accel-Buffering;", "&accel=no", True),
    ],
    ids=["buffering-on", "proxy_buffering-off", "x-accel-buffering-no", "header-ignored"],
)
def test_buffering_holds_an_unframed_stream_to_its_end(
    strict: Server, location: str, query: str, held: bool
) -> None:
    """HTTP/1.0 to an HTTP/1.0-correct app: buffering holds every event until the end."""
    found = through(strict, location, FIVE + query)
    assert [d.id for d in found] == ["1", "2", "3", "4", "5"]
    if held:
        assert held_to_the_end(found), found
    else:
        assert passed_on(found), found


def test_with_chunks_a_large_event_waits_for_the_next_one(strict: Server) -> None:
    """HTTP/1.1: small events pass with buffering on; a 5 KB event's tail waits for more bytes."""
    small = through(strict, HTTP11, FIVE)
    large = through(strict, HTTP11, FIVE + "&pad=5000")
    large_off = through(strict, HTTP11 + "\nproxy_buffering off;", FIVE + "&pad=5000")
    assert passed_on(small), small
    assert all(d.late > HELD for d in large[:-1]), large  # about an interval: the next event
    assert large[-1].late < HELD, large  # the end of the stream released the last one
    assert passed_on(large_off), large_off


def test_httptools_answers_http10_with_chunks_and_h11_does_not(app: Server, strict: Server) -> None:
    """Why the buffering tests use h11: uvicorn's default parser chunks even for HTTP/1.0."""
    assert passed_on(through(app, HTTP10, FIVE))  # framed by chunks: passed on
    assert held_to_the_end(through(strict, HTTP10, FIVE))


# --- 3. timeouts vs heartbeats --------------------------------------------------------------


def test_read_timeout_cuts_a_quiet_stream_and_heartbeats_keep_it_open(app: Server) -> None:
    quiet, beating = "/events?limit=2&interval=2", "/events?limit=2&interval=2&heartbeat=0.3"
    with start_nginx([app], location=nginx.sse_proxy(read_timeout="1s")) as proxy:
        assert read_ids(proxy.url + quiet) == (["1"], "RemoteProtocolError")
        assert read_ids(proxy.url + beating) == (["1", "2"], "ended")
        assert "upstream timed out" in proxy.log_path.read_text()
        cut, whole = nginx.access_lines(proxy, "/events", at_least=2)  # written as each ends
    # Not before the 1 s timeout; the ids above already show it came before the 2nd event (2 s
    # in), so the upper bound only has to be sane on a loaded machine.
    assert 0.9 < float(cut.split("time=")[1].split()[0]) < 10, cut
    assert 'last_event_id="-"' in whole and " 200 HTTP/1.1 " in whole


def test_a_client_that_resumes_gets_every_event_through_the_cuts(app: Server) -> None:
    """What a browser does after a cut: reconnect with Last-Event-ID; nginx logs the header."""
    with start_nginx([app], location=nginx.sse_proxy(read_timeout="1s")) as proxy:
        url = proxy.url + "/events?limit=3&interval=1.5&retry=0"
        events = read_with_resume(url, 3, max_connections=10)
        lines = nginx.access_lines(proxy, "/events", at_least=3)  # the last is written as it ends
    assert [e.id for e in events] == ["1", "2", "3"]
    assert [line.split('last_event_id="')[1][0] for line in lines][:3] == ["-", "1", "2"]


# --- 4. upstream HTTP version and keep-alive ------------------------------------------------


def app_connections(app: Server, location: str, keepalive: int | None = 16) -> int:
    """Connections the app saw for 5 requests in a row through nginx (its X-Peer-Port)."""
    with (
        start_nginx([app], location=location, keepalive=keepalive) as proxy,
        httpx2.Client() as client,
    ):
        answers = [client.get(f"{proxy.url}/events?limit=1&interval=0") for _ in range(5)]
    return len({answer.headers["x-peer-port"] for answer in answers})


def test_http10_opens_a_connection_per_request_and_http11_keepalive_one(app: Server) -> None:
    new = nginx.nginx_version() >= NEW_DEFAULTS
    assert app_connections(app, HTTP10) == 5
    assert app_connections(app, "proxy_http_version 1.1;") == (1 if new else 5)  # Connection: close
    assert app_connections(app, HTTP11, keepalive=None) == (1 if new else 5)  # no cache
    assert app_connections(app, HTTP11) == 1
    assert app_connections(app, nginx.SSE_PROXY) == 1


# --- 6. client disconnects ------------------------------------------------------------------


def cancelled(app: Server) -> int:
    counts: dict[str, int] = httpx2.get(f"{app.url}/stats").json().get("events", {})
    return counts.get("cancelled", 0)


def leave_after_one_event(proxy: Server, interval: float) -> float:
    """Read one event through `proxy`, close the connection; when we left (perf_counter)."""
    with httpx2.stream("GET", f"{proxy.url}/events?interval={interval}&limit=20") as response:
        next(response.iter_bytes())
    return time.perf_counter()


def test_the_app_sees_the_client_leave_at_once_through_nginx(app: Server) -> None:
    """Events every 10 s: the app's generator is cancelled by nginx closing, not by a write."""
    before = cancelled(app)
    with start_nginx([app]) as proxy:
        left = leave_after_one_event(proxy, interval=10)
        while cancelled(app) == before:
            assert time.perf_counter() - left < 3, "the app never saw the client leave"
            time.sleep(0.02)


def test_ignore_client_abort_keeps_the_app_streaming_until_a_write_fails(app: Server) -> None:
    before = cancelled(app)
    location = nginx.SSE_PROXY + "\nproxy_ignore_client_abort on;"
    with start_nginx([app], location=location) as proxy:
        left = leave_after_one_event(proxy, interval=1.0)
        while time.perf_counter() - left < 0.6:  # no event written yet: nobody told the app
            assert cancelled(app) == before, "cancelled before any write could fail"
            time.sleep(0.05)
        while cancelled(app) == before:  # the next writes fail: now nginx closes upstream
            assert time.perf_counter() - left < 10, "the app never saw the client leave"
            time.sleep(0.05)


# --- 7. connection limits -------------------------------------------------------------------


def hold(proxy: Server, streams: int, opening: int) -> LoadSummary:
    async def scenario() -> LoadSummary:
        url = f"{proxy.url}/events?interval=30"
        async with HeldStreams(url, streams, opening=opening, connect_timeout=10) as held:
            pass
        return held.summary()

    return asyncio.run(scenario())


def test_worker_connections_768_hold_383_streams_and_the_fix_holds_400(app: Server) -> None:
    """Each stream is two connections; the listening socket and the master's channel count."""
    with start_nginx([app], worker_connections=768) as proxy:
        limited = hold(proxy, 400, opening=1)  # one at a time: an exact count
        assert "768 worker_connections are not enough" in proxy.log_path.read_text()
    assert limited.opened == 383, limited
    assert limited.opened + sum(limited.errors.values()) == 400, limited
    main = "worker_rlimit_nofile 8192;"
    with start_nginx([app], worker_connections=4096, main=main) as proxy:
        fixed = hold(proxy, 400, opening=100)
    assert (fixed.opened, fixed.in_order, fixed.errors) == (400, 400, {}), fixed


# --- 9. reload ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("main", "ending"),
    [("", (12, "ended")), ("worker_shutdown_timeout 1s;", None)],
    ids=["graceful", "worker_shutdown_timeout"],
)
def test_reload_keeps_open_streams_until_they_end_or_the_shutdown_timeout(
    app: Server, main: str, ending: tuple[int, str] | None
) -> None:
    with start_nginx([app], main=main) as proxy:
        url = f"{proxy.url}/events?limit=12&interval=0.25"
        with ThreadPoolExecutor(1) as pool:
            stream = pool.submit(read_ids, url)
            wait_until(lambda: active(app) > 0, "the stream to start")  # reload once it runs
            nginx.reload_nginx(proxy)
            assert httpx2.get(proxy.url + "/").status_code == 200  # the new worker serves
            ids, how = stream.result()
    if ending is None:
        assert how == "RemoteProtocolError" and 1 <= len(ids) < 12, (ids, how)
    else:
        assert (len(ids), how) == ending


def active(app: Server) -> int:
    counts: dict[str, int] = httpx2.get(f"{app.url}/stats").json().get("events", {})
    return counts.get("active", 0)


def test_reload_fails_clearly_when_nginx_is_not_running(app: Server) -> None:
    proxy = start_nginx([app])
    proxy.stop()
    with pytest.raises(LauncherError, match="nginx -s reload failed"):
        nginx.reload_nginx(proxy)


# --- the template and the launcher's new options --------------------------------------------


def test_the_template_renders_every_level_and_keepalive_can_be_left_out(app: Server) -> None:
    options: dict[str, Any] = {
        "main": "worker_shutdown_timeout 5s;",
        "http": "server_tokens off;",
        "server": "client_max_body_size 1k;",
        "upstream": "least_conn;",
        "worker_connections": 333,
        "keepalive": None,
    }
    with start_nginx([app], **options) as proxy:
        assert proxy.workdir is not None
        config = (proxy.workdir / "nginx.conf").read_text()
        assert httpx2.get(proxy.url + "/").headers["server"] == "nginx"  # server_tokens off
    for line in ["worker_shutdown_timeout 5s;", "worker_connections 333;", "least_conn;"]:
        assert line in config
    assert re.search(r"^\s*keepalive \d+;", config, re.MULTILINE) is None


def test_http2_needs_tls() -> None:
    with pytest.raises(ValueError, match="only over TLS"):
        start_nginx(["127.0.0.1:1"], http2=True)


@pytest.mark.parametrize(
    ("version", "listen", "http2_on"),
    [((1, 22, 1), " ssl http2", False), ((1, 25, 1), " ssl", True), ((1, 30, 0), " ssl", True)],
)
def test_the_http2_switch_is_written_for_the_installed_version(
    monkeypatch: pytest.MonkeyPatch, version: tuple[int, int, int], listen: str, http2_on: bool
) -> None:
    monkeypatch.setattr(nginx, "nginx_version", lambda: version)
    certificate = Certificate(Path("/c.pem"), Path("/k.pem"))
    found_listen, lines = nginx._tls_directives(certificate, http2=True)
    assert found_listen == listen
    assert ("http2 on;" in lines) == http2_on and "ssl_certificate /c.pem;" in lines


def test_nginx_version_reads_nginx_v() -> None:
    version = nginx.nginx_version()
    assert len(version) == 3 and version >= (1, 18, 0)
    done = subprocess.run([find_binary("nginx"), "-v"], capture_output=True, text=True)
    assert ".".join(map(str, version)) in done.stderr


def test_https_with_a_self_signed_certificate(app: Server) -> None:
    certificate = self_signed_certificate()
    trust = ssl.create_default_context(cafile=str(certificate.certificate))
    with (
        start_nginx([app], tls=certificate) as proxy,
        httpx2.Client(verify=trust) as client,
    ):
        assert proxy.url.startswith("https://127.0.0.1:")
        found = deliveries(proxy.url + "/events?limit=2&interval=0", client=client)
        with pytest.raises(httpx2.ConnectError):  # not trusted without the certificate
            httpx2.get(proxy.url + "/")
    assert [d.id for d in found] == ["1", "2"]


# --- 8. HTTP/2 in a real Chromium ------------------------------------------------------------

TEN_SOURCES = """(n) => {
    window.firsts = new Array(n).fill(null);
    window.counts = new Array(n).fill(0);
    for (let i = 0; i < n; i++) {
        const source = new EventSource(`/events?interval=0.1&limit=50&source=${i}`);
        source.onmessage = () => { window.counts[i] += 1; };
    }
}"""


def open_ten(browser: Any, proxy: Server, until: str) -> tuple[str, list[int]]:
    """Ten EventSources on one page over `proxy`: (page protocol, events per source)."""
    context = browser.new_context(ignore_https_errors=True)  # the certificate is self-signed
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(proxy.url + "/")
        page.evaluate(TEN_SOURCES, 10)
        page.wait_for_function(until)
        protocol = page.evaluate("performance.getEntriesByType('navigation')[0].nextHopProtocol")
        return protocol, page.evaluate("window.counts")
    finally:
        context.close()


@pytest.mark.browser
def test_http2_opens_ten_event_sources_on_one_page(browser: Any, app: Server) -> None:
    certificate = self_signed_certificate()
    with start_nginx([app], tls=certificate, http2=True) as proxy:
        protocol, counts = open_ten(browser, proxy, "window.counts.every((n) => n >= 3)")
        lines = nginx.access_log(proxy)
    assert protocol == "h2"
    assert all(n >= 3 for n in counts), counts
    assert any(" HTTP/2.0 " in line for line in lines), lines


@pytest.mark.browser
def test_http11_over_tls_opens_only_six(browser: Any, app: Server) -> None:
    """Not a fixed wait: by the time six sources have 10 events each, the others had their
    chance (they would have had their first event after 0 s)."""
    certificate = self_signed_certificate()
    with start_nginx([app], tls=certificate) as proxy:
        protocol, counts = open_ten(
            browser, proxy, "window.counts.filter((n) => n >= 10).length >= 6"
        )
    assert protocol == "http/1.1"
    assert sorted(n > 0 for n in counts) == [False] * 4 + [True] * 6, counts


# --- the bench cannot rot ----------------------------------------------------------------
