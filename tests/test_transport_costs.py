"""Lesson 10's measurements, each against a real chat server: the two transports' clients
(`server.clients.chat_transports`), the bytes and worker costs (`server.course.transport_costs`),
and the cut-while-replying scenario (`server.course.reply_cuts`).

Each test asserts what the lesson claims from the function, so a function that stops measuring
what it says fails here before it fails in the notebook.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from server.clients import chat_transports as chat
from server.clients.resume import read_with_resume as sse_read_with_resume
from server.clients.ws_resume import read_room, read_with_resume
from server.course.launcher import Server, start_nginx
from server.course.nginx import CONNECTION_UPGRADE_MAP, websocket_proxy
from server.course.reply_cuts import connected, cut_while_replying
from server.course.transport_costs import APP, bytes_per_message, worker_costs
from server.course.wiretap import start_wiretap
from server.seed_texts import REPLY


@pytest.fixture
def fast(serve: Callable[..., Server]) -> Server:
    return serve(APP, env={"BROKER": "memory", "TOKEN_DELAY": "0", "QUEUE_SIZE": "20000"})


def test_both_transports_carry_the_same_reply(fast: Server) -> None:
    ws = asyncio.run(chat.over_websocket(fast.url, ["안녕"], len(REPLY)))
    sse = asyncio.run(chat.over_sse(fast.url, ["안녕"], len(REPLY), post_url=fast.url))
    assert chat.reply_text(ws) == REPLY and chat.reply_text(sse) == REPLY
    assert [m["type"] for m in sse] == ["user", *["token"] * len(REPLY), "done"]
    assert chat.ws_url("http://127.0.0.1:1", "/ws") == "ws://127.0.0.1:1/ws"


def test_opening_times_are_measured_for_each_transport(fast: Server) -> None:
    times = asyncio.run(chat.opening_times(fast.url, n=3))
    assert list(times) == ["WebSocket open", "SSE open", "WebSocket send→first", "POST→first event"]
    assert all(len(t) == 3 and all(0 < s < 5 for s in t) for t in times.values()), times


def test_one_worker_room_reaches_every_user(fast: Server) -> None:
    assert asyncio.run(chat.room_counts(fast.url, users=3, quiet=0.5)) == [3, 3, 3]


@pytest.mark.nginx
def test_idle_lifetimes_end_at_the_proxy_timeout_only_when_silent(
    serve: Callable[..., Server],
) -> None:
    quiet = serve(
        APP, env={"BROKER": "memory", "HEARTBEAT": "60"}, args=["--ws-ping-interval", "0"]
    )
    chatty = serve(
        APP, env={"BROKER": "memory", "HEARTBEAT": "0.3"}, args=["--ws-ping-interval", "0.3"]
    )
    location = websocket_proxy(read_timeout="1s")
    lasted = {}
    for name, app in (("quiet", quiet), ("chatty", chatty)):
        with start_nginx([app], location=location, http=CONNECTION_UPGRADE_MAP) as proxy:
            lasted[name] = asyncio.run(chat.idle_lifetimes(proxy.url, wait=2.0))
    assert all(0.9 < s < 1.9 for s in lasted["quiet"].values()), lasted
    assert all(s >= 1.95 for s in lasted["chatty"].values()), lasted


def test_bytes_per_message_settle_the_framing(fast: Server) -> None:
    costs = {(c.message, c.transport): c for c in asyncio.run(bytes_per_message(fast))}
    assert len(costs) == 6
    ws_token, ws_large = costs["token", "WebSocket"], costs["4 KB", "WebSocket"]
    assert (ws_token.down_framing, ws_token.up_framing) == (2, 6)  # header; + the 4-byte mask
    assert (ws_large.down_framing, ws_large.up_framing) == (4, 8)  # 2 more for the length
    assert costs["token", "SSE + POST"].down_framing == 14  # data: , \n\n, chunk size, CRLFs
    assert costs["4 KB", "SSE + POST"].down_framing == 15  # a 3-hex-digit chunk size
    assert costs["token", "SSE + POST"].up_framing > 200  # a POST's request and response heads
    deflated = costs["token", "WebSocket + deflate"].down_bytes / ws_token.down_bytes
    assert deflated < 0.7, deflated


def test_worker_costs_deliver_every_message_to_every_client() -> None:
    results = asyncio.run(worker_costs(idle=20, clients=3, tokens=50))
    assert [r.transport for r in results] == ["SSE", "WebSocket"]
    for r in results:
        assert (r.idle_open, r.delivered) == (20, 3 * 52), r
        assert r.kib_per_idle > 0 and r.per_second > 0 and r.cpu_us_per_message > 0, r


@pytest.mark.redis
def test_cuts_while_replying_lose_nothing_only_for_a_resuming_reader(
    serve: Callable[..., Server], redis: Server
) -> None:
    history = serve(APP, env={"BROKER": "streams", "REDIS_URL": redis.url, "TOKEN_DELAY": "0.02"})
    tokens = 60

    def run(reader: Callable[[str], Awaitable[list[Any]]]) -> list[Any]:
        with start_wiretap(history) as tap:
            return asyncio.run(cut_while_replying(tap, history, reader(tap.url), tokens))

    sse = run(lambda url: asyncio.to_thread(sse_read_with_resume, f"{url}/events", tokens + 2))
    ws = run(lambda url: read_with_resume(chat.ws_url(url, "/ws"), tokens + 2, retry=0.1))
    plain = run(lambda url: read_room(chat.ws_url(url, "/ws"), tokens + 2))
    assert len(sse) == len({e.id for e in sse}) == tokens + 2
    assert len(ws) == len({m["id"] for m in ws}) == tokens + 2
    assert 0 < len(plain) < tokens + 2
    assert connected(history) == 0


@pytest.mark.redis
def test_a_reader_that_fails_before_connecting_raises(
    serve: Callable[..., Server], redis: Server
) -> None:
    history = serve(APP, env={"BROKER": "streams", "REDIS_URL": redis.url})
    with start_wiretap(history) as tap:
        refused = read_with_resume(chat.ws_url(tap.url, "/ws?last_id=banana"), 1)
        with pytest.raises(ValueError, match="last_id must be"):
            asyncio.run(cut_while_replying(tap, history, refused, 5))
