"""The chat's room on one worker: its settings, a user's message checked, the reply's tokens.

Both transports (`websocket.py`, `stream.py`) publish through a `Room` and read the same
broker, so a room message looks the same whichever way it travels.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from server.fanout import DEFAULT_MAXLEN, DEFAULT_QUEUE_SIZE, Broker, BrokerUnavailable
from server.json_body import BadBody, parse_json
from server.seed_texts import REPLY
from server.settings import number
from server.stream_stats import StreamStats

MAX_TEXT = 65_536  # characters in one user message
MAX_TOKENS = 100_000  # tokens one reply may ask for (a benchmark's long reply)
STATS = StreamStats()  # "ws" and "events": active, finished, cancelled, failed, dropped...


@dataclass(frozen=True)
class Settings:
    broker: str = "memory"
    redis_url: str = "redis://127.0.0.1:6379"
    worker: str = ""
    token_delay: float = 0.05
    heartbeat: float = 15.0
    send_timeout: float = 5.0
    queue_size: int = DEFAULT_QUEUE_SIZE
    maxlen: int = DEFAULT_MAXLEN

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        return cls(
            broker=env.get("BROKER", cls.broker),
            redis_url=env.get("REDIS_URL", cls.redis_url),
            worker=env.get("WORKER_NAME", str(os.getpid())),
            token_delay=number(env, "TOKEN_DELAY", cls.token_delay, low=0, high=10),
            heartbeat=number(env, "HEARTBEAT", cls.heartbeat, low=0.05, high=3600),
            send_timeout=number(env, "SEND_TIMEOUT", cls.send_timeout, low=0.1, high=3600),
            queue_size=number(env, "QUEUE_SIZE", cls.queue_size, low=1),
            maxlen=number(env, "STREAM_MAXLEN", cls.maxlen, low=1),
        )


def user_message(raw: str | bytes) -> tuple[str, int]:
    """(text, tokens) from a user's JSON message; ValueError with the reason if it is wrong."""
    try:
        value = parse_json(raw)
    except BadBody as error:
        raise ValueError(f'{error}; a message is a JSON object, e.g. {{"text": "hi"}}') from None
    text = value.get("text") if isinstance(value, dict) else None
    if not isinstance(text, str) or not 0 < len(text) <= MAX_TEXT:
        raise ValueError(f'a message needs "text": a string of 1 to {MAX_TEXT} characters')
    tokens = value.get("tokens", len(REPLY))
    if not isinstance(tokens, int) or not 0 <= tokens <= MAX_TOKENS:
        raise ValueError(f'"tokens" must be a whole number from 0 to {MAX_TOKENS}')
    return text, tokens


class Room:
    """One worker's side of the chat: publish a user's message, then the reply's tokens."""

    def __init__(self, broker: Broker, settings: Settings) -> None:
        self.broker = broker
        self.settings = settings
        self._numbers = itertools.count(1)
        self._replies: set[asyncio.Task[None]] = set()  # kept, so they are not collected

    async def post(self, text: str, tokens: int) -> str:
        """Publish the user's message (BrokerUnavailable if it could not be) and start the
        reply; return the reply's name."""
        reply = f"{self.settings.worker}-{next(self._numbers)}"
        await self._publish({"type": "user", "reply": reply, "text": text})
        task = asyncio.create_task(self._answer(reply, tokens))
        self._replies.add(task)
        task.add_done_callback(self._replies.discard)
        return reply

    async def _answer(self, reply: str, tokens: int) -> None:
        """The assistant's reply, one token per message, paced like a model."""
        try:
            for n in range(tokens):
                await asyncio.sleep(self.settings.token_delay)  # 0 still lets the sends run
                token = REPLY[n % len(REPLY)]
                await self._publish({"type": "token", "reply": reply, "text": token})
            await self._publish({"type": "done", "reply": reply})
        except BrokerUnavailable:
            STATS.add("replies", "cut")  # Redis went away mid-reply: the room sees no "done"

    async def _publish(self, value: dict[str, Any]) -> None:
        await self.broker.publish(json.dumps(value, ensure_ascii=False, separators=(",", ":")))

    async def stop(self) -> None:
        for task in list(self._replies):
            task.cancel()
        await asyncio.gather(*self._replies, return_exceptions=True)
