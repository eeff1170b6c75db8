"""A reply in Redis: its record, its stream of events, and the lease that says who generates it.

Every change is one Lua script, so each is atomic, and every write a generator makes is
**fenced** by the lease: the script first checks that the record still names this worker as
its owner, and that the reply is still running. A worker that lost its lease (it stalled, it
was presumed dead, the user pressed Stop) cannot write one more token.

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

TERMINAL = ("done", "error", "stopped")
LEASES = "cap:leases"

_NOW = "local t = redis.call('TIME'); local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"

# KEYS: gen, leases, active, rate, conv, pending, idem, stream
# ARGV: rid, user, conv, messages, seed, owner, lease_ms, max_active, rate, window_s,
#       user_message, history_cap, ttl, owner_event
START = (
    _NOW
    + """
local again = redis.call('GET', KEYS[7])
if again then return {'again', again} end
local window = tonumber(ARGV[10]) * 1000
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - window)
if redis.call('ZCARD', KEYS[4]) >= tonumber(ARGV[9]) then
  local oldest = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
  return {'rate', tostring(math.ceil((tonumber(oldest[2]) + window - now) / 1000))}
end
local active = redis.call('SCARD', KEYS[3])
if active >= tonumber(ARGV[8]) then
  return {'busy', tostring(active)}
end
redis.call('ZADD', KEYS[4], now, ARGV[1])
redis.call('PEXPIRE', KEYS[4], window)
redis.call('HSET', KEYS[1], 'user', ARGV[2], 'conv', ARGV[3], 'messages', ARGV[4],
  'seed', ARGV[5], 'owner', ARGV[6], 'status', 'running', 'next', 0, 'attempts', 1,
  'created', now)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[7]), ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('RPUSH', KEYS[5], ARGV[11])
redis.call('LTRIM', KEYS[5], -tonumber(ARGV[12]), -1)
redis.call('XADD', KEYS[8], '*', 'event', 'owner', 'data', ARGV[14])
for _, key in ipairs({KEYS[1], KEYS[3], KEYS[5], KEYS[8]}) do
  redis.call('EXPIRE', key, ARGV[13])
end
redis.call('SET', KEYS[6], ARGV[1], 'EX', ARGV[13])
redis.call('SET', KEYS[7], ARGV[1], 'EX', ARGV[13])
return {'ok', ARGV[1]}
"""
)

# KEYS: gen, leases, stream; ARGV: rid, owner, lease_ms, max_attempts, owner_event
CLAIM = (
    _NOW
    + """
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return {'gone', '0', '0'}
end
local until_ = redis.call('ZSCORE', KEYS[2], ARGV[1])
if until_ and tonumber(until_) > now then return {'held', '0', '0'} end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'owner', ARGV[2])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
if attempts <= tonumber(ARGV[4]) then
  redis.call('XADD', KEYS[3], '*', 'event', 'owner', 'data', ARGV[5])
end
return {'ok', redis.call('HGET', KEYS[1], 'next'), tostring(attempts)}
"""
)

# KEYS: gen, leases; ARGV: rid, owner, lease_ms
RENEW = (
    _NOW
    + """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[2] then return 'lost' end
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'running' then return status end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
return 'ok'
"""
)

# KEYS: gen, stream, text; ARGV: owner, index, data, delta, write (the write's own key)
APPEND = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 'lost' end
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'running' then return status end
if redis.call('HGET', KEYS[1], 'written') == ARGV[5] then return 'ok' end
if tonumber(redis.call('HGET', KEYS[1], 'next')) ~= tonumber(ARGV[2]) then return 'out of order' end
redis.call('XADD', KEYS[2], '*', 'data', ARGV[3])
redis.call('HSET', KEYS[1], 'next', tonumber(ARGV[2]) + 1, 'written', ARGV[5])
redis.call('APPEND', KEYS[3], ARGV[4])
return 'ok'
"""

