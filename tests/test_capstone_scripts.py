"""The capstone's Lua scripts, called through `Replies`: each named argument lands where the
script reads it, and each answer comes back parsed.

Against a real Redis and without the stack: a wrong index on either side (an argument the
script reads as another, a reply field parsed from the wrong slot) shows here as a value in
the wrong place, not as a reply that streams a little oddly three layers up.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import redis.asyncio as aioredis

from server.apps.capstone import lua, scripts
from server.apps.capstone.replies import LEASES, Keys, Replies
from server.apps.capstone.scripts import (
    Claimed,
    ClaimOutcome,
    Outcome,
    Started,
    StartOutcome,
)
from server.course.supervisor import Server

pytestmark = pytest.mark.redis

HISTORY_CAP, TTL = 7, 600
USER, CONV = "u" * 32, "c" * 32


def run(server: Server, check: Callable[[Replies, aioredis.Redis], Awaitable[None]]) -> None:
    async def main() -> None:
        store = aioredis.from_url(server.url, decode_responses=True)
        try:
            await check(Replies(store, history_cap=HISTORY_CAP, ttl=TTL), store)
        finally:
            await store.aclose()

    asyncio.run(main())


async def start(replies: Replies, reply: str, **changes: Any) -> Started:
    arguments: dict[str, Any] = {
        "messages": [{"role": "user", "content": "héllo"}],
        "seed": 1234,
        "owner": "A",
        "lease": 2.5,
        "max_active": 2,
        "rate": 3,
        "user_message": json.dumps({"role": "user", "content": "héllo"}),
        "idem": None,
    }
    return await replies.start(Keys(reply, USER, CONV), **(arguments | changes))


async def now_ms(store: aioredis.Redis) -> int:
    seconds, micros = await store.time()
    return int(seconds) * 1000 + int(micros) // 1000


def test_start_puts_each_argument_where_it_belongs(redis: Server) -> None:
    async def check(replies: Replies, store: aioredis.Redis) -> None:
        keys = Keys("r" * 32, USER, CONV)
        before = await now_ms(store)
        outcome = await start(replies, keys.reply, idem="k" * 32)
        record = await store.hgetall(keys.gen)
        stream: Any = await store.xrange(keys.stream)
        lease = await store.zscore(LEASES, keys.reply)
        assert outcome == Started(StartOutcome.OK, reply=keys.reply)
        assert {k: v for k, v in record.items() if k != "created"} == {
            "user": USER, "conv": CONV, "seed": "1234", "owner": "A", "status": "running",
            "next": "0", "attempts": "1",
            "messages": json.dumps([{"role": "user", "content": "héllo"}], ensure_ascii=False),
        }  # fmt: skip
        assert before <= int(record["created"]) <= await now_ms(store)
        assert [fields for _id, fields in stream] == [
            {"event": "owner", "data": json.dumps({"worker": "A", "takeover": False})}
        ]
        assert lease is not None and lease == int(record["created"]) + 2500
        assert await store.smembers(keys.active) == {keys.reply}
        assert await store.zrange(f"cap:rate:{USER}", 0, -1) == [keys.reply]
        assert 59_000 < await store.pttl(f"cap:rate:{USER}") <= 60_000  # the 60 s window
        assert await store.lrange(keys.conversation, 0, -1) == [
            json.dumps({"role": "user", "content": "héllo"})
        ]
        assert await store.get(keys.pending) == keys.reply
        assert await store.get(f"cap:idem:{USER}:{'k' * 32}") == keys.reply
        for key in (keys.gen, keys.active, keys.conversation, keys.stream, keys.pending):
            assert 0 < await store.ttl(key) <= TTL, key

    run(redis, check)


def test_start_refuses_and_answers_why(redis: Server) -> None:
    async def check(replies: Replies, store: aioredis.Redis) -> None:
        first = await start(replies, "1" * 32, idem="k" * 32)
        again = await start(replies, "2" * 32, idem="k" * 32)
        second = await start(replies, "3" * 32)
        busy = await start(replies, "4" * 32)  # max_active=2 generating already
        wider = await start(replies, "5" * 32, max_active=5)
        rate = await start(replies, "6" * 32, max_active=5)  # 3 a minute sent already
        assert first == Started(StartOutcome.OK, reply="1" * 32)
        assert again == Started(StartOutcome.AGAIN, reply="1" * 32)  # what this key made
        assert second == Started(StartOutcome.OK, reply="3" * 32)
        assert busy == Started(StartOutcome.BUSY, active=2)
        assert wider == Started(StartOutcome.OK, reply="5" * 32)
        assert rate.outcome == StartOutcome.RATE and 59 <= rate.retry_after <= 60
        assert not await store.exists("cap:gen:" + "2" * 32, "cap:gen:" + "4" * 32)

    run(redis, check)


def test_a_lease_is_claimed_renewed_and_fenced(redis: Server) -> None:
    async def check(replies: Replies, store: aioredis.Redis) -> None:
        keys = Keys("r" * 32, USER, CONV)
        await start(replies, keys.reply)
        held = await replies.claim(keys.reply, "B", 2.0, max_attempts=3)  # A's lease runs
        assert await replies.append(keys.reply, "A", 0, "Hel", write="w0") == "ok"
        await store.zadd(LEASES, {keys.reply: 0})  # A stalled: its lease ran out
        claimed = await replies.claim(keys.reply, "B", 2.0, max_attempts=3)
        lease = await store.zscore(LEASES, keys.reply)
        stream: Any = await store.xrange(keys.stream)
        assert held == Claimed(ClaimOutcome.HELD, 0, 0)
        assert claimed == Claimed(ClaimOutcome.OK, start=1, attempt=2)  # 1 token in; try 2
        assert lease is not None and lease > await now_ms(store) + 1000
        assert await store.hget(keys.gen, "owner") == "B"
        assert stream[-1][1] == {
            "event": "owner",
            "data": json.dumps({"worker": "B", "takeover": True}),
        }
        assert await replies.renew(keys.reply, "A", 2.0) is Outcome.LOST
        assert await replies.renew(keys.reply, "B", 2.0) is Outcome.OK
        assert await replies.append(keys.reply, "A", 1, "lo", write="w1") == "lost"
        assert await replies.append(keys.reply, "B", 2, "lo", write="w1") == "out of order"
        assert await replies.append(keys.reply, "B", 1, "lo", write="w1") == "ok"
        assert await store.get(keys.text) == "Hello"
        entries: Any = await store.xrange(keys.stream)
        tokens = [json.loads(fields["data"]) for _id, fields in entries if "event" not in fields]
        assert tokens == [{"delta": "Hel", "i": 0}, {"delta": "lo", "i": 1}]

    run(redis, check)


def test_end_fences_by_owner_and_user_and_keeps_the_text(redis: Server) -> None:
    async def check(replies: Replies, store: aioredis.Redis) -> None:
        keys = Keys("r" * 32, USER, CONV)
        await start(replies, keys.reply)
        await replies.append(keys.reply, "A", 0, "Hi", write="w0")
        someone = await replies.end(keys, "stopped", {}, user="v" * 32)
        lost = await replies.end(keys, "done", {}, owner="B")
        done = await replies.end(keys, "done", {"tokens": 1}, owner="A")
        twice = await replies.end(keys, "stopped", {"message": "Stopped."}, user=USER)
        assert (someone, lost, done, twice) == ("not found", "lost", "ok", "done")
        assert (someone, lost, done, twice) == (
            Outcome.NOT_FOUND, Outcome.LOST, Outcome.OK, Outcome.DONE
        )  # fmt: skip
        assert await replies.renew(keys.reply, "A", 2.0) == "done"
        assert await replies.append(keys.reply, "A", 1, "!", write="w1") == "done"
        entries: Any = await store.xrange(keys.stream)
        last = entries[-1]
        assert last[1] == {"event": "done", "data": json.dumps({"tokens": 1})}
        [kept] = await store.lrange(keys.conversation, -1, -1)
        assert json.loads(kept) == {
            "role": "assistant",
            "content": "Hi",
            "reply": keys.reply,
            "status": "done",
        }
        assert await store.zscore(LEASES, keys.reply) is None
        assert await store.smembers(keys.active) == set()
        assert not await store.exists(keys.pending, keys.text)
        assert await store.hget(keys.gen, "messages") is None
        assert await replies.claim(keys.reply, "B", 2.0, max_attempts=3) == Claimed(
            ClaimOutcome.GONE, 0, 0
        )
        nothing = Keys("n" * 32, USER, CONV)
        assert await replies.end(nothing, "stopped", {}, user=USER) == "not found"

    run(redis, check)


def test_the_history_keeps_its_cap(redis: Server) -> None:
    async def check(replies: Replies, store: aioredis.Redis) -> None:
        for n in range(HISTORY_CAP + 2):
            keys = Keys(f"{n:032d}", USER, CONV)
            await start(replies, keys.reply, max_active=99, rate=99)
            await replies.end(keys, "done", {}, owner="A")
        assert await store.llen(Keys("", USER, CONV).conversation) == HISTORY_CAP

    run(redis, check)


@dataclass(frozen=True, kw_only=True)
class Toy:
    first: str = lua.key()
    second: str = lua.key()
    owner: str
    index: int


def test_the_script_names_its_keys_and_args_in_the_order_declared() -> None:
    assert lua.script(Toy, "\nreturn owner\n") == (
        "local first, second = KEYS[1], KEYS[2]\n"
        "local owner, index = ARGV[1], ARGV[2]\n"
        "return owner\n"
    )


SCRIPTS = {
    "START": (scripts.Start, scripts.START),
    "CLAIM": (scripts.Claim, scripts.CLAIM),
    "RENEW": (scripts.Renew, scripts.RENEW),
    "APPEND": (scripts.Append, scripts.APPEND),
    "END": (scripts.End, scripts.END),
}


@pytest.mark.parametrize("name", SCRIPTS)
def test_each_script_reads_every_input_by_name_and_no_slot_by_number(name: str) -> None:
    inputs, text = SCRIPTS[name]
    keys, args = lua.names(inputs)
    body = text.split("\n", 2)[2]
    used = set(re.findall(r"[A-Za-z_]\w*", re.sub(r"'[^']*'", "", body)))
    assert not re.search(r"KEYS\[|ARGV\[", body), "a slot read by number"
    assert not set(keys + args) - used, "an input the script never reads"
    redeclared = set(re.findall(r"local (\w+)", body)) & set(keys + args)
    assert not redeclared, "a local hides an input"


def test_an_answer_no_script_gives_is_an_error() -> None:
    with pytest.raises(ValueError):
        Outcome("okay")
    with pytest.raises(ValueError):
        Started.parse(["fine", "1"])
    with pytest.raises(ValueError):
        Claimed.parse(["ok", "one", "2"])
