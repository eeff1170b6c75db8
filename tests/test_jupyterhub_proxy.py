"""The course through a JupyterHub's eyes: every browser page, via jupyter-server-proxy.

On a hub the learner's browser cannot reach the kernel's `127.0.0.1`; it reaches a course server
only through the single-user Jupyter server, at `/user/NAME/proxy/PORT/...`
(`server.course.urls.browser_url`). So the fixture here is what a hub runs for one learner: a
real Jupyter server under the base URL `/user/learner/`, with jupyter-server-proxy enabled as
this environment configures it (so the test fails on an image where it is not), token
authentication, and `JUPYTERHUB_SERVICE_PREFIX` set on the kernel side (this process, where the
launcher and `browser_url` run). Chromium logs in with the token (the Jupyter server answers
with its login cookie, as a hub's login does) and opens each page of the course at the URL
`browser_url` gives: lesson 00's countdown and lesson 05's page (`server.apps.fastapi_streams`:
`EventSource` and the `fetch` POST panel), and lesson 06's chat view (`server.apps.llm_relay` in
front of `server.apps.fake_openai`), over both its transports.

"Arrives progressively" is measured where the learner sees it: a MutationObserver, installed
before the page's own scripts, stamps every change of the page's output elements with
`performance.now()`. Through a proxy that buffers, every token lands in one read at the end, so
all the stamps fall within a millisecond; streamed, they spread over the generation time. The
checks are that spread (at least half the time the server takes to produce the stream) and the
first token coming before half of the last one's time: deadlines a loaded machine still meets,
which a buffered response cannot.

What jupyter-server-proxy 4.6 does, read in its `handlers.py` (and checked where a test is named):
- it streams a response only when the request's `Accept` is exactly `text/event-stream`, and
  buffers any other whole (`test_without_the_event_stream_accept_the_proxy_buffers`): the pages'
  `fetch()` calls must send that header;
- a streamed request is cut after 7,200 s (a buffered one after 300 s): `EventSource` reconnects
  with `Last-Event-ID`, a `fetch` reader sees the stream end without `done`;
- it never tells the server that the browser left: the stream runs on, unread, until it ends
  or those 7,200 s pass (`test_the_proxy_does_not_tell_the_server_that_the_browser_left`);
- a server that is down is an HTTP error (5xx), not a lost connection, so `EventSource` closes
  for good instead of reconnecting, as with lesson 05's 502: only a page-level retry comes back
  (`test_a_server_restart_behind_the_proxy_needs_the_page_level_retry`).

Many learners on one host is `bench/bench_workshop.py`; its smoke run (two learners, lesson 00)
is the last test here, so it cannot rot.

Chromium missing: the browser tests skip with the reason, unless COURSE_REQUIRE_BROWSER=1 (CI).
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx2
import pytest
from conftest import wait_until

from server.clients.sse_client import connect_sse
from server.course.launcher import Server, free_port, start_app, start_command

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "/user/learner/"  # what JupyterHub gives a user called "learner"
STREAMS = "server.apps.fastapi_streams:app"
DEADLINE = 15_000  # ms: generous, for a loaded 2-core machine

# Stamps every change inside the pages' output elements (lesson 05's #messages, #named and
# #reply; lesson 06's .assistant bubbles) with its time, in ms since the navigation began, and
# the moment each EventSource is created (the page may open one as it loads, from `?src=`).
STAMP_OUTPUT = """
window.__opened = [];
const NativeEventSource = window.EventSource;
window.EventSource = class extends NativeEventSource {
  constructor(...args) {
    super(...args);
    window.__opened.push(performance.now());
  }
};
window.__arrivals = [];
new MutationObserver((records) => {
  const now = performance.now();
  const output = records.some((record) => {
    const node = record.target.nodeType === 1 ? record.target : record.target.parentElement;
    return node && node.closest("#messages, #named, #reply, .assistant");
  });
  if (output) window.__arrivals.push(now);
}).observe(document, { subtree: true, childList: true, characterData: true });
"""


@dataclass(frozen=True)
class Hub:
    """One learner's single-user Jupyter server, as a hub runs it."""

    server: Server
    token: str

    @property
    def origin(self) -> str:
        return self.server.url  # the hub's origin; browser_url gives paths under it


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """A Jupyter server with jupyter-server-proxy under `/user/learner/`, and the kernel-side
    environment a hub sets, for the tests of this module."""
    home = tmp_path_factory.mktemp("hub")
    token = secrets.token_hex(16)
    jupyter_dirs = {  # the server's config and runtime files in a folder of the test's
        "JUPYTER_PLATFORM_DIRS": "1",
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
    }
    command = (
        sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root",
        "--ServerApp.ip=127.0.0.1", "--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--ServerApp.base_url={PREFIX}", f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={home}",
    )  # fmt: skip
    with (
        pytest.MonkeyPatch.context() as env,
        start_command(
            command,
            listening=rf"http://127\.0\.0\.1:(\d+){PREFIX}",
            env=jupyter_dirs,
            ready_path=f"{PREFIX}api/status",
            timeout=60,
            name="jupyter-server",
        ) as server,
    ):
        # The extension as this environment configures it, not forced on: as on the hub image.
        probe = httpx2.get(f"{server.url}{PREFIX}proxy/1/", params={"token": token})
        if probe.status_code == 404:
            pytest.fail(
                "jupyter-server-proxy is not enabled in this environment's Jupyter server: "
                "`jupyter server extension enable --sys-prefix jupyter_server_proxy`"
            )
        env.delenv("COURSE_PROXY_PREFIX", raising=False)
        env.setenv("JUPYTERHUB_SERVICE_PREFIX", PREFIX)  # the kernel's side: browser_url reads it
        yield Hub(server, token)


