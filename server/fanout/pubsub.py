"""Redis pub/sub fan-out: one subscription per worker, every message to every client present.

`PUBLISH room data` sends `data` to every connection subscribed to `room` at that moment, and
Redis forgets it. Each worker holds one subscription (one task, one connection: not one per
client) and fans each message out through its `Hub`. That fixes the in-memory broadcast.

What it cannot fix: pub/sub is **at-most-once**. A client whose stream broke (its worker was
killed, its network dropped for two seconds) misses everything published until it is back:
there is no id to resume from and nothing kept to resume with. The same holds for a worker
whose own subscription broke while Redis was away. Lesson 09 counts those lost messages.
"""

from __future__ import annotations

import asyncio
import contextlib

from redis.exceptions import RedisError

from server.event_ids import StreamId
from server.fanout.broker import (
    BrokerUnavailable,
    LiveFeed,
    RedisFollower,
    log,
    unavailable,
)
from server.fanout.hub import DEFAULT_QUEUE_SIZE, Hub, Message
from server.redis_client import RECONNECT_EVERY, REDIS_DOWN


class PubSubBroker(RedisFollower):
    """PUBLISH to a channel; one SUBSCRIBE per worker feeding its hub."""

    kind = "pubsub"
    keeps_history = False

    def __init__(
        self, redis_url: str, channel: str = "room", queue_size: int = DEFAULT_QUEUE_SIZE
    ) -> None:
        super().__init__(redis_url)
        self.channel = channel
        self.hub = Hub(queue_size)

    @property
    def healthy(self) -> bool:
        return self._ready.is_set()  # subscribed

    async def publish(self, data: str, *, key: str | None = None) -> str | None:
        """PUBLISH `data`. Pub/sub gives no id, and `key` changes nothing: a retried publish
        is a second message."""
        try:
            await self.redis.publish(self.channel, data)
        except REDIS_DOWN as error:
            raise BrokerUnavailable(unavailable(error)) from error
        return None

    def subscribe(self, after: StreamId | None = None, history: int = 0) -> LiveFeed:
        """Live messages only: `after` is ignored (no id was ever sent), `history` refused."""
        return LiveFeed.without_history(self, history)

    async def _follow(self) -> None:
        """The worker's one subscription: each message to the hub; resubscribe if it breaks."""
        while True:
            pubsub = self.follower_redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self._ready.set()
                async for message in pubsub.listen():
                    if message["type"] == "message":
                        self.hub.publish(Message(message["data"]))
            except REDIS_DOWN:
                pass  # what was published from now until the next SUBSCRIBE is lost
            except RedisError as error:  # up but refusing (READONLY, a command error): retry
                log.warning("following channel %s failed (%s); resubscribing", self.channel, error)
            finally:
                self._ready.clear()
                with contextlib.suppress(*REDIS_DOWN, RedisError):
                    await pubsub.aclose()
            await asyncio.sleep(RECONNECT_EVERY)
