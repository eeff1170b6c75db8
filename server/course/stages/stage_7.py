"""Stage 7 (lesson 09): the chat room on two workers behind nginx, through one Redis stream.

How it is checked: a real redis-server, two workers of the learner's app (uvicorn, each with
`REDIS_URL` and `CHAT_HEARTBEAT=1`), nginx in front of both. The checker posts with
httpx2 and listens with the course's SSE decoder: good and bad posts to one worker, a message
through nginx to listeners on both workers, an idle stream's heartbeat, a listener that reads
nothing beside two that read, malformed and good `Last-Event-ID`s, and six listeners through
nginx that reconnect with `Last-Event-ID` (`room_clients.Listener`) while 40 numbered messages
are posted and the worker holding most of them is SIGKILLed, then restarted.
"""

from __future__ import annotations

import asyncio
import re
from contextlib import suppress

import httpx2

from server.course.errors import LauncherError
from server.course.launcher import Server, start_redis
from server.course.stages.nginx_project import start_project_nginx
from server.course.stages.room_clients import (
    Listener,
    compare,
    connected,
    post,
    running,
    stalled_listener,
    stream_ids,
    stream_position,
    text_of,
)
from server.course.stages.run import Missed, StageRun
from server.course.stages.waits import log_count, wait_for_log, wait_until

TITLE = "the chat room on two workers behind nginx: Redis Streams, Last-Event-ID, a SIGKILL"
LESSON = "09_scaling_pubsub"
DEADLINE = 60.0
NEEDS = ("nginx", "redis")
MESSAGES, EVENTS = "/room/messages", "/room/events"
STREAM_ID = re.compile(r"[0-9]+-[0-9]+")  # what XADD returns: <milliseconds>-<sequence>
STREAM_LOGGED = '"GET /room/events'  # uvicorn's access log line, written as a stream starts
HEARTBEAT = "1"  # CHAT_HEARTBEAT for the workers: a ping after 1 s of silence
BAD_POSTS = {
    "not JSON": b"hello",
    "no text": b'{"user": "a"}',
    "an empty text": b'{"user": "a", "text": ""}',
    "2,001 characters": b'{"user": "a", "text": "' + b"x" * 2001 + b'"}',
    "a lone surrogate": b'{"user": "a", "text": "\\ud800"}',
    "40 KB": b'{"user": "a", "text": "' + b"x" * 40_000 + b'"}',
}
MALFORMED = {
    "banana": b"banana",
    "12345": b"12345",
    "1-2-3": b"1-2-3",
    "-5": b"-5",
    "a 30-digit time": b"9" * 30 + b"-0",
}
STALL_MESSAGES = 700  # of 8 KB: 5.6 MB, twice what backs up before a server's write waits
KILL_LISTENERS, KILL_MESSAGES = 6, 40
BURST = 20


