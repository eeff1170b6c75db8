"""In-memory broadcast: a message reaches the clients of the worker that received it, and no others.

This is what a chat written for one process does (a list of queues in a global), and on one
worker it is correct. Behind a load balancer with two workers it is not: a message published
on worker A goes to A's clients only, so each client sees about half the room (lesson 09
measures it). Nothing is kept, so there is nothing to resume from either.
"""

from __future__ import annotations

from server.event_ids import StreamId
from server.fanout.broker import LiveFeed
from server.fanout.hub import DEFAULT_QUEUE_SIZE, Hub, Message


class MemoryBroker:
    """Publish straight into this process's hub."""

    kind = "memory"
    keeps_history = False

    def __init__(self, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        self.hub = Hub(queue_size)

    @property
    def healthy(self) -> bool:
        return True  # nothing outside this process to lose

    async def start(self) -> None:
        """Nothing to follow: publishing is the fan-out."""

    async def stop(self) -> None:
        """Nothing to stop."""

    async def publish(self, data: str, *, key: str | None = None) -> str | None:
        """Fan `data` out to this worker's clients; no id, and `key` changes nothing."""
        self.hub.publish(Message(data))
        return None

    def subscribe(self, after: StreamId | None = None, history: int = 0) -> LiveFeed:
        """Live messages only: `after` is ignored (no id was ever sent), `history` refused."""
        return LiveFeed.without_history(self, history)
