"""The hub's hot path (issue 25): what each message costs per client, kept to the minimum.

`bench/bench_capacity.py` measures the speed; these check that the cheaper code keeps the
behaviour: a message's position is parsed once, a subscription is a deque with one waiting
reader (and says so if a second one waits), a cancelled wait loses nothing, and the longest
queue is still counted without a second pass over the subscribers.
"""

from __future__ import annotations

import asyncio

import pytest

from server.event_ids import StreamId
from server.fanout.hub import Hub, Message, Subscription


def test_a_message_position_is_parsed_once_and_kept() -> None:
    message = Message("{}", id="1700000000000-7")
    first = message.position
    assert first == StreamId(1700000000000, 7)
    assert message.position is first, "parsed again for the next client"
    assert Message("{}").position is None


def test_a_malformed_id_raises_where_the_position_is_asked_for_not_when_made() -> None:
    message = Message("{}", id="banana")  # made fine: only a feed that orders by id asks
    for _ in range(2):
        with pytest.raises(ValueError, match="message id must be a Redis stream id"):
            _ = message.position


def test_a_second_reader_waiting_on_one_subscription_is_refused() -> None:
    async def scenario() -> None:
        subscription = Subscription(5)
        first = asyncio.create_task(subscription.get(60))
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="one reader"):
            await subscription.get(60)
        assert subscription.offer(Message("x"))
        assert await first == Message("x"), "the first reader still gets the message"
        subscription.close()

    asyncio.run(asyncio.wait_for(scenario(), 10))


def test_a_cancelled_wait_loses_nothing_and_the_next_get_works() -> None:
    async def scenario() -> None:
        subscription = Subscription(5)
        waiting = asyncio.create_task(subscription.get(60))
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert subscription.offer(Message("after"))
        assert await subscription.get(60) == Message("after")
        woken = asyncio.create_task(subscription.get(60))
        await asyncio.sleep(0)
        subscription.offer(Message("woken"))  # wakes the reader; the cancel comes before it runs
        woken.cancel()
        with pytest.raises(asyncio.CancelledError):
            await woken
        assert await subscription.get(60) == Message("woken"), "the message stayed queued"
        subscription.close()

    asyncio.run(asyncio.wait_for(scenario(), 10))


def test_the_longest_queue_is_the_most_ever_waiting_after_a_publish() -> None:
    async def scenario() -> None:
        hub = Hub(queue_size=4)
        busy, idle = hub.join(), hub.join()
        for n in range(3):
            hub.publish(Message(str(n)))
        for _ in range(3):
            await busy.get(1)
            await idle.get(1)
        assert hub.stats().most_waiting == 3, "a high-water mark: drained queues keep it"
        assert await busy.get(0.01) is None  # a heartbeat's None, queued and taken
        hub.publish(Message("3"))
        assert await idle.get(1) == Message("3")  # only `idle` keeps reading
        for n in range(4):
            hub.publish(Message(str(n)))  # busy: a fifth, past the bound of 4: dropped
        stats = hub.stats()
        assert (stats.clients, stats.dropped, stats.most_waiting) == (1, 1, 4)
        assert idle.waiting == 4 and busy.dropped == "more than 4 messages behind"
        idle.close()

    asyncio.run(asyncio.wait_for(scenario(), 10))