async def check(run: StageRun) -> None:
    redis = run.started(start_redis())
    env = {"REDIS_URL": redis.url, "CHAT_HEARTBEAT": HEARTBEAT}
    a, b = await asyncio.gather(
        asyncio.to_thread(run.app, env=env), asyncio.to_thread(run.app, env=env)
    )
    async with httpx2.AsyncClient(timeout=10) as client:
        with run.step(
            'POST /room/messages {"user": ..., "text": ...} answers 201 {"id": <its Redis id>}',
            hint='in mychat/room.py, add(): `return await REDIS.xadd(ROOM, {"data": '
            "message.model_dump_json()}, maxlen=KEEP, approximate=True)`; post_message(): "
            '`message = await read_message(request)`, then `return {"id": await add(message)}`',
        ):
            answer = await client.post(a.url + MESSAGES, json={"user": "지민", "text": "안녕"})
            message_id = answer.json().get("id") if answer.status_code == 201 else None
            if not isinstance(message_id, str) or not STREAM_ID.fullmatch(message_id):
                raise Missed(f"{answer.status_code} {answer.text[:100]!r}")

        with run.step(
            "a bad post (" + ", ".join(BAD_POSTS) + ") gets a 4xx with the reason, never a 500",
            hint="read the body with the given `read_message(request)` (at most MAX_BODY "
            "bytes, parsed by pydantic): with a `message: Message` parameter, FastAPI's 422 "
            "echoes the input, and fails on a lone surrogate",
        ):
            wrong = []
            for name, body in BAD_POSTS.items():
                headers = {"Content-Type": "application/json", "Connection": "close"}
                answer = await client.post(a.url + MESSAGES, content=body, headers=headers)
                if not 400 <= answer.status_code < 500:
                    wrong.append(f"{name}: {answer.status_code} {answer.text[:60]!r}")
            if wrong:
                raise Missed("; ".join(wrong))

        with run.step(
            "your nginx.conf (stage 6) runs in front of both workers",
            hint="stage 7 puts your stage 6 config in front of two workers (its `server "
            "{{worker}};` line is written once per worker): pass check_stage(6) first, or "
            "fill it from the reference with `make catch-up STAGE=7`",
        ):
            nginx = start_project_nginx(run, [a.port, b.port])
        urls = [a.url, b.url, nginx.url, nginx.url]
        where = ["on worker A", "on worker B", "through nginx", "through nginx"]
        listeners = [Listener(client, url + EVENTS) for url in urls]
        async with running(listeners):
            with run.step(
                "GET /room/events: a message posted through nginx reaches listeners on both "
                "workers and through nginx, its Redis id the event's id, its JSON the data",
                hint="room_events(): `start = await start_after(last_event_id)` (a new "
                "listener: after the newest id, `XREVRANGE ROOM + - COUNT 1`), then a "
                "StreamingResponse of `encode(Event(data, id=entry_id))` for each entry of "
                "entries_after(start), whose loop is `await REDIS.xread({ROOM: last_id}, "
                "count=100, block=...)`",
            ):
                await connected(listeners)
                message_id = await post(client, nginx.url + MESSAGES, "hello, room")
                if message_id is None:
                    raise Missed("POST /room/messages through nginx did not answer 201")
                await wait_until(lambda: all(ls.events for ls in listeners), within=5)
                for place, listener in zip(where, listeners, strict=True):
                    got = [(event.id, text_of(event.data)) for event in listener.events]
                    if got != [(message_id, "hello, room")]:
                        raise Missed(f"the listener {place} got {got or 'nothing'}")

            with run.step(
                f"{BURST} messages posted at once reach every listener, each once, in the "
                "stream's order",
                hint="in entries_after(), XREAD after the id of the last entry you yielded, "
                "never after `$` (which skips what was added between two XREADs), and yield "
                "every entry XREAD returns, in order",
            ):
                texts = [f"burst {n}" for n in range(1, BURST + 1)]
                ids = await asyncio.gather(
                    *(post(client, nginx.url + MESSAGES, text) for text in texts)
                )
                if None in ids:
                    raise Missed(f"{ids.count(None)} of {BURST} posts failed")
                names = {i: t for i, t in zip(ids, texts, strict=True) if i}
                want = [message_id, *sorted(names, key=stream_position)]
                await wait_until(
                    lambda: all(len(ls.events) >= len(want) for ls in listeners), within=5
                )
                for place, listener in zip(where, listeners, strict=True):
                    differs = compare(listener.events, want, names)
                    if differs:
                        raise Missed(f"the listener {place}: {differs}")

        with run.step(
            f"an idle stream gets a heartbeat comment (here CHAT_HEARTBEAT={HEARTBEAT})",
            hint="in entries_after(), XREAD's BLOCK is `int(HEARTBEAT * 1000)` ms; when it "
            'returns nothing, yield None, for which room_events() sends `comment("ping")`',
        ):
            await expect_heartbeat(client, a.url + EVENTS, within=float(HEARTBEAT) + 3)

        with run.step(
            f"a listener that reads nothing does not hold up the others: {STALL_MESSAGES} "
            "messages of 8 KB reach one listener on its worker and one on the other",
            hint="give each listener its own read of the stream (entries_after()); a reader "
            "shared by a worker must never wait for one listener (lesson 09, exercise 1)",
        ):
            await stalled_room(client, nginx, a, b)

        with run.step(
            "a malformed Last-Event-ID (" + ", ".join(MALFORMED) + ") is a 400",
            hint="start_after(): accept only `[0-9]{1,19}-[0-9]{1,19}` with re.fullmatch (19 "
            "digits stay below Redis's 2**64 limit) and raise ValueError otherwise; "
            "room_events() turns that into HTTPException(400) before the stream starts",
        ):
            wrong = []
            for name, value in MALFORMED.items():
                sent = {b"Last-Event-ID": value, b"Connection": b"close"}
                async with client.stream("GET", a.url + EVENTS, headers=sent) as answer:
                    if answer.status_code != 400:
                        wrong.append(f"{name}: {answer.status_code}")
            if wrong:
                raise Missed("; ".join(wrong))

        with run.step(
            "Last-Event-ID: <the first of three> through nginx gets the second and third, "
            "then the next one posted: no gap, no repeat",
            hint="start_after() returns a well-formed id as it is, and XREAD from an id "
            "returns the entries after it: the ones missed at once, then each new one",
        ):
            texts = ["r1", "r2", "r3", "r4"]
            ids = [await post(client, nginx.url + MESSAGES, text) for text in texts[:3]]
            if None in ids or ids[0] is None:
                raise Missed(f"posting r1, r2, r3 through nginx gave the ids {ids}")
            listener = Listener(client, nginx.url + EVENTS, after=ids[0])
            async with running([listener]):
                await connected([listener])
                ids.append(await post(client, nginx.url + MESSAGES, texts[3]))
                await wait_until(lambda: len(listener.events) >= 3, within=5)
            names = {i: t for i, t in zip(ids, texts, strict=True) if i}
            differs = compare(listener.events, [i for i in ids[1:] if i], names)
            if differs:
                raise Missed(differs)

        with run.step(
            f"{KILL_LISTENERS} listeners through nginx get all {KILL_MESSAGES} messages once "
            "each, in order, while the worker holding most of them is SIGKILLed and "
            "restarted (they reconnect with Last-Event-ID)",
            hint="a reconnection may land on the other worker: resume from Redis after the "
            "client's id (XREAD from it), never from anything kept in a worker's memory",
        ):
            await killed_worker(client, nginx, redis, {"A": a, "B": b})


