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
    """`app`, except that a `send` that waits more than `seconds` ends it.

    One lazy timer per response, not one per `send`: `asyncio.timeout` around each write
    would arm and cancel a timer per event, which a worker fanning one message out to
    thousands of streams pays thousands of times (`bench/bench_capacity.py`). The timer fires
    at most every `seconds`; if a send is in progress and started that long ago, it cancels
    the task, and the send raises `TimeoutError`, as `asyncio.timeout` would.
    """

    def __init__(self, app: ASGIApp, seconds: float, on_timeout: Callable[[], None]) -> None:
        if seconds <= 0:
            raise ValueError(f"seconds must be > 0, got {seconds}")
        self.app = app
        self.seconds = seconds
        self.on_timeout = on_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        sending_since: float | None = None  # loop time the send in progress started
        sender: asyncio.Task[object] | None = None  # the task that is sending
        timer: asyncio.TimerHandle | None = None
        cancelled: float | None = None  # the start time of the send the timer cancelled
        expired = False

        def check() -> None:
            nonlocal timer, cancelled
            timer = None
            if sending_since is None or sender is None:
                return  # nothing in progress: the next send arms the timer again
            if loop.time() - sending_since < self.seconds:
                timer = loop.call_at(sending_since + self.seconds, check)
                return
            cancelled = sending_since
            sender.cancel()

        async def send_within_deadline(message: Message) -> None:
            nonlocal sending_since, sender, timer, expired
            started = sending_since = loop.time()
            sender = asyncio.current_task()
            assert sender is not None
            if timer is None:
                timer = loop.call_at(started + self.seconds, check)
            cancelling = sender.cancelling()
            try:
                await send(message)
            except asyncio.CancelledError:
                # Ours only if nobody else asked to cancel the task too.
                if cancelled == started and sender.uncancel() <= cancelling:
                    expired = True
                    raise TimeoutError(f"a send waited over {self.seconds} s") from None
                raise
            finally:
                sending_since = None

        try:
            await self.app(scope, receive, send_within_deadline)
        except TimeoutError:
            if not expired:
                raise  # some other timeout inside the app: not ours to swallow
            self.on_timeout()
        finally:
            if timer is not None:
                timer.cancel()
