"""What an open stream holds (a slot under a limit, a subscription), taken and given back safely.

A streaming endpoint takes something before it answers (a place among a user's open streams, a
subscription to the room) and must give it back when the stream ends. Two ways to get that wrong,
both found in the course's own apps:

- count inside the body generator: uvicorn speaks ASGI 2.3, so Starlette starts the body in
  another task after the endpoint returns, and every request checked meanwhile sees the old
  count (check-then-act: a limit of 6 let 13 streams open);
- give back in the body's `finally`: a body that never starts (the client left first, or the
  server runs the response differently) never runs its `finally`, and the subscription leaks.

So: take in the endpoint, with nothing awaited between the check and the count (`Slots.take`),
and give back around the whole response call, which Starlette always makes (`released_after`):

    if not slots.take(user):
        return refuse(429)
    return released_after(sse_response(body), lambda: slots.give_back(user))
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["Slots", "released_after"]


class Slots:
    """At most `limit` held at once per key (a user, say), counted in this process."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held: Counter[str] = Counter()

    def take(self, key: str) -> bool:
        """Take a slot for `key` if one is free: check and count in one step, no await between."""
        if self.held[key] >= self.limit:
            return False
        self.held[key] += 1
        return True

    def give_back(self, key: str) -> None:
        self.held[key] -= 1
        if self.held[key] <= 0:
            del self.held[key]


def released_after(app: ASGIApp, release: Callable[[], None]) -> ASGIApp:
    """`app`, with `release()` called once when its response call ends, however it ends."""

    async def respond(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await app(scope, receive, send)
        finally:
            release()

    return respond
