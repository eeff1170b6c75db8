"""nginx's per-client limits and timeouts in front of the capstone (`ClientLimits`, issue 22).

The app's limits are per user, and a user (a signed cookie) costs one GET: one client with 25
cookies held 300 reply streams. nginx counts by address instead: reply streams open at once
and chat POSTs per second, each refused with a 429 in the app's JSON idiom. Slow or silent
sockets (slowloris) are closed after nginx's 10 s header timeout instead of being held until
`worker_connections` runs out, and `/metrics` is not public through the proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator

import httpx2
import pytest

from server.course.capstone_stack import Capstone, ClientLimits, start_capstone
from server.course.certificate import self_signed_certificate
from server.course.launcher import start_app
from server.course.nginx_sse import start_sse_nginx

pytestmark = [pytest.mark.nginx, pytest.mark.redis]

LIMITS = ClientLimits(streams=3, chat_per_second=1, chat_burst=3)
HEADER_TIMEOUT = 10.0  # nginx's client_header_timeout in the capstone's config


@pytest.fixture(scope="module")
def stack() -> Iterator[Capstone]:
    slow = {"FAKE_OPENAI_TPS": "2", "FAKE_OPENAI_TOKENS": "40"}  # a reply streams for ~20 s
    env = {"MAX_ACTIVE": "20", "RATE_PER_MINUTE": "100", "MAX_STREAMS": "20"}
    with start_capstone(workers=1, env=env, fake_env=slow, client_limits=LIMITS) as running:
        yield running


def client_limit(response: httpx2.Response) -> bool:
    """An nginx refusal in the app's idiom: 429, JSON that says why, Retry-After."""
    return (
        response.status_code == 429
        and response.json()["error"] == "client_limit"
        and "address" in response.json()["detail"]
        and response.headers.get("retry-after") == "1"
    )


def test_metrics_are_not_served_through_the_proxy(stack: Capstone) -> None:
    through = httpx2.get(f"{stack.url}/metrics", timeout=30)
    direct = httpx2.get(f"{stack.workers['A'].url}/metrics", timeout=30)
    assert through.status_code == 403 and "each worker directly" in through.text
    assert direct.status_code == 200 and "capstone_open_streams" in direct.text


def test_one_address_holds_at_most_its_streams_whatever_the_cookies(stack: Capstone) -> None:
    """Four users (four cookies) from one address: the fourth stream is nginx's 429."""

    async def open_streams() -> list[httpx2.Response]:
        users = [httpx2.AsyncClient(base_url=stack.url, timeout=30) for _ in range(4)]
        try:
            paths = []
            for user in users:
                await user.get("/api/session")
                posted = await user.post("/api/chat", json={"message": "hold me open"})
                assert posted.status_code == 202, posted.text
                paths.append(posted.json()["events"])
            held: list[httpx2.Response] = []
            readers = []  # kept: a dropped iterator closes its stream
            for user, path in zip(users, paths, strict=True):
                response = await user.send(user.build_request("GET", f"/{path}"), stream=True)
                if response.status_code == 200:
                    readers.append(response.aiter_bytes())
                    await anext(readers[-1])  # open: the owner event came
                else:
                    await response.aread()
                held.append(response)
            for response in held:
                await response.aclose()
            return held
        finally:
            for user in users:
                await user.aclose()

    statuses = asyncio.run(open_streams())
    assert [r.status_code for r in statuses] == [200, 200, 200, 429]
    assert client_limit(statuses[3])


def test_one_address_posts_at_most_its_burst_then_its_rate(stack: Capstone) -> None:
    time.sleep(LIMITS.chat_burst + 1)  # the previous test's POSTs drained from the bucket
    statuses = []
    with httpx2.Client(base_url=stack.url, timeout=30) as user:
        user.get("/api/session")
        for _ in range(LIMITS.chat_burst + 3):  # at once: well within a second
            statuses.append(user.post("/api/chat", json={"message": "hi"}))
    codes = [r.status_code for r in statuses]
    assert codes[: LIMITS.chat_burst + 1] == [202] * (LIMITS.chat_burst + 1), codes
    assert all(client_limit(r) for r in statuses[LIMITS.chat_burst + 1 :]), codes


def test_slow_and_silent_sockets_are_closed_and_deny_nobody(stack: Capstone) -> None:
    """200 sockets trickle a header line a second and 50 send nothing (250 in all, which
    denied everyone else at worker_connections 200): a normal client is answered throughout,
    and nginx closes every one of them once its header timeout has passed."""
    host, port = stack.nginx.host, stack.nginx.port

    async def attack() -> tuple[list[int], dict[int, float]]:
        opened = [await asyncio.open_connection(host, port) for _ in range(250)]
        started = time.monotonic()
        closed_at: dict[int, float] = {}

        async def watch(n: int, reader: asyncio.StreamReader) -> None:
            with contextlib.suppress(ConnectionError):
                await reader.read()  # nothing comes until nginx closes it
            closed_at[n] = time.monotonic() - started

        watchers = [asyncio.create_task(watch(n, r)) for n, (r, _) in enumerate(opened)]
        trickling = [w for _, w in opened[:200]]
        for writer in trickling:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: slow\r\n")
        answers = []
        async with httpx2.AsyncClient(base_url=stack.url, timeout=5) as normal:
            deadline = started + HEADER_TIMEOUT + 10
            while len(closed_at) < len(opened) and time.monotonic() < deadline:
                answers.append((await normal.get("/healthz")).status_code)
                for n, writer in enumerate(trickling):
                    if n not in closed_at:
                        writer.write(b"X-Slow: 1\r\n")
                await asyncio.sleep(1)  # the attack's own pace: a header line a second
        for task in watchers:
            task.cancel()
        for _, writer in opened:
            writer.close()
        return answers, closed_at

    answers, closed_at = asyncio.run(attack())
    assert answers and set(answers) == {200}, answers
    assert len(closed_at) == 250, f"{250 - len(closed_at)} sockets still open"
    assert max(closed_at.values()) < HEADER_TIMEOUT + 5


def test_lesson_08_s_config_closes_a_silent_socket() -> None:
    """The config a learner copies (`nginx_sse.conf.template`) carries the same timeouts: a
    socket that never sends its request is closed at the header timeout (nginx's default is
    60 s)."""
    with (
        start_app("server.apps.stamped_events:app") as app,
        start_sse_nginx(app, self_signed_certificate()) as proxy,
    ):
        started = time.monotonic()
        with socket.create_connection((proxy.host, proxy.port), timeout=HEADER_TIMEOUT + 10) as s:
            assert s.recv(1) == b""  # closed by nginx, having sent nothing
        assert time.monotonic() - started < HEADER_TIMEOUT + 5
