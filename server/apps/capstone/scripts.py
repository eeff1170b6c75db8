"""The five Lua scripts that change a reply in Redis, each with its named inputs and answers.

Each script is one atomic step (`server.apps.capstone.replies` says why, and what each key
holds). Its inputs are a dataclass (`server.apps.capstone.lua`): the script reads them by
name, and `Replies` fills them in by name. Its answer is the Lua's string, parsed once into
an enum (`StartOutcome`, `ClaimOutcome`, `Outcome`), so a string no script returns is an
error where it is read, not a branch that never matches.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Self

from server.apps.capstone.lua import key, script

_NOW = "local t = redis.call('TIME'); local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
# The fence of every write by a generation's owner: still the owner, and the reply still running.
_FENCE = (
    "if redis.call('HGET', gen, 'owner') ~= owner then return 'lost' end\n"
    "local status = redis.call('HGET', gen, 'status')\n"
    "if status ~= 'running' then return status end\n"
)


@dataclass(frozen=True, kw_only=True)
class Start:
    """Admit a user's message (rate, replies generating) and record its reply."""

    gen: str = key()
    leases: str = key()
    active: str = key()
    recent: str = key()  # the user's messages of the last window, by time sent
    conversation: str = key()
    pending: str = key()
    idem: str = key()
    stream: str = key()
    reply: str
    user: str
    conv: str
    messages: str  # JSON: what is sent upstream, again by a takeover
    seed: int
    owner: str
    lease_ms: int
    max_active: int
    rate: int  # messages per window
    window_s: int
    user_message: str  # JSON: the history's entry
    history_cap: int
    ttl: int
    owner_event: str


START = script(
    Start,
    _NOW
    + """
local again = redis.call('GET', idem)
if again then return {'again', again} end
local window = tonumber(window_s) * 1000
redis.call('ZREMRANGEBYSCORE', recent, '-inf', now - window)
if redis.call('ZCARD', recent) >= tonumber(rate) then
  local oldest = redis.call('ZRANGE', recent, 0, 0, 'WITHSCORES')
  return {'rate', tostring(math.ceil((tonumber(oldest[2]) + window - now) / 1000))}
end
local generating = redis.call('SCARD', active)
if generating >= tonumber(max_active) then
  return {'busy', tostring(generating)}
end
redis.call('ZADD', recent, now, reply)
redis.call('PEXPIRE', recent, window)
redis.call('HSET', gen, 'user', user, 'conv', conv, 'messages', messages,
  'seed', seed, 'owner', owner, 'status', 'running', 'next', 0, 'attempts', 1,
  'created', now)
redis.call('ZADD', leases, now + tonumber(lease_ms), reply)
redis.call('SADD', active, reply)
redis.call('RPUSH', conversation, user_message)
redis.call('LTRIM', conversation, -tonumber(history_cap), -1)
redis.call('XADD', stream, '*', 'event', 'owner', 'data', owner_event)
for _, each in ipairs({gen, active, conversation, stream}) do
  redis.call('EXPIRE', each, ttl)
end
redis.call('SET', pending, reply, 'EX', ttl)
redis.call('SET', idem, reply, 'EX', ttl)
return {'ok', reply}
""",
)


@dataclass(frozen=True, kw_only=True)
class Claim:
    """Adopt a running reply whose lease ran out."""

    gen: str = key()
    leases: str = key()
    stream: str = key()
    reply: str
    owner: str
    lease_ms: int
    max_attempts: int
    owner_event: str


CLAIM = script(
    Claim,
    _NOW
    + """
if redis.call('HGET', gen, 'status') ~= 'running' then
  redis.call('ZREM', leases, reply)
  return {'gone', '0', '0'}
end
local until_ = redis.call('ZSCORE', leases, reply)
if until_ and tonumber(until_) > now then return {'held', '0', '0'} end
local attempts = redis.call('HINCRBY', gen, 'attempts', 1)
redis.call('HSET', gen, 'owner', owner)
redis.call('ZADD', leases, now + tonumber(lease_ms), reply)
if attempts <= tonumber(max_attempts) then
  redis.call('XADD', stream, '*', 'event', 'owner', 'data', owner_event)
end
return {'ok', redis.call('HGET', gen, 'next'), tostring(attempts)}
""",
)


@dataclass(frozen=True, kw_only=True)
class Renew:
    """Extend this owner's lease while the reply runs."""

    gen: str = key()
    leases: str = key()
    reply: str
    owner: str
    lease_ms: int


