"""Stage 9 (lesson 11): the whole chat: replies generated into Redis, streamed by any worker.

How it is checked: a throwaway redis-server, the course's fake model (`server.apps.fake_openai`,
2 s before its first token, then 20 a second; deterministic, so each prompt's reply is known:
the checker asks it once, unpaced, first) and two workers of your app (A and B) with `REDIS_URL`,
`OPENAI_BASE_URL` and `OPENAI_API_KEY` set. First on the workers directly: a message posted to A,
its reply read from B (exact text, stream ids, heartbeats during the model's first 2 s, `done`),
resumed from A with `Last-Event-ID`, a reconnection with the `done` event's id answered 204 (not
held open), and bad input refused. Then through the learner's nginx
(`mychat/nginx.conf`, `nginx_project`) in front of both: one user's flood, and a load run of
USERS users at once during which A is SIGKILLed once every user has a few deltas.

What the kill proves: the users whose stream A served reconnect through nginx (to B) with
`Last-Event-ID`; the replies A was generating are finished by B (the fake model is asked again:
its request count shows it); and every user's reply is checked for exactness, each delta once.
It does not prove anything about a worker that stalls without dying, or about a model that does
not repeat itself (the fake model does): lesson 11's stage text says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import httpx2

from server.course.launcher import Server, start_app, start_redis
from server.course.stages.nginx_project import start_project_nginx
from server.course.stages.reply_clients import (
    READ_WITHIN,
    User,
    chat,
    learn_replies,
    post,
    problems,
    read_raw,
    reply_id,
)
from server.course.stages.run import Missed, StageRun
from server.course.stages.waits import wait_until, wait_until_async

TITLE = "replies generated into Redis, streamed by any worker, kept when a worker dies"
LESSON = "11_capstone"
DEADLINE = 60.0
NEEDS = ("nginx", "redis")
TOKENS = 40
MODEL = {"FAKE_OPENAI_TTFT": "2", "FAKE_OPENAI_TPS": "20", "FAKE_OPENAI_TOKENS": str(TOKENS)}
PROMPT = "How does a reply survive its worker?"
USERS = 30
KILL_AFTER = 3  # deltas every user has when worker A is killed
FLOOD, MOST = 12, 5  # messages one user sends in a row; how many may be accepted
JSON = {"Content-Type": "application/json"}


def user_prompt(n: int) -> str:
    return f"{PROMPT} (user {n})"


async def model_requests(client: httpx2.AsyncClient, fake: Server, at_least: int = 0) -> int:
    """How many requests the fake model has had, once it has had `at_least` (within 10 s)."""
    counted = [0]

    async def enough() -> bool:
        counted[0] = (await client.get(f"{fake.url}/stats")).json()["requests"]
        return counted[0] >= at_least

    await wait_until_async(enough, within=10)
    return counted[0]


async def start_servers(
    run: StageRun, model: Mapping[str, str] = MODEL
) -> tuple[Server, Server, Server]:
    """Redis, the fake model (paced by `model`), and the learner's app twice (A, B), started
    side by side."""
    redis, fake = await asyncio.gather(
        asyncio.to_thread(start_redis),
        asyncio.to_thread(start_app, "server.apps.fake_openai:app", env=model, name="fake_openai"),
    )
    run.started(redis)
    run.started(fake)
    env = {
        "REDIS_URL": redis.url,
        "OPENAI_BASE_URL": f"{fake.url}/v1",
        "OPENAI_API_KEY": "sk-course",
    }
    a, b = await asyncio.gather(
        *(asyncio.to_thread(run.app, env={**env, "WORKER_NAME": name}) for name in "AB")
    )
    return fake, a, b


async def check(run: StageRun) -> None:
    fake, a, b = await start_servers(run)
    await learn_replies(fake, [PROMPT, *(user_prompt(n) for n in range(USERS))])
    timeout = httpx2.Timeout(10, connect=5)
    limits = httpx2.Limits(max_connections=USERS * 2)
    async with (
        httpx2.AsyncClient(base_url=a.url, timeout=timeout) as on_a,
        httpx2.AsyncClient(base_url=b.url, timeout=timeout) as on_b,
    ):
        with run.step(
            'POST /replies {"message": ...} with an X-User header answers 202 {"id": ...}',
            hint="in mychat/replies.py, `post_reply` stores the prompt and the lease in Redis, "
            'starts `generate(reply, body.message)` with `spawn(...)`, and returns {"id": reply}',
        ):
            reply = reply_id(await post(on_a, "checker", PROMPT))

        with run.step(
            "GET /replies/{id}/events on the other worker streams the model's exact reply: "
            "a delta per event, each id a Redis stream id, then `done`",
            hint="`generate` XADDs each delta to `reply:<id>` with `append`, then a `done` entry; "
            "`follow` XREADs after a cursor and yields encode(Event(data, event, entry_id)), "
            "returning after `done` or `error`",
        ):
            raw, events = await read_raw(on_b, f"/replies/{reply}/events")
            wrong = problems(events, PROMPT)
            if wrong:
                raise Missed(wrong)

        with run.step(
            "while the model is silent (2 s before its first token), `: ping` comments arrive",
            hint="in `follow`, `xread(..., block=1000)` returns nothing after a quiet second: "
            'yield comment("ping") then',
        ):
            before = raw.split(b"\nid:", 1)[0].split(b"\ndata:", 1)[0]
            if not any(line.startswith(b":") for line in before.split(b"\n")):
                raise Missed(f"the stream began {raw[:60]!r}")

        with run.step(
            "a reconnection with Last-Event-ID gets the events after it, from either worker; "
            "a malformed id is a 400, an unknown reply a 404",
            hint="`reply_events` checks Last-Event-ID against STREAM_ID (HTTPException(400)), "
            "404s when `reply:<id>:prompt` is missing, and starts `follow` at that id",
        ):
            middle = len(events) // 2
            resume = {"Last-Event-ID": events[middle].id or ""}
            _, again = await read_raw(on_a, f"/replies/{reply}/events", resume)
            if [e.id for e in again] != [e.id for e in events[middle + 1 :]]:
                raise Missed(
                    f"after id {events[middle].id}: {len(again)} events, from "
                    f"{again[0].id if again else None}, not the {len(events) - middle - 1} after it"
                )
            malformed = await on_b.get(
                f"/replies/{reply}/events", headers={"Last-Event-ID": "1-0abc"}
            )
            unknown = await on_b.get("/replies/0123456789abcdef0123456789abcdef/events")
            if (malformed.status_code, unknown.status_code) != (400, 404):
                raise Missed(
                    f"Last-Event-ID '1-0abc': {malformed.status_code}; "
                    f"an unknown reply: {unknown.status_code}"
                )

        with run.step(
            "a reconnection with the `done` event's own id (a page that forgot to close its "
            "EventSource) is a 204: a finished reply is not held open with pings",
            hint="in `reply_events`, before streaming: XREVRANGE the reply's stream COUNT 1; "
            "if that newest entry has an `event` (done or error) and Last-Event-ID is its id, "
            "return Response(status_code=204), which tells an EventSource to stop",
        ):
            done = {"Last-Event-ID": events[-1].id or ""}
            async with (
                asyncio.timeout(READ_WITHIN),
                on_b.stream("GET", f"/replies/{reply}/events", headers=done) as ended,
            ):
                first = b"" if ended.status_code != 200 else await anext(ended.aiter_bytes(), b"")
            if ended.status_code != 204:
                raise Missed(f"{ended.status_code}, then {first[:40]!r}")

        with run.step(
            "bad messages are refused with a 4xx, never a 500",
            hint="validate the body with the `Message` model (a non-empty `message`, at most "
            "2000 characters) and the user with the `User` header: FastAPI answers 422",
        ):
            named, nobody = {"X-User": "u", **JSON}, JSON
            bad = [
                ("no X-User header", b'{"message": "hi"}', nobody),
                ("an empty message", b'{"message": ""}', named),
                ("a number", b'{"message": 12}', named),
                ("not JSON", b"hi there", named),
                ("10,000 characters", b'{"message": "%s"}' % (b"x" * 10_000), named),
            ]
            got = {
                what: (await on_a.post("/replies", content=body, headers=headers)).status_code
                for what, body, headers in bad
            }
            not_4xx = {what: status for what, status in got.items() if not 400 <= status < 500}
            if not_4xx:
                raise Missed(", ".join(f"{what}: {status}" for what, status in not_4xx.items()))

        with run.step(
            "your nginx (mychat/nginx.conf) streams replies from both workers",
            hint="stage 6's nginx.conf, with a `server {{worker}};` line in the upstream "
            "(`make catch-up STAGE=9` fills it in if you skipped lesson 08)",
        ):
            nginx = await asyncio.to_thread(start_project_nginx, run, [a.port, b.port])
            async with httpx2.AsyncClient(base_url=nginx.url, timeout=timeout) as front:
                _, through = await read_raw(front, f"/replies/{reply}/events")
            if [e.id for e in through] != [e.id for e in events]:
                raise Missed(f"{len(through)} events through nginx, {len(events)} directly")

        async with httpx2.AsyncClient(base_url=nginx.url, timeout=timeout, limits=limits) as front:
            with run.step(
                f"a flood from one user is refused: of {FLOOD} messages in a row, at most {MOST} "
                "accepted (counted in Redis, across both workers), the rest 429 with Retry-After, "
                "and other users are still served",
                hint="count each user's messages in Redis (SET rate:<user> 0 EX WINDOW NX, then "
                "INCR), not in a worker's memory; over RATE, raise HTTPException(429, ..., "
                'headers={"Retry-After": seconds left})',
            ):
                sent = [await post(front, "flooder", f"flood {n}") for n in range(FLOOD)]
                statuses = [response.status_code for response in sent]
                refused = [r for r in sent if r.status_code == 429]
                waits = [r.headers.get("retry-after", "") for r in refused]
                other = await post(front, "someone-else", "hello")
                accepted = statuses.count(202)
                if not (1 <= accepted <= MOST and accepted + len(refused) == FLOOD):
                    raise Missed(f"the statuses were {statuses}")
                if not all(w.isdigit() and int(w) >= 1 for w in waits):
                    raise Missed(f"Retry-After headers: {waits}")
                if other.status_code != 202:
                    raise Missed(f"another user's message after the flood: {other.status_code}")

            with run.step(
                f"{USERS} users at once through nginx, worker A SIGKILLed mid-reply: every "
                "reply ends with `done`, each delta once, exactly the model's text",
                hint="a reply whose worker died must be finished by another: in `follow`, after "
                "a quiet second, take the lease (SET ... NX PX LEASE_MS) and spawn "
                "generate(reply, prompt, skip=XLEN); `generate` appends through `append`, "
                "which renews the lease",
            ):
                asked = await model_requests(
                    front, fake, at_least=2 + accepted
                )  # the first reply, the flood's, the other user's
                users = [User(f"user-{n}", user_prompt(n)) for n in range(USERS)]
                chats = asyncio.gather(*(chat(front, user) for user in users))
                try:
                    ready = await wait_until(
                        lambda: all(u.deltas >= KILL_AFTER for u in users) or chats.done(),
                        within=20,
                    )
                    if chats.done():
                        chats.result()  # a user's Missed, raised before the kill
                    if not ready:
                        slow = sum(u.deltas < KILL_AFTER for u in users)
                        raise Missed(
                            f"{slow} of {USERS} users had under {KILL_AFTER} deltas after 20 s"
                        )
                    await asyncio.to_thread(a.kill)
                    await asyncio.wait_for(asyncio.shield(chats), timeout=25)
                except TimeoutError:
                    stuck = [u for u in users if not u.finished]
                    raise Missed(
                        f"{len(stuck)} of {USERS} replies had not ended 25 s after the kill; "
                        f"{stuck[0].name} got {stuck[0].deltas} deltas and no `done`"
                    ) from None
                finally:
                    chats.cancel()  # nothing left running, and its outcome collected
                    await asyncio.gather(chats, return_exceptions=True)
                for user in users:
                    wrong = problems(user.events, user.prompt)
                    if wrong:
                        raise Missed(f"{user.name} ({user.connections} connections): {wrong}")
                asked = await model_requests(front, fake) - asked
                if asked <= USERS:
                    raise Missed(
                        f"the model was asked {asked} times for {USERS} replies: no reply was "
                        "being generated on A when it died, so nothing was taken over"
                    )
