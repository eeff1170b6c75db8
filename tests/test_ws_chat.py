"""Lesson 10's chat over WebSocket and over SSE + POST: the app, its clients, the bytes each
transport spends, the nginx config a WebSocket needs, resume, two workers, a real Chromium,
and the bench's smoke run.

Servers are real (uvicorn, nginx, redis-server on free ports), streams are finite (`?limit=`),
faults are injected by cutting a wiretap's connections. Timing asserts are generous deadlines.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from server.apps.ws_chat import websocket_text
from server.clients.http_raw import websocket_frame
from server.clients.sse_client import aconnect_sse
from server.clients.wire_bytes import WireBytes, sse_bytes, websocket_bytes
from server.clients.ws_load import HeldSockets
from server.clients.ws_resume import read_room, read_with_resume, with_last_id
from server.course.cluster import start_workers, upstreams
from server.course.launcher import Server, start_nginx
from server.course.nginx import CONNECTION_UPGRADE_MAP, SSE_PROXY, websocket_proxy
from server.course.reply_cuts import cut_while_replying
from server.course.wiretap import Wiretap, start_wiretap
from server.fanout import Message
from server.seed_texts import REPLY

APP = "server.apps.ws_chat:app"
ROOT = Path(__file__).resolve().parent.parent
DEADLINE = 30.0
ONE_REPLY = len(REPLY) + 2  # the user's message, a token per syllable, done


def ws(url: str, path: str) -> str:
    return url.replace("http://", "ws://", 1) + path


async def ask(url: str, text: str = "hi", tokens: int = len(REPLY), **options: Any) -> list[dict]:
    """Send one message over a WebSocket and read the room until its reply is done."""
    async with connect(ws(url, f"/ws?limit={tokens + 2}"), proxy=None, **options) as socket:
        await socket.send(json.dumps({"text": text, "tokens": tokens}))
        return [json.loads(message) async for message in socket]


def reply_text(messages: list[dict]) -> str:
    return "".join(m["text"] for m in messages if m["type"] == "token")


@pytest.fixture
def chat(serve: Callable[..., Server]) -> Server:
    return serve(APP, env={"BROKER": "memory", "TOKEN_DELAY": "0.01"})


# --- the app -------------------------------------------------------------------------------


def test_a_message_in_its_reply_out_on_the_same_websocket(chat: Server) -> None:
    messages = asyncio.run(ask(chat.url, "안녕"))
    assert [m["type"] for m in messages] == ["user", *["token"] * len(REPLY), "done"]
    assert messages[0]["text"] == "안녕" and reply_text(messages) == REPLY
    assert len({m["reply"] for m in messages}) == 1
    assert "id" not in messages[0]  # the memory broker gives no ids


def test_sse_and_websocket_carry_the_same_room_messages(chat: Server) -> None:
    async def scenario() -> tuple[list[dict], list[dict]]:
        url = f"{chat.url}/events?limit={ONE_REPLY}"
        async with (
            httpx2.AsyncClient(timeout=DEADLINE) as http,
            aconnect_sse(http, "GET", url) as events,  # joined the room: 200 sent
        ):
            over_ws = asyncio.create_task(ask(chat.url, "both"))
            over_sse = [json.loads(event.data) async for event in events]
            return await over_ws, over_sse

    over_ws, over_sse = asyncio.run(scenario())
    assert over_ws == over_sse and len(over_ws) == ONE_REPLY


def test_post_then_events(chat: Server) -> None:
    answer = httpx2.post(f"{chat.url}/messages", json={"text": "x", "tokens": 3})
    assert answer.status_code == 202 and answer.json()["reply"]
    bad = httpx2.post(f"{chat.url}/messages", content=b"nope")
    assert bad.status_code == 400 and "JSON object" in bad.json()["detail"]
    too_many = httpx2.post(f"{chat.url}/messages", json={"text": "x", "tokens": -1})
    assert too_many.status_code == 400


@pytest.mark.parametrize(
    ("frame", "reason"),
    [("not json", "JSON object"), (json.dumps({"tokens": 2}), '"text"'), (b"\x00\x01", "binary")],
)
def test_a_bad_message_closes_the_socket_with_1008_and_the_reason(
    chat: Server, frame: str | bytes, reason: str
) -> None:
    async def scenario() -> tuple[int | None, str | None]:
        async with connect(ws(chat.url, "/ws"), proxy=None) as socket:
            await socket.send(frame)
            await socket.wait_closed()
            return socket.close_code, socket.close_reason

    code, why = asyncio.run(scenario())
    assert code == 1008 and why is not None and reason in why, why


def test_websocket_text_puts_the_id_inside_the_json() -> None:
    assert websocket_text(Message('{"a":1}')) == '{"a":1}'
    with_id = websocket_text(Message('{"a":1}', id="5-0", event="reset"))
    assert json.loads(with_id) == {"id": "5-0", "event": "reset", "a": 1}
    assert (
        with_last_id("ws://h:1/ws?limit=3&last_id=1-0", "2-0") == "ws://h:1/ws?limit=3&last_id=2-0"
    )


# --- bytes on the wire ---------------------------------------------------------------------


def test_wire_bytes_of_frames_and_chunks_built_by_hand() -> None:
    head = b"GET /ws HTTP/1.1\r\nHost: h\r\n\r\n"
    up = head + websocket_frame("x" * 10) + websocket_frame("y" * 200)
    # Server frames: unmasked; a 300-byte one has a 2-byte extended length; a ping is control.
    down = b"HTTP/1.1 101 Switching Protocols\r\n\r\n" + bytes([0x81, 5]) + b"hello"
    down += bytes([0x81, 126]) + (300).to_bytes(2, "big") + b"z" * 300 + bytes([0x89, 0])
    assert websocket_bytes(up) == WireBytes(len(head), ((10, 6), (200, 8)), 0)
    assert websocket_bytes(down) == WireBytes(36, ((5, 2), (300, 4)), 2)
    assert websocket_bytes(down).only([False, True]).framing == 4
    event = b"data: hello\n\n"
    body = b"d\r\n" + event + b"\r\n" + b"7\r\n: ping\n\r\n" + b"0\r\n\r\n"
    counted = sse_bytes(b"HTTP/1.1 200 OK\r\n\r\n" + body)
    assert counted == WireBytes(19, ((5, len(event) - 5 + 5),), 12 + 5)
    assert counted.framing_per_message == 13 and counted.per_message == 18


def _directions(tap: Wiretap) -> tuple[bytes, bytes]:
    """(up, down) bytes of the first connection that carried any (not the readiness check)."""
    records = tap.records()
    records = [r for r in records if r.connection == records[0].connection]
    up = b"".join(r.data for r in records if r.direction == "up")
    return up, b"".join(r.data for r in records if r.direction == "down")


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_websocket_frames_cost_2_to_8_bytes_a_message(
    chat: Server, compression: str | None
) -> None:
    with start_wiretap(chat) as tap:
        messages = asyncio.run(ask(tap.url, "k" * 4000, compression=compression))
        up, down = _directions(tap)
    assert reply_text(messages) == REPLY
    sent, got = websocket_bytes(up), websocket_bytes(down)
    assert (sent.messages, got.messages) == (1, ONE_REPLY)
    offered = b"permessage-deflate" in up.split(b"\r\n\r\n")[0]
    assert offered == (compression == "deflate")
    json_bytes = sum(
        len(json.dumps(m, ensure_ascii=False, separators=(",", ":")).encode()) for m in messages
    )
    if compression is None:
        assert sent.framing == 8  # 2-byte header, 2-byte extended length, 4-byte mask
        assert got.framing == 2 * (ONE_REPLY - 1) + 4  # the 4 KB echo has a 4-byte header
        assert got.payload == json_bytes
    else:
        assert sent.payload < 200 and got.payload < json_bytes / 2  # "kkkk..." and the tokens
        assert sent.framing == 6 and got.framing == 2 * ONE_REPLY


def test_sse_spends_more_framing_per_message_than_websocket(chat: Server) -> None:
    with start_wiretap(chat) as tap:

        async def scenario() -> None:
            async with httpx2.AsyncClient(timeout=DEADLINE) as http:
                request = http.build_request("GET", f"{tap.url}/events?limit={ONE_REPLY}")
                stream = await http.send(request, stream=True)
                await http.post(f"{chat.url}/messages", json={"text": "hi"})
                await stream.aread()

        asyncio.run(scenario())
        _, down = _directions(tap)
    counted = sse_bytes(down)
    assert counted.messages == ONE_REPLY
    # "data: " and "\n\n" (8), a 2-hex-digit chunk size and two CRLFs (6): 14 bytes a message
    assert counted.framing == 14 * ONE_REPLY


# --- resume --------------------------------------------------------------------------------


@pytest.mark.redis
def test_a_resuming_client_gets_everything_once_and_a_plain_one_loses_the_rest(
    serve: Callable[..., Server], redis: Server
) -> None:
    env = {"BROKER": "streams", "REDIS_URL": redis.url, "TOKEN_DELAY": "0.02"}
    chat = serve(APP, env=env)
    tokens = 60

    # The reader is known to be connected by the app's own count, not after a sleep.
    with start_wiretap(chat) as tap:
        resumed = asyncio.run(
            cut_while_replying(
                tap, chat, read_with_resume(ws(tap.url, "/ws"), tokens + 2, retry=0.1), tokens
            )
        )
    with start_wiretap(chat) as tap:
        plain = asyncio.run(
            cut_while_replying(tap, chat, read_room(ws(tap.url, "/ws"), tokens + 2), tokens)
        )
    assert [m["type"] for m in resumed] == ["user", *["token"] * tokens, "done"]
    ids = [m["id"] for m in resumed]
    assert len(set(ids)) == len(ids) and ids == sorted(
        ids, key=lambda i: tuple(map(int, i.split("-")))
    )
    assert 0 < len(plain) < tokens + 2


@pytest.mark.redis
def test_a_bad_last_id_is_refused_with_1008_and_the_resuming_client_stops(
    serve: Callable[..., Server], redis: Server
) -> None:
    chat = serve(APP, env={"BROKER": "streams", "REDIS_URL": redis.url})
    with pytest.raises(ValueError, match="last_id must be a Redis stream id"):
        asyncio.run(read_with_resume(ws(chat.url, "/ws?last_id=banana"), 1))
    refused = httpx2.get(f"{chat.url}/events", headers={"Last-Event-ID": "banana"})
    assert refused.status_code == 400 and "Last-Event-ID must be" in refused.json()["detail"]
    assert httpx2.get(f"{chat.url}/events?limit=x").status_code == 400


# --- nginx and two workers -----------------------------------------------------------------


@pytest.mark.nginx
def test_nginx_needs_upgrade_and_connection_for_a_websocket(chat: Server) -> None:
    with start_nginx([chat], location=SSE_PROXY) as plain:
        with pytest.raises(InvalidStatus) as refused:
            asyncio.run(ask(plain.url))
        assert refused.value.response.status_code == 404  # the app saw a plain GET
    location = websocket_proxy()
    assert "proxy_set_header Upgrade $http_upgrade;" in location
    with start_nginx([chat], location=location, http=CONNECTION_UPGRADE_MAP) as proxy:
        assert reply_text(asyncio.run(ask(proxy.url))) == REPLY
        assert asyncio.run(sse_reply(proxy.url)) == REPLY  # the same location serves SSE


async def sse_reply(url: str) -> str:
    """POST a message and read its reply from `/events`, both at `url`."""
    async with (
        httpx2.AsyncClient(timeout=DEADLINE) as http,
        aconnect_sse(http, "GET", f"{url}/events?limit={ONE_REPLY}") as events,
    ):
        await http.post(f"{url}/messages", json={"text": "hi"})
        return reply_text([json.loads(event.data) async for event in events])


@pytest.mark.nginx
def test_proxy_read_timeout_ends_an_idle_websocket_and_an_idle_stream(
    serve: Callable[..., Server],
) -> None:
    quiet = serve(
        APP, env={"BROKER": "memory", "HEARTBEAT": "60"}, args=["--ws-ping-interval", "0"]
    )
    location = websocket_proxy(read_timeout="1s")
    with start_nginx([quiet], location=location, http=CONNECTION_UPGRADE_MAP) as proxy:

        async def scenario() -> tuple[float, float]:
            loop = asyncio.get_running_loop()
            started = loop.time()
            async with connect(ws(proxy.url, "/ws"), proxy=None, ping_interval=None) as socket:
                await socket.wait_closed()
            ws_lasted = loop.time() - started
            started = loop.time()
            async with httpx2.AsyncClient(timeout=DEADLINE) as http:
                with pytest.raises(httpx2.RemoteProtocolError):  # cut: no last chunk
                    await http.get(f"{proxy.url}/events")
            return ws_lasted, loop.time() - started

        ws_lasted, sse_lasted = asyncio.run(scenario())
    assert 0.9 < ws_lasted < 10 and 0.9 < sse_lasted < 10, (ws_lasted, sse_lasted)


@pytest.mark.nginx
@pytest.mark.redis
@pytest.mark.parametrize(("broker", "everyone"), [("memory", False), ("pubsub", True)])
def test_websocket_broadcast_on_two_workers_needs_pubsub(
    redis: Server, broker: str, everyone: bool
) -> None:
    workers = start_workers(
        APP, "AB", env={"BROKER": broker, "REDIS_URL": redis.url, "TOKEN_DELAY": "0"}
    )
    try:
        with start_nginx(
            upstreams(workers), location=websocket_proxy(), http=CONNECTION_UPGRADE_MAP
        ) as lb:

            async def scenario() -> list[list[dict]]:
                sockets = [await connect(ws(lb.url, "/ws"), proxy=None) for _ in range(4)]
                for socket in sockets:
                    await socket.send(json.dumps({"text": "hi", "tokens": 0}))
                received: list[list[dict]] = [[] for _ in sockets]
                for got, socket in zip(received, sockets, strict=True):
                    try:
                        while True:
                            got.append(json.loads(await asyncio.wait_for(socket.recv(), 1.0)))
                    except TimeoutError:
                        pass
                    await socket.close()
                return received

            received = asyncio.run(scenario())
    finally:
        for worker in workers.values():
            worker.stop()
    counts = [sum(m["type"] == "user" for m in got) for got in received]
    assert counts == ([4] * 4 if everyone else [2] * 4), counts


# --- load client and bench -----------------------------------------------------------------


def test_held_sockets_count_every_message(chat: Server) -> None:
    async def scenario() -> HeldSockets:
        async with HeldSockets(f"{chat.url}/ws?limit={ONE_REPLY}", 10) as held:
            assert held.opened == 10
            httpx2.post(f"{chat.url}/messages", json={"text": "x"})
            assert await held.wait_for_messages(ONE_REPLY, DEADLINE)
            assert await held.wait_for_close(DEADLINE)  # ?limit= closes each after the reply
        return held

    held = asyncio.run(scenario())
    assert [(r.messages, r.error) for r in held.records] == [(ONE_REPLY, None)] * 10
    assert all(r.closed for r in held.records) and held.cpu_seconds > 0


# --- a real browser ------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.parametrize("transport", ["websocket", "sse"])
def test_the_page_chats_in_chromium(browser: Any, chat: Server, transport: str) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(f"{chat.url}/?transport={transport}")
        page.wait_for_function("document.body.dataset.state === 'open'")
        page.fill("#message", "<b>hi</b>")
        page.click("#send")
        page.wait_for_selector(".assistant[data-done=yes]")
        assert page.inner_text(".assistant") == REPLY
        assert page.inner_text(".user") == "<b>hi</b>"  # shown as text
    finally:
        context.close()


@pytest.mark.browser
@pytest.mark.redis
def test_the_page_reconnects_its_websocket_and_resumes_from_the_last_id(
    browser: Any, serve: Callable[..., Server], redis: Server
) -> None:
    env = {"BROKER": "streams", "REDIS_URL": redis.url, "TOKEN_DELAY": "0.05"}
    chat = serve(APP, env=env)
    context = browser.new_context()
    try:
        with start_wiretap(chat) as tap:
            page = context.new_page()
            page.set_default_timeout(15_000)
            page.goto(f"{tap.url}/?transport=websocket")
            page.wait_for_function("document.body.dataset.state === 'open'")
            page.click("#send")  # a reply of 18 tokens, 0.05 s apart
            page.wait_for_function("document.querySelector('.assistant')?.textContent.length >= 3")
            tap.cut()  # the network fails mid-reply
            page.wait_for_function("document.body.dataset.connections === '2'")
            page.wait_for_selector(".assistant[data-done=yes]")
            assert page.inner_text(".assistant") == REPLY  # nothing lost, nothing twice
            assert page.locator(".user").count() == 1
    finally:
        context.close()