@pytest.fixture
def page(browser: Any, hub: Hub) -> Iterator[Any]:
    """A logged-in learner's tab on the hub, stamping the page's output as it changes."""
    context = browser.new_context(base_url=hub.origin)
    page = context.new_page()
    page.set_default_timeout(DEADLINE)
    # Any request with the token gets the server's login cookie, as a hub login would.
    assert page.goto(f"{PREFIX}api/status?token={hub.token}").ok
    page.add_init_script(STAMP_OUTPUT)
    yield page
    context.close()


@pytest.fixture(scope="module")
def streams(hub: Hub) -> Iterator[Server]:
    with start_app(STREAMS) as server:
        yield server


@pytest.fixture(scope="module")
def relay(hub: Hub) -> Iterator[Server]:
    """Lesson 06's relay in front of the local model, paced: 25 tokens at 25 per second."""
    pace = {"FAKE_OPENAI_TTFT": "0", "FAKE_OPENAI_TPS": "25", "FAKE_OPENAI_TOKENS": "25"}
    with start_app("server.apps.fake_openai:app", env=pace, name="fake_openai") as llm:
        env = {"OPENAI_BASE_URL": f"{llm.url}/v1", "OPENAI_API_KEY": "sk-test", "OPENAI_MODEL": ""}
        with start_app("server.apps.llm_relay:app", env=env, name="llm_relay") as server:
            yield server


def assert_progressive(arrivals: list[float], started: float, produced_in: float) -> None:
    """The output changed many times, spread over the stream: never all at once at the end.

    `arrivals` and `started` are page times in ms; `produced_in` is how long the server takes
    to produce the whole stream, in seconds.
    """
    assert len(set(arrivals)) >= 5, f"the output changed only at {arrivals}"
    first, last = arrivals[0] - started, arrivals[-1] - started
    assert last - first >= produced_in * 1000 / 2, (
        f"everything arrived within {last - first:.0f} ms (first at {first:.0f} ms, last at "
        f"{last:.0f} ms): the stream was buffered, not streamed"
    )
    assert first < last / 2, f"the first token came at {first:.0f} ms, the last at {last:.0f} ms"


def arrivals(page: Any) -> list[float]:
    return [float(t) for t in page.evaluate("window.__arrivals")]


def all_ids(page: Any) -> list[int]:
    seen = page.evaluate("window.course.seen")
    return sorted(int(m["id"]) for m in seen["messages"] + seen["named"])


def test_browser_url_goes_through_the_hub(hub: Hub, streams: Server) -> None:
    assert streams.browser_url("/") == f"{PREFIX}proxy/{streams.port}/"
    answer = httpx2.get(f"{hub.origin}{streams.browser_url('/')}", params={"token": hub.token})
    assert answer.status_code == 200 and "<title>SSE course" in answer.text


@pytest.mark.browser
@pytest.mark.parametrize(
    ("lesson", "src", "count", "produced_in"),
    [
        ("00 countdown", "countdown?start=5&interval=0.2", 6, 1.0),
        ("05 EventSource", "events?interval=0.1&until=10", 10, 0.9),
    ],
)
def test_event_source_pages_stream_through_the_hub(
    page: Any, streams: Server, lesson: str, src: str, count: int, produced_in: float
) -> None:
    page.goto(streams.browser_url("/?src=" + quote(src)))
    page.wait_for_function(
        f"window.course.seen.messages.length + window.course.seen.named.length >= {count}"
    )
    page.evaluate("window.course.close()")
    assert_progressive(arrivals(page)[:count], page.evaluate("window.__opened[0]"), produced_in)


@pytest.mark.browser
def test_fetch_post_panel_streams_through_the_hub(page: Any, streams: Server) -> None:
    page.goto(streams.browser_url("/"))
    started = page.evaluate("performance.now()")
    chat = page.evaluate("window.course.chat('hub')")
    assert (chat["status"], chat["done"]) == (200, True)
    # One token per character of “message” and the reply, 30 ms apart (POST /chat's default).
    assert_progressive(arrivals(page), started, chat["tokens"] * 0.03)