# KEYS: gen, stream, leases, active, conv, pending, text
# ARGV: owner ('' = any), user ('' = any), rid, event, data, history_cap, ttl
END = """
if not redis.call('HGET', KEYS[1], 'status') then return 'not found' end
if ARGV[2] ~= '' and redis.call('HGET', KEYS[1], 'user') ~= ARGV[2] then return 'not found' end
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 'lost' end
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'running' then return status end
redis.call('HSET', KEYS[1], 'status', ARGV[4])
redis.call('XADD', KEYS[2], '*', 'event', ARGV[4], 'data', ARGV[5])
redis.call('ZREM', KEYS[3], ARGV[3])
redis.call('SREM', KEYS[4], ARGV[3])
local text = redis.call('GET', KEYS[7]) or ''
redis.call('RPUSH', KEYS[5], cjson.encode({role='assistant', content=text, reply=ARGV[3],
  status=ARGV[4]}))
redis.call('LTRIM', KEYS[5], -tonumber(ARGV[6]), -1)
if redis.call('GET', KEYS[6]) == ARGV[3] then redis.call('DEL', KEYS[6]) end
redis.call('HDEL', KEYS[1], 'messages')
redis.call('DEL', KEYS[7])
for _, key in ipairs({KEYS[1], KEYS[2]}) do redis.call('EXPIRE', key, ARGV[7]) end
return 'ok'
"""


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
    """The scripts above, registered once per worker, with Python signatures."""

    def __init__(self, redis: aioredis.Redis, history_cap: int, ttl: int) -> None:
        self.redis = redis
        self.history_cap, self.ttl = history_cap, ttl
        self._start = redis.register_script(START)
        self._claim = redis.register_script(CLAIM)
        self._renew = redis.register_script(RENEW)
        self._append = redis.register_script(APPEND)
        self._end = redis.register_script(END)

    async def record(self, reply: str) -> dict[str, str]:
        """The reply's record (empty if there is none, or it expired)."""
        record = await self.redis.hgetall(f"cap:gen:{reply}")  # text: decode_responses
        return {str(k): str(v) for k, v in record.items()}

    async def start(
        self, keys: Keys, *, messages: list[dict[str, str]], seed: int, owner: str,
        lease: float, max_active: int, rate: int, user_message: str, idem: str | None,
    ) -> tuple[str, str]:  # fmt: skip
        """Admit and record a new reply in one step: ``("ok", reply)``, ``("again", the reply
        this idempotency key already made)``, ``("rate", seconds until the oldest message of
        the last minute is a minute old)`` or ``("busy", replies already generating)``."""
        idem_key = f"cap:idem:{keys.user}:{idem or keys.reply}"
        rate_key = f"cap:rate:{keys.user}"
        result: list[Any] = await self._start(
            keys=[keys.gen, LEASES, keys.active, rate_key, keys.conversation, keys.pending,
                  idem_key, keys.stream],
            args=[keys.reply, keys.user, keys.conv, json.dumps(messages, ensure_ascii=False),
                  seed, owner, int(lease * 1000), max_active, rate, 60, user_message,
                  self.history_cap, self.ttl, owner_event(owner, 1)],
        )  # fmt: skip
        return str(result[0]), str(result[1])

    async def claim(
        self, reply: str, owner: str, lease: float, max_attempts: int
    ) -> tuple[str, int, int]:
        """Adopt a reply whose lease ran out: ``("ok", tokens already sent, attempt)``, or
        ``("held", ...)`` (someone renewed it), or ``("gone", ...)`` (it has ended)."""
        stream = f"cap:reply:{reply}"
        attempt_event = owner_event(owner, 0)
        result: list[Any] = await self._claim(
            keys=[f"cap:gen:{reply}", LEASES, stream],
            args=[reply, owner, int(lease * 1000), max_attempts, attempt_event],
        )
        return str(result[0]), int(result[1]), int(result[2])

    async def renew(self, reply: str, owner: str, lease: float) -> str:
        """``"ok"``, or why this owner must stop: ``"lost"``, or the reply's new status."""
        return str(
            await self._renew(
                keys=[f"cap:gen:{reply}", LEASES], args=[reply, owner, int(lease * 1000)]
            )
        )

    async def append(self, reply: str, owner: str, index: int, delta: str, write: str) -> str:
        """Add token `index` to the stream: ``"ok"``, or why not (``"lost"``, ``"stopped"``).

        `write` is this write's idempotency key, the same for each retry of it: a retry whose
        first attempt landed but whose answer was lost (Redis cut the connection after
        running the script) is ``"ok"`` again, not ``"out of order"``, which would stop this
        generation and make another worker adopt the reply and ask the model for it again."""
        data = json.dumps({"delta": delta, "i": index}, ensure_ascii=False)
        return str(
            await self._append(
                keys=[f"cap:gen:{reply}", f"cap:reply:{reply}", f"cap:gen:{reply}:text"],
                args=[owner, index, data, delta, write],
            )
        )

    async def end(
        self, keys: Keys, event: str, data: dict[str, Any], *, owner: str = "", user: str = ""
    ) -> str:
        """End the reply with `event` (done, error, stopped) and put its text in the history:
        ``"ok"``, or why not (``"lost"``, ``"not found"``, or the status it already had)."""
        outcome = await self._end(
            keys=[keys.gen, keys.stream, LEASES, keys.active, keys.conversation,
                  keys.pending, keys.text],
            args=[owner, user, keys.reply, event, json.dumps(data, ensure_ascii=False),
                  self.history_cap, self.ttl],
        )  # fmt: skip
        return str(outcome)

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
