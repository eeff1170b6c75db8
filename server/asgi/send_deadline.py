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
        deadline = _Deadline(send, self.seconds)
        try:
            await self.app(scope, receive, deadline.send)
        except TimeoutError:
            if not deadline.expired:
                raise  # some other timeout inside the app: not ours to swallow
            self.on_timeout()
        finally:
            deadline.stop()


class _Deadline:
    """One response's deadline: its `send`, and the lazy timer that watches it.

    A class with slots rather than closures: a server holds one per open stream.
    """

    __slots__ = (
        "_cancelled",
        "_loop",
        "_send",
        "_sender",
        "_since",
        "_timer",
        "expired",
        "seconds",
    )

    def __init__(self, send: Send, seconds: float) -> None:
        self._send, self.seconds = send, seconds
        self._loop = asyncio.get_running_loop()
        self._since: float | None = None  # loop time the send in progress started
        self._sender: asyncio.Task[object] | None = None  # the task that is sending
        self._timer: asyncio.TimerHandle | None = None
        self._cancelled: float | None = None  # the start time of the send the timer cancelled
        self.expired = False

    async def send(self, message: Message) -> None:
        started = self._since = self._loop.time()
        sender = self._sender = asyncio.current_task()
        assert sender is not None
        if self._timer is None:
            self._timer = self._loop.call_at(started + self.seconds, self._check)
        cancelling = sender.cancelling()
        try:
            await self._send(message)
        except asyncio.CancelledError:
            # Ours only if nobody else asked to cancel the task too.
            if self._cancelled == started and sender.uncancel() <= cancelling:
                self.expired = True
                raise TimeoutError(f"a send waited over {self.seconds} s") from None
            raise
        finally:
            self._since = None

    def _check(self) -> None:
        self._timer = None
        since, sender = self._since, self._sender
        if since is None or sender is None:
            return  # nothing in progress: the next send arms the timer again
        if self._loop.time() - since < self.seconds:
            self._timer = self._loop.call_at(since + self.seconds, self._check)
            return
        self._cancelled = since
        sender.cancel()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