RENEW = script(
    Renew,
    _NOW
    + _FENCE
    + """redis.call('ZADD', leases, now + tonumber(lease_ms), reply)
return 'ok'
""",
)


@dataclass(frozen=True, kw_only=True)
class Append:
    """Write token `index`, fenced by the lease; `write` makes a retried write a no-op."""

    gen: str = key()
    stream: str = key()
    text: str = key()
    owner: str
    index: int
    data: str  # the stream entry's JSON
    delta: str
    write: str


APPEND = script(
    Append,
    _FENCE
    + """if redis.call('HGET', gen, 'written') == write then return 'ok' end
if tonumber(redis.call('HGET', gen, 'next')) ~= tonumber(index) then return 'out of order' end
redis.call('XADD', stream, '*', 'data', data)
redis.call('HSET', gen, 'next', tonumber(index) + 1, 'written', write)
redis.call('APPEND', text, delta)
return 'ok'
""",
)


@dataclass(frozen=True, kw_only=True)
class End:
    """End a running reply with `event`, and put its text in the conversation's history."""

    gen: str = key()
    stream: str = key()
    leases: str = key()
    active: str = key()
    conversation: str = key()
    pending: str = key()
    text: str = key()
    owner: str  # '' = any
    user: str  # '' = any
    reply: str
    event: str
    data: str
    history_cap: int
    ttl: int


END = script(
    End,
    """
if not redis.call('HGET', gen, 'status') then return 'not found' end
if user ~= '' and redis.call('HGET', gen, 'user') ~= user then return 'not found' end
if owner ~= '' and redis.call('HGET', gen, 'owner') ~= owner then return 'lost' end
local status = redis.call('HGET', gen, 'status')
if status ~= 'running' then return status end
redis.call('HSET', gen, 'status', event)
redis.call('XADD', stream, '*', 'event', event, 'data', data)
redis.call('ZREM', leases, reply)
redis.call('SREM', active, reply)
local said = redis.call('GET', text) or ''
redis.call('RPUSH', conversation, cjson.encode({role='assistant', content=said, reply=reply,
  status=event}))
redis.call('LTRIM', conversation, -tonumber(history_cap), -1)
if redis.call('GET', pending) == reply then redis.call('DEL', pending) end
redis.call('HDEL', gen, 'messages')
redis.call('DEL', text)
for _, each in ipairs({gen, stream}) do redis.call('EXPIRE', each, ttl) end
return 'ok'
""",
)


class StartOutcome(StrEnum):
    OK = "ok"
    AGAIN = "again"  # this idempotency key already made a reply
    RATE = "rate"  # over `rate` messages in the window
    BUSY = "busy"  # `max_active` replies generating already


@dataclass(frozen=True)
class Started:
    """START's answer, parsed."""

    outcome: StartOutcome
    reply: str = ""  # OK: the new reply; AGAIN: the one this idempotency key made
    retry_after: int = 0  # RATE: seconds until the oldest message of the window leaves it
    active: int = 0  # BUSY: the replies the user has generating

    @classmethod
    def parse(cls, answer: list[Any]) -> Self:
        outcome, value = StartOutcome(str(answer[0])), str(answer[1])
        if outcome == StartOutcome.RATE:
            return cls(outcome, retry_after=int(value))
        if outcome == StartOutcome.BUSY:
            return cls(outcome, active=int(value))
        return cls(outcome, reply=value)


class ClaimOutcome(StrEnum):
    OK = "ok"
    HELD = "held"  # its owner renewed the lease meanwhile
    GONE = "gone"  # the reply has ended


@dataclass(frozen=True)
class Claimed:
    """CLAIM's answer, parsed."""

    outcome: ClaimOutcome
    start: int  # OK: the tokens already in the stream (the takeover skips them)
    attempt: int  # OK: which attempt at generating the reply this one is

    @classmethod
    def parse(cls, answer: list[Any]) -> Self:
        return cls(ClaimOutcome(str(answer[0])), int(answer[1]), int(answer[2]))


class Outcome(StrEnum):
    """RENEW's, APPEND's and END's answer: ``ok``, or why not."""

    OK = "ok"
    LOST = "lost"  # another worker owns the reply now
    OUT_OF_ORDER = "out of order"  # APPEND: not the next index
    NOT_FOUND = "not found"  # END: no such reply (or not this user's)
    DONE = "done"  # it had ended already, so
    ERROR = "error"
    STOPPED = "stopped"