@pytest.mark.browser
@pytest.mark.parametrize("transport", ["fetch", "eventsource"])
def test_chat_view_streams_through_the_hub(page: Any, relay: Server, transport: str) -> None:
    page.goto(relay.browser_url("/"))
    page.wait_for_function("document.querySelector('#status').textContent.startsWith('upstream')")
    page.select_option("#transport", transport)
    page.fill("#message", "tell me about streaming")
    started = page.evaluate("performance.now()")
    page.click("#send")
    page.wait_for_function("['done', 'error', 'cut-off'].includes(document.body.dataset.state)")
    assert page.evaluate("document.body.dataset.state") == "done", page.text_content("#log")
    assert len(page.locator(".assistant").last.text_content()) > 50
    assert_progressive(arrivals(page), started, 25 / 25)


# What the proxy does with a fetch() that does not ask for an event stream: the reason the
# pages send `Accept: text/event-stream`. Each read of the body is stamped as it completes.
READ_CHAT = """async (accept) => {
  const started = performance.now();
  const response = await fetch("chat", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: accept },
    body: JSON.stringify({ message: "buffered?" }),
  });
  const reader = response.body.getReader();
  const reads = [];
  for (;;) {
    const { done } = await reader.read();
    if (done) return { reads, started };
    reads.push(performance.now());
  }
}"""


@pytest.mark.browser
def test_without_the_event_stream_accept_the_proxy_buffers(page: Any, streams: Server) -> None:
    # The control for the tests above: the same measurement sees buffering where there is some.
    page.goto(streams.browser_url("/"))
    buffered = page.evaluate(READ_CHAT, "*/*")
    streamed = page.evaluate(READ_CHAT, "text/event-stream")
    produced_in = len("“buffered?” 안녕하세요! 저는 AI 어시스턴트입니다.") * 0.03
    assert buffered["reads"][-1] - buffered["reads"][0] < 50, "jupyter-server-proxy streamed it"
    assert buffered["reads"][0] - buffered["started"] >= produced_in * 1000 * 0.9
    assert_progressive(streamed["reads"], streamed["started"], produced_in)


def test_the_proxy_does_not_tell_the_server_that_the_browser_left(
    hub: Hub, streams: Server
) -> None:
    # A client that reads 3 events of 20 and leaves. Directly, the server sees it go and stops
    # the stream ("cancelled"); through jupyter-server-proxy it goes on to its end, unread
    # ("finished"): an endless stream would run until the proxy's 7,200 s timeout.
    def leave_after_three(url: str, headers: dict[str, str]) -> None:
        with (
            httpx2.Client(timeout=10) as client,
            connect_sse(client, "GET", url, headers=headers) as events,
        ):
            for seen, _ in enumerate(events, 1):
                if seen >= 3:
                    return

    def ended(kind: str) -> bool:
        httpx2.post(f"{streams.url}/stats/reset")
        stream = "/events?interval=0.05&limit=20"
        accept = {"Accept": "text/event-stream", "Authorization": f"token {hub.token}"}
        direct = kind == "direct"
        leave_after_three(
            f"{streams.url}{stream}" if direct else f"{hub.origin}{streams.browser_url(stream)}",
            accept,
        )
        stats = f"{streams.url}/stats"
        wait_until(lambda: httpx2.get(stats).json()["events"]["active"] == 0, "the stream to end")
        return bool(httpx2.get(stats).json()["events"]["finished"] == 1)  # else: cancelled

    assert ended("direct") is False
    assert ended("proxied") is True


@pytest.mark.browser
def test_a_server_restart_behind_the_proxy_needs_the_page_level_retry(page: Any, hub: Hub) -> None:
    port = free_port()
    stream = "events?interval=0.05&retry=100"
    first = start_app(STREAMS, port=port)
    plain, reopening = page, page.context.new_page()
    try:
        plain.goto(first.browser_url("/?src=" + quote(stream)))
        reopening.goto(first.browser_url("/?reopen=1&src=" + quote(stream)))
        for each in (plain, reopening):
            each.wait_for_function("window.course.seen.messages.length >= 3")
    finally:
        first.kill()  # a crash (and no wait for the streams the proxy keeps open)
    # A refused connection behind the proxy is an HTTP error for the browser, not a lost
    # connection: EventSource gives up at once, only the page's own retry comes back.
    refused = httpx2.get(
        f"{hub.origin}{first.browser_url('/events')}",
        headers={"Accept": "text/event-stream", "Authorization": f"token {hub.token}"},
    )
    assert refused.status_code >= 500, refused
    plain.wait_for_function("window.course.seen.states.at(-1) === 'CLOSED'")
    reopening.wait_for_function("window.course.seen.pageRetries >= 1")
    before = len(all_ids(reopening))
    second = start_app(STREAMS, port=port)
    try:
        reopening.wait_for_function(f"window.course.seen.messages.length >= {before + 5}")
    finally:
        second.kill()
    ids = all_ids(reopening)
    assert ids == list(range(1, len(ids) + 1)), "a gap or a duplicate across the restart"
    assert plain.evaluate("window.course.seen.states.at(-1)") == "CLOSED"
    reopening.close()


# --- many learners on one host: bench/bench_workshop.py, small enough for every run ----------
