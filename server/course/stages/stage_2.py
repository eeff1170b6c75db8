"""Stage 2 (lesson 04): the countdown's events carry ids, and a reconnection resumes after them.

How it is checked: the learner's app runs under uvicorn; the checker reads `/countdown` with
httpx2 and the course's SSE decoder, leaves one countdown after two events and reconnects with
the last id it got as `Last-Event-ID`, then sends ids that are done (0) or malformed, and a launch
text holding a line break.
"""

from __future__ import annotations

import httpx2

from server.clients.sse_client import NotAnEventStream, aconnect_sse
from server.course.stages.run import Missed, StageRun
from server.sse import Event

TITLE = "the countdown's events carry ids, and a reconnection resumes after the last one"
LESSON = "04_fastapi_streaming"
DEADLINE = 40.0
LIFTOFF = "발사!"
COUNTDOWN = "/countdown?start=3&interval=0"

# What a client may send as Last-Event-ID to `/countdown?start=3`, none of them an id it got.
# Header values are bytes: a server decodes them as Latin-1, so "²" arrives as the one
# character that isdigit() accepts and int() refuses.
MALFORMED: dict[str, bytes] = {
    "abc": b"abc",
    "-1": b"-1",
    "1e3": b"1e3",
    "4 (above start=3)": b"4",
    "٣ (an Arabic-Indic 3)": "٣".encode(),
    "² (the byte 0xB2)": b"\xb2",
    "5000 digits": b"9" * 5000,
}


async def read_events(
    client: httpx2.AsyncClient, url: str, last_event_id: str | None = None
) -> list[Event]:
    """Every event of one countdown, to its end, as the course's decoder dispatches them."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
    async with aconnect_sse(client, "GET", url, headers=headers) as events:
        return [event async for event in events]


def shown(events: list[Event]) -> str:
    return ", ".join(f"(id {event.id!r}, data {event.data!r})" for event in events) or "no events"


async def check(run: StageRun) -> None:
    app = run.app()
    async with httpx2.AsyncClient(base_url=app.url, timeout=10) as client:
        with run.step(
            "stage 1 holds: GET /countdown?start=3 streams 3, 2, 1, 발사!",
            hint="stage 2 builds on stage 1's route: pass check_stage(1) first, or fill it "
            "from the reference with `make catch-up STAGE=2` (your files are backed up)",
        ):
            try:
                events = await read_events(client, COUNTDOWN)
            except NotAnEventStream as error:
                raise Missed(str(error)) from None
            if [event.data for event in events] != ["3", "2", "1", LIFTOFF]:
                raise Missed(f"the events' data were {[event.data for event in events]}")

        with run.step(
            "every event carries `id:` equal to its number, and the launch event id 0",
            hint="in ticks(), give each event its id: `encode(Event(data=str(n), id=str(n)))`, "
            'and the launch `id="0"`',
        ):
            ids = [event.id for event in events]
            if ids != ["3", "2", "1", "0"]:
                raise Missed(f"the events' ids were {ids}")

        with run.step(
            "a client that leaves after 5, 4 and reconnects with Last-Event-ID: 4 gets "
            "3, 2, 1, 발사!: no gap, no repeat",
            hint="read the header with a parameter `last_event_id: str | None = Header(None)`, "
            "and in first_tick() return the number after it (`int(last_event_id) - 1`), or "
            "`start` when there is none; the route starts ticks() there",
        ):
            url = "/countdown?start=5&interval=0.1"
            async with aconnect_sse(client, "GET", url) as events_before:
                seen = []
                async for event in events_before:
                    seen.append(event)
                    if len(seen) == 2:
                        break  # the connection drops here, as a train enters a tunnel
            last_id = seen[-1].id if seen else None  # what EventSource would send
            resumed = await read_events(client, url, last_id)
            got = [(event.id, event.data) for event in seen + resumed]
            want = [("5", "5"), ("4", "4"), ("3", "3"), ("2", "2"), ("1", "1"), ("0", LIFTOFF)]
            if got != want:
                raise Missed(
                    f"before leaving: {shown(seen)}; after reconnecting with Last-Event-ID "
                    f"{last_id!r}: {shown(resumed)}"
                )

        with run.step(
            "Last-Event-ID: 1 gets the launch alone, and Last-Event-ID: 0 (the launch seen) "
            "gets 204 No Content, which stops EventSource reconnecting",
            hint="first_tick() gives -1 for id 0: then return `Response(status_code=204)` "
            "before starting the stream",
        ):
            try:
                last = await read_events(client, COUNTDOWN, "1")
            except NotAnEventStream as error:
                raise Missed(f"for Last-Event-ID: 1, {error}") from None
            if [(event.id, event.data) for event in last] != [("0", LIFTOFF)]:
                raise Missed(f"for Last-Event-ID: 1, {shown(last)}")
            done = await client.get(COUNTDOWN, headers={"Last-Event-ID": "0"})
            if done.status_code != 204 or done.content:
                raise Missed(f"for Last-Event-ID: 0, {done.status_code} {done.content[:80]!r}")

        with run.step(
            "a malformed Last-Event-ID (" + ", ".join(MALFORMED) + ") is a 400 whose body "
            "names Last-Event-ID and what is wrong",
            hint="check the header before trusting it: ASCII digits only "
            "(`value.isascii() and value.isdecimal()`: int() takes '+7' and isdigit() takes "
            "'²'), at most 18 of them, and no more than `start`; otherwise "
            '`raise HTTPException(400, f"Last-Event-ID must be ...")`',
        ):
            wrong = []
            for name, value in MALFORMED.items():
                # A connection each: a server closes its connection after a 500.
                headers = {b"Last-Event-ID": value, b"Connection": b"close"}
                answer = await client.get(COUNTDOWN, headers=headers)
                if answer.status_code != 400 or "last-event-id" not in answer.text.lower():
                    wrong.append(f"{name}: {answer.status_code} {answer.text[:60]!r}")
            if wrong:
                raise Missed("; ".join(wrong))

        with run.step(
            "a launch text with a line break (?launch=a%0Aid:%20666) arrives as one event "
            "of two data lines, its id still 0",
            hint="build the launch event with the encoder, `encode(Event(data=launch, "
            'id="0"))`, not an f-string: a line break in the text then cannot start a field',
        ):
            forged = await read_events(client, "/countdown?start=1&interval=0&launch=a%0Aid:%20666")
            if [(event.id, event.data) for event in forged] != [("1", "1"), ("0", "a\nid: 666")]:
                raise Missed(shown(forged))
