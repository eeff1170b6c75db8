"""One client's feed from a Redis stream: its catch-up first, then the live messages, each once.

The feed is a small state machine, written down as h11 writes HTTP's: a `Phase`, the moves
`MOVES` allows from each, and a `RuntimeError` for any other (reading a feed not opened,
opening one twice). Why each phase exists is `server.fanout.streams`' theory of operation:

    NEW --open--> LIVE          a new client asking for no history
        --open--> CHOOSING      a new client asking for the last K messages: from where?
        --open--> CHECKING      a client back with a Last-Event-ID: is what follows it kept?
    CHOOSING, CHECKING --the answer from Redis--> CATCHING_UP (after a reset notice, maybe)
    CATCHING_UP --the last entry read--> LIVE
    any --close--> CLOSED       (closing again does nothing)

A phase changes only once its step has succeeded: a Redis failure in the middle of one
leaves the feed where it was, and the next `next` tries the step again.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from enum import Enum
from typing import Protocol

from server.event_ids import StreamId
from server.fanout.broker import BrokerUnavailable, OpenedFeed
from server.fanout.hub import Hub, Message, Subscription
from server.redis_client import RECONNECT_EVERY, REDIS_DOWN


class Phase(Enum):
    NEW = "new"  # made, not in the hub yet
    CHOOSING = "choosing"  # where a new client's history begins
    CHECKING = "checking"  # whether the history after the client's Last-Event-ID is kept
    CATCHING_UP = "catching up"  # reading what the client has not seen, from Redis
    LIVE = "live"  # the hub's messages, each once
    CLOSED = "closed"  # out of the hub


MOVES: dict[Phase, frozenset[Phase]] = {
    Phase.NEW: frozenset({Phase.LIVE, Phase.CHOOSING, Phase.CHECKING, Phase.CLOSED}),
    Phase.CHOOSING: frozenset({Phase.CATCHING_UP, Phase.CLOSED}),
    Phase.CHECKING: frozenset({Phase.CATCHING_UP, Phase.CLOSED}),
    Phase.CATCHING_UP: frozenset({Phase.LIVE, Phase.CLOSED}),
    Phase.LIVE: frozenset({Phase.CLOSED}),
    Phase.CLOSED: frozenset(),
}


class History(Protocol):
    """What a feed needs of its broker (`server.fanout.streams.StreamsBroker`)."""

    hub: Hub

    @property
    def following(self) -> bool: ...

    async def before_newest(self, count: int) -> str: ...

    async def kept(self) -> tuple[StreamId, StreamId] | None: ...

    def messages_after(self, last_id: str) -> AsyncIterator[Message]: ...


class StreamFeed(OpenedFeed):
    """One client's messages from a stream: its catch-up first, then the live ones, each once."""

    def __init__(self, broker: History, after: StreamId | None, history: int) -> None:
        self._broker = broker
        self._phase = Phase.NEW
        self._last = after  # the position of the last message this client has (or None)
        self._history = history
        self._start = "0-0"  # where a catch-up with nothing handed out yet begins (exclusive)
        self._reader: AsyncIterator[Message] | None = None  # the catch-up, once started
        self._ahead: Message | None = None  # read from Redis, not yet handed out
        self._subscription: Subscription | None = None

    @property
    def phase(self) -> Phase:
        return self._phase

    def open(self) -> None:
        """Join the hub before reading anything: this is what leaves no gap (see above)."""
        if self._last is not None:
            self._move(Phase.CHECKING)
        else:
            self._move(Phase.CHOOSING if self._history else Phase.LIVE)
        self._subscription = self._broker.hub.join()

    def close(self) -> None:
        if self._phase is Phase.CLOSED:
            return
        self._move(Phase.CLOSED)
        if self._subscription is not None:
            self._broker.hub.leave(self._subscription)

    async def next(self, timeout: float) -> Message | None:
        subscription = self._subscription
        if subscription is None or self._phase is Phase.CLOSED:
            raise RuntimeError(
                f"this feed is {self._phase.value}: read it inside "
                "`async with broker.subscribe() as feed`"
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._ahead is None and self._phase is not Phase.LIVE:
            try:
                await self._step()
            except (*REDIS_DOWN, BrokerUnavailable):  # wait for Redis (heartbeats meanwhile)
                left = deadline - loop.time()
                if left <= 0:
                    return None
                await asyncio.sleep(min(left, RECONNECT_EVERY))
        if self._ahead is not None:
            ahead, self._ahead = self._ahead, None
            return self._hand_out(ahead)
        while True:
            message = await subscription.get(max(0.0, deadline - loop.time()))
            if message is None:
                return None
            position = message.position
            if self._last is None or (position is not None and position > self._last):
                return self._hand_out(message)  # else: already sent during the catch-up

    def _move(self, to: Phase) -> None:
        if to not in MOVES[self._phase]:
            raise RuntimeError(f"a feed cannot go from {self._phase.value} to {to.value}")
        self._phase = to

    def _hand_out(self, message: Message) -> Message:
        if message.id is not None:
            self._last = message.position
        return message

    async def _step(self) -> None:
        """One step of the catch-up: where it begins, or its next message into `_ahead`."""
        broker = self._broker
        if not broker.following:
            raise BrokerUnavailable("the worker is not following the stream yet")
        if self._phase is Phase.CHOOSING:  # a new client: the last `history` messages
            self._start = await broker.before_newest(self._history)
            self._move(Phase.CATCHING_UP)
        elif self._phase is Phase.CHECKING:
            self._check(await broker.kept())
            self._move(Phase.CATCHING_UP)
        else:
            if self._reader is None:  # (again after Redis failed: from the last one handed out)
                after = str(self._last) if self._last is not None else self._start
                self._reader = broker.messages_after(after)
            try:
                self._ahead = await anext(self._reader)
            except StopAsyncIteration:
                self._reader = None
                self._move(Phase.LIVE)
            except REDIS_DOWN:
                self._reader = None
                raise

    def _check(self, kept: tuple[StreamId, StreamId] | None) -> None:
        """If the history `kept` (oldest, newest) cannot continue after the client's last
        id, put the reset notice `_ahead` and catch up from the oldest entry kept."""
        after = self._last
        assert after is not None
        if kept is None:
            reason = "the stream is empty: nothing after your last event id is kept"
        elif after > kept[1]:
            reason = "your last event id was not issued by this stream (its data was lost?)"
        elif after < kept[0]:
            reason = "your last event id is older than the oldest message kept"
        else:
            return
        self._ahead = reset_message(reason, after)
        self._last = None  # from here on, every message kept is new to this client


def reset_message(reason: str, after: StreamId) -> Message:
    """The explicit notice that the history after `after` cannot be replayed."""
    return Message(json.dumps({"reason": reason, "last_event_id": str(after)}), event="reset")