async def expect_heartbeat(client: httpx2.AsyncClient, url: str, within: float) -> None:
    """A comment line on a stream where nothing is posted, within `within` seconds."""
    received = b""
    with suppress(TimeoutError):
        async with asyncio.timeout(within), client.stream("GET", url) as answer:
            async for chunk in answer.aiter_bytes():
                received += chunk
                if received.startswith(b":") or b"\n:" in received:
                    return
    raise Missed(f"in {within:g} s of silence the stream sent {received[:80]!r}")


async def stalled_room(client: httpx2.AsyncClient, nginx: Server, a: Server, b: Server) -> None:
    """Post large messages while a listener on A reads nothing; the others must get all."""
    opened = log_count(a, STREAM_LOGGED)
    stalled = await stalled_listener(a.host, a.port, EVENTS)
    try:
        if not await wait_for_log(a, STREAM_LOGGED, opened + 1, within=5):
            raise Missed("the listener that reads nothing got no 200 from worker A in 5 s")
        listeners = [Listener(client, a.url + EVENTS), Listener(client, b.url + EVENTS)]
        async with running(listeners):
            await connected(listeners)
            limit = asyncio.Semaphore(10)

            async def one(n: int) -> str | None:
                async with limit:
                    return await post(client, nginx.url + MESSAGES, f"{n:04d}" + "🚀" * 1996)

            ids = await asyncio.gather(*(one(n) for n in range(STALL_MESSAGES)))
            if None in ids:
                raise Missed(f"{ids.count(None)} of {STALL_MESSAGES} posts failed")
            await wait_until(
                lambda: all(len(ls.events) >= STALL_MESSAGES for ls in listeners), within=25
            )
        counts = [len(listener.events) for listener in listeners]
        if min(counts) < STALL_MESSAGES:
            raise Missed(
                f"the listener on worker A got {counts[0]}, the one on worker B {counts[1]}, "
                f"of {STALL_MESSAGES}, while a listener on worker A read nothing"
            )
    finally:
        stalled.close()


async def killed_worker(
    client: httpx2.AsyncClient, nginx: Server, redis: Server, workers: dict[str, Server]
) -> None:
    """Numbered posts through nginx while the worker with most listeners dies and comes back."""
    opened = {name: log_count(worker, STREAM_LOGGED) for name, worker in workers.items()}
    listeners = [Listener(client, nginx.url + EVENTS) for _ in range(KILL_LISTENERS)]
    async with running(listeners):
        await connected(listeners)

        def held() -> dict[str, int]:  # the streams each worker opened for these listeners
            return {n: log_count(w, STREAM_LOGGED) - opened[n] for n, w in workers.items()}

        await wait_until(lambda: sum(held().values()) >= KILL_LISTENERS, within=5)
        victim = workers[max(held(), key=lambda name: held()[name])]
        names: dict[str, str] = {}
        restarted = None
        for n in range(1, KILL_MESSAGES + 1):
            message_id = await post(client, nginx.url + MESSAGES, f"#{n}")
            if message_id:
                names[message_id] = f"#{n}"
            if n == KILL_MESSAGES // 4:
                await asyncio.to_thread(victim.kill)
            elif n == KILL_MESSAGES // 2:
                restarted = asyncio.create_task(asyncio.to_thread(victim.restart))
            await asyncio.sleep(0.02)
        if restarted is not None:
            try:
                await restarted
            except LauncherError as error:
                raise Missed(f"the killed worker did not start again: {error}") from None
        if len(names) < KILL_MESSAGES - 5:
            raise Missed(f"only {len(names)} of {KILL_MESSAGES} posts through nginx got a 201")
        want = await stream_ids(redis.url, min(names, key=stream_position))
        await wait_until(lambda: all(ls.last_event_id == want[-1] for ls in listeners), within=25)
    for number, listener in enumerate(listeners, 1):
        wrong = compare(listener.events, want, names)
        if wrong:
            cuts = listener.connections - 1
            raise Missed(f"listener {number} (cut {cuts} times): {wrong}")
    if all(listener.connections == 1 for listener in listeners):
        raise Missed(f"no listener was cut: the streams opened per worker were {held()}")
