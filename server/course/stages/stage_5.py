"""Stage 5 (lesson 07): the countdown as an async Django view, streamed under uvicorn (ASGI).

How it is checked: the learner's Django site (`mychat/django_site`) runs under uvicorn with
`DJANGO_SETTINGS_MODULE=mychat.django_site.settings`; the checker reads
`/countdown?start=3&interval=0.3` with httpx2 and the course's SSE decoder, runs 20 countdowns at
once, leaves one early and reads the server's log, then reconnects with `Last-Event-ID`. When the
events come in one burst, the server's log says whether Django read the whole iterator first (the
wrong kind of iterator for ASGI).
"""

from __future__ import annotations

import asyncio
import re
import time

import httpx2

from server.clients.sse_client import NotAnEventStream, aconnect_sse
from server.course.stages.run import Missed, StageRun
from server.course.stages.waits import log_count, wait_for_log
from server.sse import Event

TITLE = "the countdown as an async Django view, streamed under uvicorn"
LESSON = "07_django_streaming"
DEADLINE = 45.0
SITE = "mychat.django_site"
SHORT = "/countdown?start=3&interval=0.3"
EXPECTED = [("3", "3"), ("2", "2"), ("1", "1"), ("0", "발사!")]
CLOSED = "countdown closed"
# What Django logs when it must read a whole iterator before sending (lesson 07, section 5).
WRONG_KIND = re.compile(r"StreamingHttpResponse must consume \w+ iterators")


async def read_countdown(
    client: httpx2.AsyncClient, url: str, headers: dict[str, str] | None = None
) -> tuple[httpx2.Response, list[tuple[float, Event]]]:
    """The response and (arrival time, event) of every event of one countdown, to the end."""
    arrivals = []
    async with aconnect_sse(client, "GET", url, headers=headers or {}) as events:
        async for event in events:
            arrivals.append((time.monotonic(), event))
    return events.response, arrivals


async def check(run: StageRun) -> None:
    app = run.app(f"{SITE}.asgi:application", env={"DJANGO_SETTINGS_MODULE": f"{SITE}.settings"})
    async with httpx2.AsyncClient(base_url=app.url, timeout=10) as client:
        with run.step(
            "GET /countdown answers 200 text/event-stream with Cache-Control: no-cache",
            hint="in mychat/django_site/views.py, `countdown` (an `async def` view) returns "
            'StreamingHttpResponse(ticks(...), content_type="text/event-stream", '
            'headers={"Cache-Control": "no-cache"})',
        ):
            try:
                response, arrivals = await read_countdown(client, SHORT)
            except NotAnEventStream as error:
                raise Missed(str(error)) from None
            if response.headers.get("cache-control") != "no-cache":
                said = response.headers.get("cache-control")
                raise Missed(f"Cache-Control: {said}" if said else "no Cache-Control header")

        with run.step(
            "the events are 3, 2, 1, 발사! with ids 3, 2, 1, 0",
            hint="yield encode(Event(data=str(n), id=str(n))) for n from `start` down to 1, "
            'then encode(Event(data="발사!", id="0")); `start` and `interval` come from '
            "request.GET",
        ):
            got = [(event.id, event.data) for _, event in arrivals]
            if got != EXPECTED:
                raise Missed(f"(id, data) of the events: {got}")

        with run.step(
            "they arrive spread over time, one per interval, not in one burst",
            hint="under uvicorn the generator must be `async def` and `await "
            "asyncio.sleep(interval)`: given a sync generator, Django reads it to its end "
            "before sending a byte",
        ):
            spread = arrivals[-1][0] - arrivals[0][0]
            if spread < 0.4:  # 0.9 s when each of three waits 0.3 s
                warned = WRONG_KIND.search(app.log_tail(2000))
                why = f"; Django's log says: {warned[0]}" if warned else ""
                raise Missed(f"all four within {spread:.2f} s{why}")

        with run.step(
            "20 countdowns at once all finish, and the server still answers others meanwhile",
            hint="`time.sleep` in an async generator stops the event loop for every client: "
            "use `await asyncio.sleep(...)`",
        ):
            began = time.monotonic()
            many = [read_countdown(client, SHORT) for _ in range(20)]
            results = await asyncio.gather(*many, read_countdown(client, "/countdown?start=1"))
            took = time.monotonic() - began
            counts = sorted({len(events) for _, events in results[:-1]})
            if counts != [len(EXPECTED)] or len(results[-1][1]) != 2 or took > 10:
                raise Missed(
                    f"21 streams took {took:.1f} s (about 1 s when none blocks); "
                    f"event counts {counts}"
                )

        with run.step(
            f"the generator's cleanup runs within 2 s of a client leaving (it logs {CLOSED!r})",
            hint='wrap the generator\'s loop in try/finally and `print("countdown closed", '
            "flush=True)` in the finally block: Django raises CancelledError at the `await` "
            "when the client leaves, and the finally block runs then too",
        ):
            before = log_count(app, CLOSED)
            async with aconnect_sse(client, "GET", "/countdown?start=50&interval=0.2") as events:
                async for event in events:
                    if event.data == "49":
                        break  # leave after two events: the countdown has 48 to go
            if not await wait_for_log(app, CLOSED, before + 1, within=2.0):
                raise Missed(f"{log_count(app, CLOSED) - before} new {CLOSED!r} lines in 2 s")

        with run.step(
            "a reconnection with Last-Event-ID: 2 gets 1 then 발사!, and after id 0 a 204",
            hint='read request.headers.get("Last-Event-ID"): start from the number below it, '
            "and answer HttpResponse(status=204) when it is 0 (nothing is left)",
        ):
            try:
                _, resumed = await read_countdown(
                    client, "/countdown?start=3&interval=0", {"Last-Event-ID": "2"}
                )
            except NotAnEventStream as error:
                raise Missed(f"with Last-Event-ID: 2, {error}") from None
            got = [(event.id, event.data) for _, event in resumed]
            if got != EXPECTED[2:]:
                raise Missed(f"with Last-Event-ID: 2, (id, data) of the events: {got}")
            done = await client.get("/countdown?start=3", headers={"Last-Event-ID": "0"})
            if done.status_code != 204:
                raise Missed(f"with Last-Event-ID: 0, {done.status_code} {done.text[:80]!r}")
