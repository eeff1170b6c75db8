"""Stage 9's clients: one user's reply read to its end across a killed worker, and judged.

The checker knows what every reply must say because the course's fake model is deterministic:
`learn_replies` asks it each prompt once, unpaced, before the learner's app is involved.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from dataclasses import dataclass, field

import httpx2

from server.clients.sse_client import NotAnEventStream, aconnect_sse
from server.course.launcher import Server
from server.course.stages.run import Missed
from server.sse import Decoder, Event

READ_WITHIN = 15.0  # seconds a whole reply may take to read (it takes about 4)


STREAM_ID = re.compile(r"\d+-\d+")


TERMINAL = ("done", "error")


EXPECTED: dict[str, str] = {}  # prompt -> the fake model's reply (deterministic, so kept)


async def learn_replies(fake: Server, prompts: list[str]) -> None:
    """Ask the fake model each prompt once, unpaced: what each learner's reply must say."""
    unpaced = {"x-fake-ttft": "0", "x-fake-tps": "0", "Authorization": "Bearer sk-course"}
    async with httpx2.AsyncClient(base_url=fake.url, headers=unpaced, timeout=10) as client:
        for prompt in prompts:
            if prompt not in EXPECTED:
                body = {"model": "fake", "messages": [{"role": "user", "content": prompt}]}
                answer = (await client.post("/v1/chat/completions", json=body)).json()
                EXPECTED[prompt] = answer["choices"][0]["message"]["content"]


def expected(prompt: str) -> str:
    """The fake model's reply to `prompt`, as `learn_replies` asked it."""
    return EXPECTED[prompt]


async def post(client: httpx2.AsyncClient, user: str, message: str) -> httpx2.Response:
    return await client.post("/replies", json={"message": message}, headers={"X-User": user})


def reply_id(response: httpx2.Response) -> str:
    """The reply's id from a 202, or `Missed` saying what came instead."""
    try:
        value = response.json()["id"]
    except (ValueError, KeyError, TypeError):
        value = None
    if response.status_code != 202 or not isinstance(value, str):
        raise Missed(f"{response.status_code} {response.text[:120]!r}")
    return value


async def read_raw(
    client: httpx2.AsyncClient, url: str, headers: dict[str, str] | None = None
) -> tuple[bytes, list[Event]]:
    """A whole reply stream: its bytes (comments included) and its events; `Missed` if the
    stream is not one, or has not ended within READ_WITHIN seconds."""
    raw, headers = b"", {"Accept": "text/event-stream", **(headers or {})}
    try:
        async with (
            asyncio.timeout(READ_WITHIN),
            client.stream("GET", url, headers=headers) as response,
        ):
            kind = response.headers.get("content-type", "")
            if response.status_code != 200 or not kind.startswith("text/event-stream"):
                raise Missed(str(NotAnEventStream(response, await response.aread())))
            async for chunk in response.aiter_bytes():
                raw += chunk
    except TimeoutError:
        events = Decoder().feed(raw)
        last = events[-1].event if events else None
        raise Missed(
            f"the stream had not ended after {READ_WITHIN:.0f} s: {len(events)} events, the "
            f"last one {last!r}; `follow` must return after the `done` entry"
        ) from None
    return raw, Decoder().feed(raw)


def problems(events: list[Event], prompt: str) -> str:
    """What is wrong with one reply's events ("" if nothing): ids, text, the last event."""
    ids = [event.id or "" for event in events]
    odd = [i for i in ids if not STREAM_ID.fullmatch(i)]
    if odd:
        return f"an event id that is not a Redis stream id: {odd[0]!r}"
    numbers = [tuple(map(int, i.split("-"))) for i in ids]
    if any(b <= a for a, b in itertools.pairwise(numbers)):
        return "an event came twice, or out of order (its id is not after the one before)"
    kinds = [event.event for event in events]
    if not kinds or kinds[-1] not in TERMINAL or any(k in TERMINAL for k in kinds[:-1]):
        return f"the events were {_sketch(kinds)}: deltas, then one `done` at the end"
    if kinds[-1] != "done":
        return f"it ended with `error`: {events[-1].data[:120]!r}"
    text = "".join(event.data for event in events[:-1])
    if text != expected(prompt):
        want = expected(prompt)
        at = next((n for n, (a, b) in enumerate(zip(text, want, strict=False)) if a != b), None)
        at = min(len(text), len(want)) if at is None else at
        near = slice(max(0, at - 20), at + 20)
        return (
            f"the text differs from the model's at character {at}: got {text[near]!r}, "
            f"the model said {want[near]!r}"
        )
    return ""


def _sketch(kinds: list[str | None]) -> str:
    shown = [kind or "message" for kind in kinds]
    return " ".join(shown) if len(shown) <= 8 else " ".join([*shown[:3], "...", *shown[-3:]])


@dataclass
class User:
    """One simulated user of the load run: what they sent, and every event they received."""

    name: str
    prompt: str
    reply: str = ""
    events: list[Event] = field(default_factory=list)
    connections: int = 0
    deltas: int = 0

    @property
    def finished(self) -> bool:
        return bool(self.events) and self.events[-1].event in TERMINAL


async def chat(client: httpx2.AsyncClient, user: User) -> None:
    """Post, then read the reply to its end the way a page does: reconnect with the last id."""
    user.reply = reply_id(await post(client, user.name, user.prompt))
    while not user.finished:
        last = user.events[-1].id if user.events else None
        headers = {"Last-Event-ID": last} if last else {}
        user.connections += 1
        try:
            async with aconnect_sse(
                client, "GET", f"/replies/{user.reply}/events", headers=headers
            ) as events:
                async for event in events:
                    user.events.append(event)
                    user.deltas += event.event == "message"
                    if event.event in TERMINAL:
                        return
        except NotAnEventStream as error:
            if error.response.status_code < 500:
                raise Missed(f"{user.name}, resuming after {last}: {error}") from None
        except httpx2.TransportError:
            pass  # the worker died under the stream: reconnect, as EventSource would
        await asyncio.sleep(0.2)  # EventSource's retry delay, shortened
