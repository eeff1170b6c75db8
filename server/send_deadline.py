"""Give up on a client that stops reading: every write must be accepted within a deadline.

When a client stops reading (a phone in a tunnel, a frozen tab, a bug), the kernel keeps
taking bytes until its buffers and the client's TCP window are full; then the server's
writes wait. uvicorn's `send` waits for the socket to drain, so the streaming code that
called it stops too, for as long as the client likes, holding whatever it holds. A bounded
queue in front of the stream (`server.fanout.hub`) keeps the fan-out moving; this bounds the
stream itself: a `send` not accepted within `seconds` ends the response, and `on_timeout` is
told (to count it, to leave a hub).

It wraps any ASGI app (a `StreamingResponse`, a WebSocket endpoint), because the wait is in
the transport's `send`, below the code that produces the bytes. The server closes the
connection afterwards (uvicorn logs "ASGI callable returned without completing response",
which is exactly what happened).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class SendDeadline:
    """`app`, except that a `send` that waits more than `seconds` ends it."""

    def __init__(self, app: ASGIApp, seconds: float, on_timeout: Callable[[], None]) -> None:
        if seconds <= 0:
            raise ValueError(f"seconds must be > 0, got {seconds}")
        self.app = app
        self.seconds = seconds
        self.on_timeout = on_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        expired = False

        async def send_within_deadline(message: Message) -> None:
            nonlocal expired
            try:
                async with asyncio.timeout(self.seconds):
                    await send(message)
            except TimeoutError:
                expired = True
                raise

        try:
            await self.app(scope, receive, send_within_deadline)
        except TimeoutError:
            if not expired:
                raise  # some other timeout inside the app: not ours to swallow
            self.on_timeout()
