"""How the course reaches Redis: a client that fails fast, and what "Redis is down" looks like.

Shared by the brokers (`server.fanout`) and the capstone, which keeps its replies in Redis but
uses no broker. A publish that hangs for redis-py's default retries would answer its 503 five
seconds late; these settings make it answer in one round of a reconnect.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

# What "Redis is not there" looks like from redis-py: refused, reset, or no answer in time.
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)
# While Redis is away, followers and catch-ups try again this often (at most).
RECONNECT_EVERY = 0.5
# Seconds one command (a publish, a catch-up page) may wait for Redis's answer. A Redis that is
# hung (SIGSTOP, a stuck disk) rather than down accepts the connection and never answers:
# without this bound a publish waited for the socket timeout, twice, before its 503.
COMMAND_TIMEOUT = 2.0
# Seconds the follower's blocking read may wait for an answer: above its BLOCK (streams: 2 s),
# so a hung Redis is noticed (the worker says unhealthy) within seconds, not redis-py's 10 x 2.
FOLLOW_TIMEOUT = 5.0


def connect(url: str, **options: Any) -> aioredis.Redis:
    """A redis-py asyncio client for `url` that fails fast when Redis is down.

    redis-py retries a failed command 10 times by default, with backoff, for about 5 s: a
    publish would hang that long before its 503. One retry is kept: after Redis restarts,
    every pooled connection is dead, and the first command on each must reconnect once.
    """
    settings: dict[str, Any] = {
        "decode_responses": True,
        "retry": Retry(ExponentialBackoff(cap=0.05, base=0.01), retries=1),
        "socket_connect_timeout": 2,
        "socket_timeout": 10,  # above every XREAD BLOCK of the course
        **options,
    }
    return aioredis.Redis.from_url(url, **settings)
