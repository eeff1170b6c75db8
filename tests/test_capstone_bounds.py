"""Every capstone resource has an end (issue 22): sessions, streams, generations, Redis memory.

- a session cookie is accepted for ``SESSION_MAX_AGE`` after it was made, checked by the
  server (it used to be accepted forever: nothing in it said when it was made);
- a reply stream ends cleanly after ``MAX_STREAM_SECONDS`` and the reader resumes from its
  last id (jupyter-server-proxy never says a tab closed: a stream nobody reads was held for
  as long as the reply lasted), and a generation ends after ``MAX_REPLY_SECONDS``;
- a finished reply keeps neither its copy of the conversation nor its text (~0.4 MB a reply
  kept an hour), and a Redis at its ``maxmemory`` is a 503, not a 500;
- a token write retried after its first answer was lost is done once, not refused as out of
  order (which stopped the generation and had another worker ask the model again).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import httpx2
import pytest
import redis
import redis.asyncio as aioredis

from server.apps.capstone.replies import Replies
from server.apps.capstone.session import COOKIE, new_cookie
from server.clients.chat_reply import new_user, read_reply, resume_to_end
from server.course.capstone_stack import Capstone, start_capstone
from server.course.supervisor import Server

pytestmark = [pytest.mark.nginx, pytest.mark.redis]

MAX_AGE = 60


@pytest.fixture(scope="module")
def stack() -> Iterator[Capstone]:
    slow = {"FAKE_OPENAI_TTFT": "0", "FAKE_OPENAI_TPS": "10", "FAKE_OPENAI_TOKENS": "40"}  # 4 s
    env = {"MAX_STREAM_SECONDS": "1", "MAX_REPLY_SECONDS": "2.5", "SESSION_MAX_AGE": str(MAX_AGE)}
    with start_capstone(workers=1, env=env, fake_env=slow) as running:
        yield running


def test_a_session_older_than_its_max_age_is_refused_and_replaced(stack: Capstone) -> None:
    _user, fresh = new_cookie(stack.secret, now=time.time() - MAX_AGE + 30)
    _user, stale = new_cookie(stack.secret, now=time.time() - MAX_AGE - 30)
    with httpx2.Client(base_url=stack.url, timeout=30) as client:
        accepted = client.get("/api/session", headers={"cookie": f"{COOKIE}={fresh}"})
        old = {"cookie": f"{COOKIE}={stale}"}
        expired = client.post("/api/chat", json={"message": "hi"}, headers=old)
        page = client.get("/", headers=old)
    assert accepted.status_code == 200 and accepted.json()["new"] is False
    assert expired.status_code == 401 and "SESSION_MAX_AGE" in expired.json()["detail"]
    assert f"Max-Age={MAX_AGE}" in page.headers["set-cookie"]


def test_a_stream_ends_at_its_lifetime_and_resumes_and_a_generation_at_its_own(
    stack: Capstone,
) -> None:
    """A 4 s reply, streams of 1 s, generations of 2.5 s: several connections, every token
    once and in order, then the error event that names the limit."""
    with closing(new_user(stack.url)) as client:
        body = client.post("/api/chat", json={"message": "a long answer, please"}).json()
        first = read_reply(client, body["events"])
        assert not first.ended, "the first connection read to the end: no lifetime"
        reply = resume_to_end(client, body["events"], first)
    indices = [token["i"] for token in reply.tokens]
    assert reply.connections >= 2 and indices == list(range(len(indices)))
    last = reply.events[-1]
    assert last.event == "error" and "MAX_REPLY_SECONDS" in json.loads(last.data)["message"]
    assert 0 < len(indices) < 40


def test_a_finished_reply_keeps_no_copy_of_the_conversation(stack: Capstone) -> None:
    store = redis.Redis.from_url(stack.redis.url, decode_responses=True)
    with closing(new_user(stack.url)) as client, store:
        body = client.post("/api/chat", json={"message": "x" * 3000}).json()
        client.post(f"/{body['stop']}")
        record = store.hgetall(f"cap:gen:{body['reply']}")
        text_kept = store.exists(f"cap:gen:{body['reply']}:text")
        history = client.get(f"/api/conversations/{body['conversation']}").json()["messages"]
    assert record["status"] == "stopped" and "messages" not in record and not text_kept
    assert history[0]["content"] == "x" * 3000  # the history keeps it, once


def test_a_full_redis_is_a_503_that_says_so(stack: Capstone) -> None:
    store = redis.Redis.from_url(stack.redis.url, decode_responses=True)
    with closing(new_user(stack.url)) as client, store:
        limit = str(store.config_get("maxmemory")["maxmemory"])
        try:
            store.config_set("maxmemory", "1")  # below what it holds: every write refused
            full = client.post("/api/chat", json={"message": "hi"})
        finally:
            store.config_set("maxmemory", limit)
    assert full.status_code == 503 and full.json()["error"] == "redis_full", full.text
    assert "nothing was stored" in full.json()["detail"]


def test_a_retried_token_write_is_done_once(stack: Capstone) -> None:
    """The write's own key makes its retry an "ok" instead of "out of order"."""
    asyncio.run(retried_write(stack.redis))


async def retried_write(server: Server) -> None:
    store = aioredis.from_url(server.url, decode_responses=True)
    try:
        replies = Replies(store, history_cap=10, ttl=60)
        reply = "f" * 32
        await store.hset(f"cap:gen:{reply}", mapping={"owner": "A", "status": "running",
                                                      "next": 0})  # fmt: skip
        first = await replies.append(reply, "A", 0, "Hello", write="k0")
        again = await replies.append(reply, "A", 0, "Hello", write="k0")  # its answer was lost
        other = await replies.append(reply, "A", 0, "Hello", write="k1")  # a different write
        tokens: Any = await store.xrange(f"cap:reply:{reply}")
    finally:
        await store.aclose()
    assert (first, again, other) == ("ok", "ok", "out of order")
    assert [json.loads(fields["data"])["i"] for _id, fields in tokens] == [0]
