"""`StreamFeed`'s phases: each step of the catch-up is done once, and done again if Redis
failed in the middle of it; a move the machine does not have raises.

Redis fails deterministically here: a wrapper around the broker's client raises
`ConnectionError` from the first range read (XRANGE or XREVRANGE), the feed's first step.
Before the phases were explicit, that step was marked done before its answer came: a new
client asking for the last 3 messages got the whole stream, and a client whose
Last-Event-ID had no history after it got no reset.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from server.course.launcher import Server
from server.event_ids import StreamId
from server.fanout import StreamsBroker
from server.fanout.hub import Message
from server.fanout.stream_feed import Phase, StreamFeed


class FirstReadFails:
    """A redis-py client whose first XRANGE or XREVRANGE raises, as a cut connection would."""

    def __init__(self, inner: Any) -> None:
        self._inner, self.failed = inner, False

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name not in ("xrange", "xrevrange") or self.failed:
            return attribute
        self.failed = True

        async def fails(*_args: Any, **_kwargs: Any) -> Any:
            raise RedisConnectionError("cut by the test")

        return fails


async def read(broker: StreamsBroker, feed: StreamFeed, count: int) -> list[Message]:
    """`count` messages from `feed`, read through one failed range read."""
    await broker.start()
    failing = FirstReadFails(broker.redis)
    broker.redis = failing  # type: ignore[assignment]
    got: list[Message] = []
    try:
        async with feed:
            while len(got) < count:
                message = await feed.next(5)
                assert message is not None, f"only {len(got)} of {count} messages came"
                got.append(message)
    finally:
        broker.redis = failing._inner
        await broker.stop()
    assert failing.failed, "the test's cut never happened"
    return got


@pytest.mark.redis
def test_a_failure_while_choosing_where_a_history_begins_still_sends_only_it(
    redis: Server,
) -> None:
    async def scenario() -> tuple[list[str], list[str]]:
        broker = StreamsBroker(redis.url, key="chosen")
        ids = [await broker.publish(json.dumps({"n": n})) for n in range(30)]
        got = await read(broker, broker.subscribe(None, 3), 3)
        return ids, [str(message.id) for message in got]

    ids, got = asyncio.run(scenario())
    assert got == ids[-3:], "the last 3, not the stream from its start"


@pytest.mark.redis
def test_a_failure_while_checking_a_last_event_id_still_sends_the_reset(redis: Server) -> None:
    never_issued = StreamId(99_999_999_999_999, 0)

    async def scenario() -> tuple[list[str], list[Message]]:
        broker = StreamsBroker(redis.url, key="checked")
        ids = [await broker.publish(json.dumps({"n": n})) for n in range(5)]
        return ids, await read(broker, broker.subscribe(never_issued), 2)

    ids, (reset, first) = asyncio.run(scenario())
    assert reset.event == "reset", "the gap said, not skipped in silence"
    assert json.loads(reset.data)["last_event_id"] == str(never_issued)
    assert first.id == ids[0], "then from the oldest entry kept"


def test_each_phase_allows_only_its_moves(redis: Server) -> None:
    async def scenario() -> None:
        broker = StreamsBroker(redis.url, key="phases")
        try:
            fresh, history = broker.subscribe(), broker.subscribe(None, 3)
            back = broker.subscribe(StreamId(1, 0))
            with pytest.raises(RuntimeError, match="new"):
                await fresh.next(0)  # not opened
            for feed, first in ((fresh, Phase.LIVE), (history, Phase.CHOOSING),
                                (back, Phase.CHECKING)):  # fmt: skip
                feed.open()
                assert feed.phase is first
                with pytest.raises(RuntimeError, match="cannot go from"):
                    feed.open()  # it would join the hub twice, and leave once
                feed.close()
                feed.close()  # closing twice does nothing
                assert feed.phase is Phase.CLOSED
                with pytest.raises(RuntimeError, match="closed"):
                    await feed.next(0)
                with pytest.raises(RuntimeError, match="cannot go from"):
                    feed.open()
            assert broker.hub.stats().clients == 0, "every feed left the hub"
        finally:
            await broker.stop()

    asyncio.run(scenario())
