"""Stage 8 (lesson 10, optional): stage 7's chat room over a WebSocket, at /room/ws.

How it is checked: a real redis-server and two workers of the learner's app (uvicorn, with
`REDIS_URL`); no nginx (lesson 10, section 6 shows what a WebSocket needs from it). The
checker opens sockets with the `websockets` library and listens to `/room/events` with httpx2
and the course's SSE decoder: a message up a socket and back down it, across workers in both
directions (socket to SSE, POST to socket), a socket that reconnects with `?last_id=`, then
malformed ids and messages, each of which must close the socket with a close code and a reason.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import httpx2
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from server.course.launcher import Server, start_redis
from server.course.stages.room_clients import Listener, connected, post, running, text_of
from server.course.stages.run import Missed, StageRun
from server.course.stages.waits import wait_until

TITLE = "the chat room over a WebSocket: both ways with SSE, resumed with ?last_id="
LESSON = "10_websocket_vs_sse"
DEADLINE = 45.0
NEEDS = ("redis",)
WAIT = 5.0  # seconds for a frame, or a close, to arrive
MALFORMED = ["banana", "12345", "1-2-3", "٣-0"]  # ٣ is ARABIC-INDIC DIGIT THREE: \d takes it
BAD_FRAMES: dict[str, str | bytes] = {
    "not JSON": "hello",
    "no text": '{"user": "a"}',
    "a binary frame": b'{"user": "a", "text": "hi"}',
    "40 KB": '{"user": "a", "text": "' + "x" * 40_000 + '"}',
}
REFUSED = {1003, 1007, 1008, 1009}  # unsupported data, invalid data, policy, too big


def ws_url(server: Server, last_id: str | None = None) -> str:
    url = f"ws://{server.host}:{server.port}/room/ws"
    return url if last_id is None else f"{url}?last_id={quote(last_id)}"


@asynccontextmanager
async def socket(url: str) -> AsyncIterator[ClientConnection]:
    """A WebSocket to `url`; a refused handshake is a `Missed` with what came instead."""
    try:
        ws = await connect(url, proxy=None, open_timeout=10, max_size=None)
    except InvalidStatus as error:
        raise Missed(f"the handshake got {error.response.status_code}, not 101") from None
    except (InvalidHandshake, OSError, TimeoutError) as error:
        raise Missed(f"the handshake failed: {type(error).__name__}: {error}") from None
    try:
        yield ws
    finally:
        await ws.close()


async def receive(ws: ClientConnection) -> dict[str, Any]:
    """The next frame as a JSON object (`Missed` if none comes, or it is not one)."""
    try:
        frame = await asyncio.wait_for(ws.recv(), WAIT)
    except TimeoutError:
        raise Missed(f"no frame came down the socket within {WAIT:g} s") from None
    except ConnectionClosed as closed:
        raise Missed(f"the socket was closed: {closed}") from None
    try:
        value = json.loads(frame)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise Missed(f"a frame that is not a JSON object: {str(frame)[:80]!r}")
    return value


async def send(ws: ClientConnection, text: str) -> None:
    try:
        await ws.send(json.dumps({"user": "checker", "text": text}, ensure_ascii=False))
    except ConnectionClosed as closed:
        raise Missed(f"the socket was closed before a message could go up: {closed}") from None


async def close_code(ws: ClientConnection) -> tuple[int | None, str]:
    """How the server closed the socket (code, reason); `Missed` if it sent a frame or waited."""
    try:
        frame = await asyncio.wait_for(ws.recv(), WAIT)
    except TimeoutError:
        raise Missed(f"the socket stayed open for {WAIT:g} s") from None
    except ConnectionClosed as closed:
        return (closed.rcvd.code, closed.rcvd.reason) if closed.rcvd else (None, "")
    raise Missed(f"a frame came down instead of a close: {str(frame)[:80]!r}")


async def check(run: StageRun) -> None:
    redis = run.started(start_redis())
    env = {"REDIS_URL": redis.url, "CHAT_HEARTBEAT": "1"}
    a, b = await asyncio.gather(
        asyncio.to_thread(run.app, env=env), asyncio.to_thread(run.app, env=env)
    )
    async with httpx2.AsyncClient(timeout=10) as client:
        with run.step(
            "stage 7 holds: POST /room/messages answers 201 with the message's id",
            hint="stage 8 serves stage 7's room over a WebSocket: pass check_stage(7) first, "
            "or fill it from the reference with `make catch-up STAGE=8` (your files are "
            "backed up)",
        ):
            body = {"user": "checker", "text": "stage 7"}
            answer = await client.post(a.url + "/room/messages", json=body)
            if answer.status_code != 201:
                raise Missed(f"{answer.status_code} {answer.text[:100]!r}")

        with run.step(
            'WS /room/ws: a message sent up the socket, {"user": ..., "text": ...}, comes back '
            'down it as {"id": <its Redis id>, "user": ..., "text": ...}',
            hint="in mychat/room_ws.py, room_socket(): `await websocket.accept()`, `start = "
            "await start_after(last_id)`, then run send_room() (a text frame per entry of "
            "entries_after(start), its id put into the JSON) and receive_messages() (`await "
            "add(Message.model_validate_json(text))` per text frame) side by side",
        ):
            async with socket(ws_url(a)) as ws:
                await send(ws, "안녕, socket")
                frame = await receive(ws)
            if frame.get("text") != "안녕, socket" or not is_stream_id(frame.get("id")):
                raise Missed(f"the frame that came down: {json.dumps(frame)[:120]}")

        with run.step(
            "a message sent up a socket on worker A reaches an SSE listener on worker B with "
            "the same id, and one POSTed to worker B reaches the socket on worker A",
            hint="both transports read and write stage 7's stream: send_room() follows it with "
            "entries_after() and receive_messages() writes with add(), never anything kept "
            "in one worker's memory",
        ):
            listener = Listener(client, b.url + "/room/events")
            async with running([listener]), socket(ws_url(a)) as ws:
                await connected([listener])
                await send(ws, "from the socket")
                echoed = await receive(ws)
                await wait_until(lambda: listener.events, within=WAIT)
                if not listener.events:
                    raise Missed("the SSE listener on worker B got nothing")
                heard = listener.events[0]
                if (heard.id, text_of(heard.data)) != (echoed.get("id"), "from the socket"):
                    raise Missed(f"the SSE listener got (id {heard.id}, data {heard.data!r})")
                posted = await post(client, b.url + "/room/messages", "from a POST")
                frame = await receive(ws)
                if (frame.get("id"), frame.get("text")) != (posted, "from a POST"):
                    raise Missed(f"POSTed as {posted}; the socket got {json.dumps(frame)[:120]}")

        with run.step(
            "a socket that reconnects with ?last_id=<the first of three> gets the second and "
            "third, then the next one sent",
            hint="room_socket() has a parameter `last_id: str | None = None` (FastAPI reads "
            "it from the query) and starts at `await start_after(last_id)`",
        ):
            async with socket(ws_url(a)) as ws:
                for text in ("w1", "w2", "w3"):
                    await send(ws, text)
                sent = [await receive(ws) for _ in range(3)]
            async with socket(ws_url(b, str(sent[0].get("id")))) as ws:
                resumed = [await receive(ws) for _ in range(2)]
                await send(ws, "w4")
                resumed.append(await receive(ws))
            got = [frame.get("text") for frame in resumed]
            if got != ["w2", "w3", "w4"] or resumed[0].get("id") != sent[1].get("id"):
                raise Missed(f"after last_id={sent[0].get('id')}: {got}")

        with run.step(
            "a malformed ?last_id= (" + ", ".join(MALFORMED) + ") closes the socket with 1008 "
            "and a reason",
            hint="when start_after() raises ValueError, `await websocket.close(1008, reason)` "
            "after accept() (a reason reaches a client only once accepted); its pattern is "
            "`[0-9]`, not `\\d`, which takes other scripts' digits such as ٣",
        ):
            wrong = []
            for value in MALFORMED:
                async with socket(ws_url(a, value)) as ws:
                    code, reason = await close_code(ws)
                if code != 1008 or not reason:
                    wrong.append(f"{value}: close {code} {reason!r}")
            if wrong:
                raise Missed("; ".join(wrong))

        with run.step(
            "a bad frame (" + ", ".join(BAD_FRAMES) + ") closes its socket with a close code "
            "and a reason, and adds nothing to the room",
            hint="in receive_messages(): a frame without text (a binary one) or over MAX_BODY "
            "bytes, or a ValidationError from Message.model_validate_json(), is "
            "`await websocket.close(1008, reason)` (1009 for too big), then return",
        ):
            listener = Listener(client, b.url + "/room/events")
            async with running([listener]):
                await connected([listener])
                wrong = []
                for name, bad in BAD_FRAMES.items():
                    async with socket(ws_url(a)) as ws:
                        await ws.send(bad)
                        code, reason = await close_code(ws)
                    if code not in REFUSED or not reason:
                        wrong.append(f"{name}: close {code} {reason!r}")
                if wrong:
                    raise Missed("; ".join(wrong))
                posted = await post(client, a.url + "/room/messages", "after the bad frames")
                await wait_until(lambda: listener.events, within=WAIT)
            texts = [text_of(event.data) for event in listener.events]
            if texts != ["after the bad frames"] or listener.events[0].id != posted:
                raise Missed(f"an SSE listener got {texts} while the bad frames were sent")


def is_stream_id(value: object) -> bool:
    if not isinstance(value, str):
        return False
    milliseconds, dash, sequence = value.partition("-")
    return bool(dash) and milliseconds.isdigit() and sequence.isdigit()
