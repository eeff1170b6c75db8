"""An SSE response that says "still here" while its body is silent, and writes in batches.

A model can think for a long time before its first token, and between two tokens. To a proxy
or a load balancer, a response that sends nothing for a minute looks dead: nginx cuts it
after ``proxy_read_timeout`` (60 s by default), many cloud load balancers sooner. A comment
line (``: ping``) costs seven bytes, every SSE client ignores it, and it resets those clocks.

A generator can send heartbeats itself only when it knows how long it will wait (a
``sleep``); the relay waits on its upstream, which may answer in a millisecond or a minute. So
the writing runs beside the body, in a task of its own (`Outbox.write`): it sends what the
body made, and a comment whenever ``interval`` seconds pass without a write. One task writes,
so no two ``send`` calls overlap (ASGI forbids it) without a lock.

That task also sends in one write all the events the body made since its last one. Each
``send`` is a system call and a few layers of middleware, the largest part of the relay's
CPU per token (`bench/bench_relay.py`). An idle relay loses nothing by it: the writer runs as
soon as the body waits for its upstream, so each event goes out at once, alone. A busy one
reads many deltas per upstream read, and the writer, which runs only when the body waits,
finds several events to join. The body hands over at most `MAX_PENDING` bytes at a time,
then waits for the writer to take them: memory stays bounded for a client that stops
reading (as when the body awaited each write itself), and an event of a burst (a whole
reply that arrived at once) waits for a hundred events or so, not for the whole burst. The
first event waits for none: the body hands it over alone, since time to first token is
what a reader sees most.

The body still runs in the response's own task, so cancellation reaches it as before: when
the client leaves, the body's pending ``await`` raises `CancelledError` and its ``finally``
blocks run. If the body was suspended at a ``yield`` instead (it was waiting for room), it is
closed here, at once, rather than whenever the garbage collector gets to it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Send

from server.sse import MEDIA_TYPE, RESPONSE_HEADERS, comment

HEARTBEAT = comment("ping")
MAX_PENDING = 4096  # bytes of events the body makes before the writer must take them


class Outbox:
    """The events made and not yet sent, and the one task that sends them and the heartbeats.

    The heartbeat's timer is lazy, as the hub's (`server.fanout.hub.Subscription`): one
    timer, due `interval` after the last write, that re-arms itself when writes came
    meanwhile, rather than one armed and cancelled per event.
    """

    def __init__(self, send: Send, interval: float) -> None:
        self._send = send
        self._interval = interval
        self._loop = asyncio.get_running_loop()
        self._pending: list[bytes | memoryview] = []
        self._size = 0  # bytes in `_pending`
        self._first = True  # nothing taken by the writer yet
        self._finished = False  # the body has ended: write what is left, then stop
        self._beat_due = False
        self._writer: asyncio.Future[None] | None = None  # the writer, waiting for work
        self._body: asyncio.Future[None] | None = None  # the body, waiting for room
        self._last = self._loop.time()  # when the last write went out (at first: the start)
        self._timer: asyncio.TimerHandle | None = None

    def put(self, chunk: bytes | memoryview) -> bool:
        """Queue `chunk` for the writer. True if the body must now wait for `room`."""
        self._pending.append(chunk)
        self._size += len(chunk)
        self._wake_writer()
        return self._size >= MAX_PENDING or self._first

    async def room(self) -> None:
        """Wait until the writer has taken what is pending (a slow client's backpressure)."""
        self._body = self._loop.create_future()
        try:
            await self._body
        finally:
            self._body = None

    def finish(self) -> None:
        """The body has ended: the writer sends what is left and returns."""
        self._finished = True
        self._wake_writer()

    async def write(self) -> None:
        """The writer task: pending events in one write, a heartbeat after a silence."""
        loop, send, pending = self._loop, self._send, self._pending
        self._timer = loop.call_at(self._last + self._interval, self._beat)
        try:
            while True:
                if pending:
                    body = pending[0] if len(pending) == 1 else b"".join(pending)
                    pending.clear()
                    self._size, self._first = 0, False
                    if self._body is not None and not self._body.done():
                        self._body.set_result(None)
                    await send({"type": "http.response.body", "body": body, "more_body": True})
                    self._last = loop.time()
                elif self._finished:
                    return
                elif self._beat_due:
                    self._beat_due = False
                    if loop.time() - self._last >= self._interval:  # still silent
                        beat = {"type": "http.response.body", "body": HEARTBEAT, "more_body": True}
                        await send(beat)
                        self._last = loop.time()
                else:
                    self._writer = loop.create_future()
                    try:
                        await self._writer
                    finally:
                        self._writer = None
        finally:
            self._timer.cancel()

    def _beat(self) -> None:
        """The timer: wake the writer for a heartbeat, or wait on if writes came meanwhile."""
        due = self._last + self._interval
        now = self._loop.time()
        if now >= due:
            self._beat_due = True
            self._wake_writer()
            due = now + self._interval  # the heartbeat goes out now
        self._timer = self._loop.call_at(due, self._beat)

    def _wake_writer(self) -> None:
        if self._writer is not None and not self._writer.done():
            self._writer.set_result(None)


class HeartbeatResponse(StreamingResponse):
    """`body` (encoded events) as ``text/event-stream``, with a `HEARTBEAT` after each
    `interval` seconds in which the body sent nothing."""

    def __init__(self, body: AsyncIterable[bytes], interval: float) -> None:
        super().__init__(body, media_type=MEDIA_TYPE, headers=RESPONSE_HEADERS)
        self.interval = interval

    async def stream_response(self, send: Send) -> None:
        outbox = Outbox(send, self.interval)  # the heartbeat's clock starts before the start
        start = {"type": "http.response.start", "status": self.status_code}
        await send({**start, "headers": self.raw_headers})
        try:
            async with anyio.create_task_group() as beside:
                beside.start_soon(outbox.write)
                async for chunk in self.body_iterator:
                    if outbox.put(chunk.encode(self.charset) if isinstance(chunk, str) else chunk):
                        await outbox.room()
                outbox.finish()
        finally:
            close = getattr(self.body_iterator, "aclose", None)
            if close is not None:
                with anyio.CancelScope(shield=True):
                    await close()
        await send({"type": "http.response.body", "body": b"", "more_body": False})
