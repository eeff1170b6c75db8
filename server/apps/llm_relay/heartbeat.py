"""An SSE response that says "still here" while its body is silent: heartbeat comments.

A model can think for a long time before its first token, and between two tokens. To a proxy
or a load balancer, a response that sends nothing for a minute looks dead: nginx cuts it
after ``proxy_read_timeout`` (60 s by default), many cloud load balancers sooner. A comment
line (``: ping``) costs seven bytes, every SSE client ignores it, and it resets those clocks.

A generator can send heartbeats itself only when it knows how long it will wait (a
``sleep``); the relay waits on its upstream, which may answer in a millisecond or a minute. So
the heartbeat runs beside the body, in a task of its own: Starlette's `StreamingResponse`,
with a second task that writes a comment whenever ``interval`` seconds pass without a write.
A lock keeps the two from writing at once (ASGI forbids concurrent ``send`` calls).

The body still runs in the response's own task, so cancellation reaches it as before: when
the client leaves, the body's pending ``await`` raises `CancelledError` and its ``finally``
blocks run. If the body was suspended at a ``yield`` instead (its last event was being
written), it is closed here, at once, rather than whenever the garbage collector gets to it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Send

from server.sse import MEDIA_TYPE, RESPONSE_HEADERS, comment

HEARTBEAT = comment("ping")


class HeartbeatResponse(StreamingResponse):
    """`body` (encoded events) as ``text/event-stream``, with a `HEARTBEAT` after each
    `interval` seconds in which the body sent nothing."""

    def __init__(self, body: AsyncIterable[bytes], interval: float) -> None:
        super().__init__(body, media_type=MEDIA_TYPE, headers=RESPONSE_HEADERS)
        self.interval = interval

    async def stream_response(self, send: Send) -> None:
        # Every event goes through `write`, so it must be cheap: with asyncio's lock and clock
        # it adds 0.7 µs per event, with anyio's 3.3 (bench/README.md), and this response
        # only ever runs under uvicorn's asyncio loop.
        lock = asyncio.Lock()
        last_write = time.monotonic()

        async def write(body: bytes | memoryview) -> None:
            nonlocal last_write
            async with lock:
                await send({"type": "http.response.body", "body": body, "more_body": True})
                last_write = time.monotonic()

        async def heartbeats() -> None:
            while True:
                # Already due if this task ran late (a slow start, a busy loop): anyio
                # refuses a negative delay, so wait 0 s, not a negative number of them.
                await anyio.sleep(max(0.0, last_write + self.interval - time.monotonic()))
                if time.monotonic() - last_write >= self.interval:
                    await write(HEARTBEAT)

        start = {"type": "http.response.start", "status": self.status_code}
        await send({**start, "headers": self.raw_headers})
        try:
            async with anyio.create_task_group() as beside:
                beside.start_soon(heartbeats)
                async for chunk in self.body_iterator:
                    await write(chunk.encode(self.charset) if isinstance(chunk, str) else chunk)
                beside.cancel_scope.cancel()
        finally:
            close = getattr(self.body_iterator, "aclose", None)
            if close is not None:
                with anyio.CancelScope(shield=True):
                    await close()
        await send({"type": "http.response.body", "body": b"", "more_body": False})
