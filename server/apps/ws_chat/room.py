"""The chat's room on one worker: its settings, a user's message checked, the reply's tokens.

Both transports (`websocket.py`, `stream.py`) publish through a `Room` and read the same
broker, so a room message looks the same whichever way it travels. What one client can make
the worker do is bounded: a reply has at most `MAX_TOKENS` tokens (100 s at the default pace),
a message at most `MAX_TEXT` characters, and each client (by address, as uvicorn sees it:
behind a proxy, run uvicorn with `--proxy-headers`) at most `MESSAGE_RATE` messages in any 60 s,
over either transport; the next is refused (`TooManyMessages`: a 429 with `Retry-After`, or a
1008 close) until the oldest of them is a minute old.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import os
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from server.asgi.json_body import BadBody, parse_json
from server.fanout import Broker, BrokerUnavailable
from server.fanout.serving import RoomSettings, room_fields
from server.seed_texts import REPLY
from server.settings import number
from server.stream_stats import StreamStats

MAX_TEXT = 65_536  # characters in one user message
MAX_MESSAGE_BYTES = 4 * MAX_TEXT + 1024  # its JSON: the longest text, 4 bytes a character, the rest
MAX_TOKENS = 2000  # tokens one reply may ask for (lesson 10's bench asks this many)
WINDOW = 60.0  # seconds over which MESSAGE_RATE counts a client's messages
STATS = StreamStats()  # "ws" and "events": active, finished, cancelled, failed, dropped...


@dataclass(frozen=True)
class Settings(RoomSettings):
    """The room's settings (`RoomSettings`), and the chat's own: `TOKEN_DELAY` (0.05 s between
    tokens; 0 for a benchmark), `MESSAGE_RATE` (120 messages a client may send in any 60 s)."""

    token_delay: float = 0.05
    message_rate: int = 120

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        return cls(
            **room_fields(env, retry_ms=None),
            token_delay=number(env, "TOKEN_DELAY", cls.token_delay, low=0, high=10),
            message_rate=number(env, "MESSAGE_RATE", cls.message_rate, low=1, high=100_000),
        )


class BadMessage(ValueError):
    """A user's message the room refuses, with what is wrong and how to send it right."""


class TooManyMessages(Exception):
    """A client over `MESSAGE_RATE`: `retry_after` seconds until it may send again."""

    def __init__(self, rate: int, retry_after: int) -> None:
        super().__init__(
            f"more than MESSAGE_RATE ({rate}) messages in {WINDOW:g} s from this client: "
            f"try again in {retry_after} s"
        )
        self.headers = {"Retry-After": str(retry_after)}


def user_message(raw: str | bytes) -> tuple[str, int]:
    """(text, tokens) from a user's JSON message; `BadMessage` with the reason if it is wrong."""
    if len(raw) > MAX_MESSAGE_BYTES:  # a str's characters are at most its UTF-8 bytes
        raise BadMessage(f"a message is at most {MAX_MESSAGE_BYTES} bytes of JSON")
    try:
        value = parse_json(raw)
    except BadBody as error:
        raise BadMessage(f'{error}; a message is a JSON object, e.g. {{"text": "hi"}}') from None
    text = value.get("text") if isinstance(value, dict) else None
    if not isinstance(text, str) or not 0 < len(text) <= MAX_TEXT:
        raise BadMessage(f'a message needs "text": a string of 1 to {MAX_TEXT} characters')
    tokens = value.get("tokens", len(REPLY))
    if not isinstance(tokens, int) or isinstance(tokens, bool) or not 0 <= tokens <= MAX_TOKENS:
        raise BadMessage(f'"tokens" must be a whole number from 0 to {MAX_TOKENS} (MAX_TOKENS)')
    return text, tokens


class MessageRate:
    """At most `rate` messages per client in any `WINDOW` seconds: a sliding window (a fixed
    one lets twice the rate through across its boundary)."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._sent: dict[str, deque[float]] = {}

    def take(self, client: str) -> None:
        """Count one message of `client`'s now, or raise `TooManyMessages`."""
        now = time.monotonic()
        if len(self._sent) > 10_000:  # forget clients quiet for a window: memory stays bounded
            self._sent = {k: v for k, v in self._sent.items() if v and v[-1] > now - WINDOW}
        sent = self._sent.setdefault(client, deque())
        while sent and sent[0] <= now - WINDOW:
            sent.popleft()
        if len(sent) >= self.rate:
            raise TooManyMessages(self.rate, max(1, math.ceil(sent[0] + WINDOW - now)))
        sent.append(now)


class Room:
    """One worker's side of the chat: publish a user's message, then the reply's tokens."""

    def __init__(self, broker: Broker, settings: Settings) -> None:
        self.broker = broker
        self.settings = settings
        self.rate = MessageRate(settings.message_rate)
        self._numbers = itertools.count(1)
        self._replies: set[asyncio.Task[None]] = set()  # kept, so they are not collected

    async def post(self, text: str, tokens: int, client: str = "") -> str:
        """Publish the user's message (`TooManyMessages` if `client` is over its rate,
        `BrokerUnavailable` if it could not be published) and start the reply; its name."""
        self.rate.take(client)
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
