"""A reply in Redis: its record, its stream of events, and the lease that says who generates it.

Every change is one Lua script (`server.apps.capstone.scripts`), so each is atomic, and
every write a generator makes is **fenced** by the lease: the script first checks that the
record still names this worker as its owner, and that the reply is still running. A worker
that lost its lease (it stalled, it was presumed dead, the user pressed Stop) cannot write
one more token.

Keys, for reply ``R`` of user ``U`` in conversation ``C`` (all expire; see `Keys`):

- ``cap:gen:R``: hash: user, conv, messages (the JSON sent upstream), seed, owner, status
  (running, done, error, stopped), next (tokens in the stream so far), written (the key of
  the last token written, for a retried write), attempts, created;
- ``cap:gen:R:text``: the text so far (a takeover checks the model repeats it);
- ``cap:reply:R``: the stream the browser reads: ``owner``, then one entry per token,
  then exactly one of ``done``, ``error``, ``stopped``;
- ``cap:leases``: sorted set, reply -> the time (Redis's clock, ms) its lease runs out;
- ``cap:user:U:active``: the replies U has generating (the concurrency limit);
- ``cap:rate:U``: sorted set, U's messages of the last minute -> when each was sent (the rate
  limit: a sliding window, so no burst of twice the limit across a clock minute);
- ``cap:conv:U:C`` and ``cap:conv:U:C:pending``: the history (`server.apps.capstone.history`).

What one user can store is bounded: ``messages`` (up to ``UPSTREAM_HISTORY`` past messages,
~0.4 MB at most) and the text so far are needed only while a takeover may happen, so `END`
deletes them, and only ``MAX_ACTIVE`` replies per user are running at once; what stays for
``REPLY_TTL`` (the stream, a small record, the history lists, each capped) grows with the
messages sent, which ``RATE_PER_MINUTE`` bounds. Redis itself has a ``maxmemory`` with
``noeviction`` (`server.course.capstone_stack`): full, it refuses writes (a 503) and evicts nothing.

In Redis Cluster these keys would need one hash tag per user to share a slot; one Redis (or
ElastiCache with a replica) is what this is written for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from server.apps.capstone import scripts
from server.apps.capstone.lua import run
from server.apps.capstone.scripts import Claimed, Outcome, Started

TERMINAL = ("done", "error", "stopped")
LEASES = "cap:leases"


@dataclass(frozen=True)
class Keys:
    """The Redis keys of one reply (and of its user and conversation)."""

    reply: str
    user: str
    conv: str

    @property
    def gen(self) -> str:
        return f"cap:gen:{self.reply}"

    @property
    def text(self) -> str:
        return f"cap:gen:{self.reply}:text"

    @property
    def stream(self) -> str:
        return f"cap:reply:{self.reply}"

    @property
    def active(self) -> str:
        return f"cap:user:{self.user}:active"

    @property
    def conversation(self) -> str:
        return f"cap:conv:{self.user}:{self.conv}"

    @property
    def pending(self) -> str:
        return f"cap:conv:{self.user}:{self.conv}:pending"


class Replies:
    """The scripts (`server.apps.capstone.scripts`), registered once per worker, called by
    name with Python signatures, their answers parsed."""

    def __init__(self, redis: aioredis.Redis, history_cap: int, ttl: int) -> None:
        self.redis = redis
        self.history_cap, self.ttl = history_cap, ttl
        self._start = redis.register_script(scripts.START)
        self._claim = redis.register_script(scripts.CLAIM)
        self._renew = redis.register_script(scripts.RENEW)
        self._append = redis.register_script(scripts.APPEND)
        self._end = redis.register_script(scripts.END)

    async def record(self, reply: str) -> dict[str, str]:
        """The reply's record (empty if there is none, or it expired)."""
        record = await self.redis.hgetall(f"cap:gen:{reply}")  # text: decode_responses
        return {str(k): str(v) for k, v in record.items()}

    async def start(
        self, keys: Keys, *, messages: list[dict[str, str]], seed: int, owner: str,
        lease: float, max_active: int, rate: int, user_message: str, idem: str | None,
    ) -> Started:  # fmt: skip
        """Admit and record a new reply in one step: ``OK`` (with the reply), ``AGAIN`` (with
        the reply this idempotency key already made), ``RATE`` (with the seconds until the
        oldest message of the last minute is a minute old) or ``BUSY`` (with the replies
        already generating)."""
        inputs = scripts.Start(
            gen=keys.gen, leases=LEASES, active=keys.active, recent=f"cap:rate:{keys.user}",
            conversation=keys.conversation, pending=keys.pending,
            idem=f"cap:idem:{keys.user}:{idem or keys.reply}", stream=keys.stream,
            reply=keys.reply, user=keys.user, conv=keys.conv,
            messages=json.dumps(messages, ensure_ascii=False), seed=seed, owner=owner,
            lease_ms=int(lease * 1000), max_active=max_active, rate=rate, window_s=60,
            user_message=user_message, history_cap=self.history_cap, ttl=self.ttl,
            owner_event=owner_event(owner, 1),
        )  # fmt: skip
        return Started.parse(await run(self._start, inputs))

    async def claim(self, reply: str, owner: str, lease: float, max_attempts: int) -> Claimed:
        """Adopt a reply whose lease ran out: ``OK`` (with the tokens already sent and the
        attempt), or ``HELD`` (someone renewed it), or ``GONE`` (it has ended)."""
        inputs = scripts.Claim(
            gen=f"cap:gen:{reply}", leases=LEASES, stream=f"cap:reply:{reply}", reply=reply,
            owner=owner, lease_ms=int(lease * 1000), max_attempts=max_attempts,
            owner_event=owner_event(owner, 0),
        )  # fmt: skip
        return Claimed.parse(await run(self._claim, inputs))

    async def renew(self, reply: str, owner: str, lease: float) -> Outcome:
        """``OK``, or why this owner must stop: ``LOST``, or the reply's new status."""
        inputs = scripts.Renew(
            gen=f"cap:gen:{reply}", leases=LEASES, reply=reply, owner=owner,
            lease_ms=int(lease * 1000),
        )  # fmt: skip
        return Outcome(await run(self._renew, inputs))

    async def append(self, reply: str, owner: str, index: int, delta: str, write: str) -> Outcome:
        """Add token `index` to the stream: ``OK``, or why not (``LOST``, ``STOPPED``).

        `write` is this write's idempotency key, the same for each retry of it: a retry whose
        first attempt landed but whose answer was lost (Redis cut the connection after
        running the script) is ``OK`` again, not ``OUT_OF_ORDER``, which would stop this
        generation and make another worker adopt the reply and ask the model for it again."""
        inputs = scripts.Append(
            gen=f"cap:gen:{reply}", stream=f"cap:reply:{reply}", text=f"cap:gen:{reply}:text",
            owner=owner, index=index,
            data=json.dumps({"delta": delta, "i": index}, ensure_ascii=False), delta=delta,
            write=write,
        )  # fmt: skip
        return Outcome(await run(self._append, inputs))

    async def end(
        self, keys: Keys, event: str, data: dict[str, Any], *, owner: str = "", user: str = ""
    ) -> Outcome:
        """End the reply with `event` (done, error, stopped) and put its text in the history:
        ``OK``, or why not (``LOST``, ``NOT_FOUND``, or the status it already had)."""
        inputs = scripts.End(
            gen=keys.gen, stream=keys.stream, leases=LEASES, active=keys.active,
            conversation=keys.conversation, pending=keys.pending, text=keys.text,
            owner=owner, user=user, reply=keys.reply, event=event,
            data=json.dumps(data, ensure_ascii=False), history_cap=self.history_cap,
            ttl=self.ttl,
        )  # fmt: skip
        return Outcome(await run(self._end, inputs))

    async def release(self, reply: str, owner: str) -> None:
        """Let the lease run out now (a worker shutting down): another worker adopts the
        reply at its next sweep instead of after the lease."""
        if await self.redis.hget(f"cap:gen:{reply}", "owner") == owner:
            await self.redis.zadd(LEASES, {reply: 0})

    async def keys_of(self, reply: str) -> Keys | None:
        record = await self.redis.hmget(f"cap:gen:{reply}", ["user", "conv"])
        user, conv = record
        return Keys(reply, str(user), str(conv)) if user and conv else None


def owner_event(owner: str, attempt: int) -> str:
    """The ``owner`` entry: which worker generates the reply from here on (0: a takeover)."""
    return json.dumps({"worker": owner, "takeover": attempt == 0})
