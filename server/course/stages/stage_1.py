"""Stage 1 (lesson 04): `GET /countdown` streams the seeds' countdown from an async generator.

How it is checked: the learner's app runs under uvicorn; the checker reads
`/countdown?start=3&interval=0.3` with httpx2 and the course's SSE decoder, runs 20 countdowns at
once, then leaves one early and reads the server's log.
"""

from __future__ import annotations

import asyncio
import time

import httpx2

from server.clients.sse_client import NotAnEventStream, aconnect_sse
from server.course.stages.run import Missed, StageRun
from server.course.stages.waits import log_count, wait_for_log

TITLE = "GET /countdown streams 3, 2, 1, 발사! as Server-Sent Events"
LESSON = "04_fastapi_streaming"
DEADLINE = 40.0
SHORT = "/countdown?start=3&interval=0.3"
CLOSED = "countdown closed"


async def read_countdown(client: httpx2.AsyncClient, url: str) -> list[tuple[float, str]]:
    """(arrival time, data) of every event of one countdown, to the end."""
    arrivals = []
    async with aconnect_sse(client, "GET", url) as events:
        async for event in events:
            arrivals.append((time.monotonic(), event.data))
    return arrivals


async def check(run: StageRun) -> None:
    app = run.app()
    async with httpx2.AsyncClient(base_url=app.url, timeout=10) as client:
        with run.step(
            "GET /countdown answers 200 with Content-Type text/event-stream",
            hint='in mychat/countdown.py, add `@router.get("/countdown")` to an async function '
            'that returns StreamingResponse(ticks(...), media_type="text/event-stream")',
        ):
            try:
                arrivals = await read_countdown(client, SHORT)
            except NotAnEventStream as error:
                raise Missed(str(error)) from None

        with run.step(
            "the events are 3, 2, 1, 발사! in that order",
            hint="yield one `data: N` event per number (each ends with a blank line, "
            '"\\n\\n"), then `data: 발사!`; `start` and `interval` come from the query',
        ):
            got = [data for _, data in arrivals]
            if got != ["3", "2", "1", "발사!"]:
                raise Missed(f"the events' data were {got}")

        with run.step(
            "they arrive spread over time, one per interval, not in one burst",
            hint="`await asyncio.sleep(interval)` between events inside the generator; a "
            "generator that builds the whole list first sends it at once",
        ):
            spread = arrivals[-1][0] - arrivals[0][0]
            if spread < 0.4:  # 0.9 s when each of three waits 0.3 s
                raise Missed(f"all four within {spread:.2f} s")

        with run.step(
            "20 countdowns at once all finish, and the server still answers others meanwhile",
            hint="`time.sleep` in an async generator stops the event loop for every client: "
            "use `await asyncio.sleep(...)`",
        ):
            began = time.monotonic()
            many = [read_countdown(client, SHORT) for _ in range(20)]
            results = await asyncio.gather(*many, read_countdown(client, "/countdown?start=1"))
            took = time.monotonic() - began
            if any(len(result) != 4 for result in results[:-1]) or took > 8:
                counts = sorted({len(result) for result in results[:-1]})
                raise Missed(
                    f"21 streams took {took:.1f} s (about 1 s when none blocks); "
                    f"event counts {counts}"
                )

        with run.step(
            f"the generator's cleanup runs within 2 s of a client leaving (it logs {CLOSED!r})",
            hint='wrap the generator\'s loop in try/finally and `print("countdown closed", '
            "flush=True)` in the finally block: it runs when the client disconnects too",
        ):
            before = log_count(app, CLOSED)
            async with aconnect_sse(client, "GET", "/countdown?start=50&interval=0.2") as events:
                async for event in events:
                    if event.data == "49":
                        break  # leave after two events: the countdown has 48 to go
            if not await wait_for_log(app, CLOSED, before + 1, within=2.0):
                raise Missed(f"{log_count(app, CLOSED) - before} new {CLOSED!r} lines in 2 s")
