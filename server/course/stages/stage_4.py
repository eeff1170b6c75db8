"""Stage 4 (lesson 06): `POST /chat` relays the model's streamed reply as SSE; the page shows it.

How it is checked: the course's fake OpenAI server (`server.apps.fake_openai`) runs on a port of
its own, and the learner's app under uvicorn with `OPENAI_BASE_URL` pointing at it,
`OPENAI_API_KEY=sk-course` and `CHAT_HEARTBEAT=0.25`. The checker posts `{"message": ...}`
with httpx2 and reads the answer with the course's SSE decoder. The fake model waits 1 s before
its first token (the silence the heartbeats fill), then writes 20 tokens a second. To make it
refuse (401, 500) or break after five tokens, the checker restarts it on the same port with
`FAKE_OPENAI_STATUS` or `FAKE_OPENAI_FAIL_AFTER`, so the learner's app needs no restart; the
model's own counters (`GET /stats`) show how many tokens it wrote and whether a generation was
cancelled. Last, the page `chat.html` runs in headless Chromium through a hub's proxy
(`chat_page_checks`).
"""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx2

from server.course.launcher import Server, start_app
from server.course.stages.chat_page_checks import page_checks
from server.course.stages.hub import start_hub, stop_hub
from server.course.stages.run import Missed, StageRun
from server.course.stages.waits import wait_until_async
from server.seed_texts import PROMPT, REPLY
from server.sse import MEDIA_TYPE, Decoder, Event

TITLE = "POST /chat relays the model's reply as SSE, and chat.html shows it"
LESSON = "06_llm_streaming"
DEADLINE = 45.0
NEEDS = ("browser",)

HEARTBEAT = 0.25  # CHAT_HEARTBEAT for the learner's app
SILENCE = 1.0  # the fake model's time to first token
LONG = "Tell me about SSE"  # a question with a long generated answer (for leaving early)
WRONG = {  # bad bodies: each must be refused with a 4xx that says why, before any stream
    "invalid JSON": b'{"message": ',
    'no "message" field': b'{"text": "hello"}',
    'a lone surrogate, "\\ud800"': b'{"message": "\\ud800"}',
    "JSON nested 3,000 deep": b'{"message": ' + b"[" * 3000 + b"]" * 3000 + b"}",
    "a body of 1 MB": b'{"message": "' + b"a" * 1_000_000 + b'"}',
}


@dataclass
class Reply:
    """One answer of `POST /chat`: its events, when each came, and the comments before them."""

    events: list[Event] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    pings_first: int = 0  # comment lines before the first event

    def deltas(self) -> list[tuple[float, str]]:
        """(arrival, text) of each unnamed event: ValueError if its data is not {"delta": ...}."""
        found = []
        for event, arrival in zip(self.events, self.arrivals, strict=True):
            if event.event == "message":
                try:
                    data = json.loads(event.data)
                except ValueError:
                    data = None
                if not isinstance(data, dict) or not isinstance(data.get("delta"), str):
                    raise ValueError(repr(event.data[:80]))
                found.append((arrival, data["delta"]))
        return found

    def ends(self) -> str:
        return ", ".join(event.event or "message" for event in self.events[-3:]) or "no events"


async def ask(client: httpx2.AsyncClient, message: str, *, leave_after: int = 0) -> Reply:
    """Post `message` and read the answer to its end (or leave after `leave_after` events)."""
    reply, decoder, before = Reply(), Decoder(), b""
    body = {"message": message}
    headers = {"Accept": MEDIA_TYPE}
    async with client.stream("POST", "/chat", json=body, headers=headers) as response:
        kind = response.headers.get("content-type", "").split(";")[0].strip()
        if response.status_code != 200 or kind != MEDIA_TYPE:
            start = (await response.aread())[:200].decode(errors="replace")
            raise Missed(f"{response.status_code} {kind or 'no content-type'}: {start!r}")
        async for chunk in response.aiter_bytes():
            if not reply.events:
                before += chunk
            for event in decoder.feed(chunk):
                reply.events.append(event)
                reply.arrivals.append(time.monotonic())
            if leave_after and len(reply.events) >= leave_after:
                break
    lines = before.split(b"\n")
    reply.pings_first = sum(line.startswith(b":") for line in lines)
    return reply


def last_event(reply: Reply, name: str) -> dict[str, Any]:
    """The data of the stream's one last event, which must be `name`; Missed otherwise."""
    names = [event.event for event in reply.events]
    endings = [n for n in names if n in ("done", "error")]
    if not names or names[-1] != name or len(endings) != 1:
        raise Missed(f"the events ended with: {reply.ends()} ({len(endings)} done/error in all)")
    try:
        data = json.loads(reply.events[-1].data)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise Missed(f"the {name} event's data is not a JSON object: {reply.events[-1].data!r}")
    return data


def model(run: StageRun, port: int | None = None, **knobs: float) -> Server:
    """The fake model, with knobs set through its environment (`FAKE_OPENAI_TTFT`, ...)."""
    env = {f"FAKE_OPENAI_{name.upper()}": str(value) for name, value in knobs.items()}
    return run.started(start_app("server.apps.fake_openai:app", port=port, env=env, name="model"))


async def stats(client: httpx2.AsyncClient, llm: Server) -> dict[str, int]:
    counts: dict[str, int] = (await client.get(f"{llm.url}/stats")).json()
    return counts


async def check(run: StageRun) -> None:
    llm = model(run, ttft=SILENCE, tps=20)
    app = run.app(
        env={
            "OPENAI_BASE_URL": f"{llm.url}/v1",
            "OPENAI_API_KEY": "sk-course",
            "CHAT_HEARTBEAT": str(HEARTBEAT),
        }
    )
    async with (
        httpx2.AsyncClient(base_url=app.url, timeout=15) as client,
        AsyncExitStack() as stack,
    ):
        with run.step(
            'POST /chat {"message": ...} answers 200 with Content-Type text/event-stream',
            hint='in mychat/chat.py, between the STAGE 4 markers: `@router.post("/chat")` '
            "returns StreamingResponse(with_heartbeats(relay(message), HEARTBEAT), "
            'media_type="text/event-stream"), where `message = await read_message(request)`',
        ):
            reply = await ask(client, PROMPT)
        # The hub for the page's check starts now, beside the rest (about 3 s).
        hub = asyncio.ensure_future(asyncio.to_thread(start_hub))
        stack.push_async_callback(stop_hub, hub)
        await relay_checks(run, client, llm, reply)
        await page_checks(run, app, hub)


async def relay_checks(
    run: StageRun, client: httpx2.AsyncClient, llm: Server, reply: Reply
) -> None:
    with run.step(
        'each piece of the model\'s text is one event, data {"delta": "..."}, in order',
        hint="`relay`: `stream=True`, then `async for chunk in stream`, and for each "
        '`chunk.choices[0].delta.content` yield encode_json({"delta": ...})',
    ):
        try:
            deltas = reply.deltas()
        except ValueError as error:
            raise Missed(f'an unnamed event\'s data is {error}, not {{"delta": ...}}') from None
        text = [piece for _, piece in deltas]
        written = (await stats(client, llm))["tokens"]  # by the model, for this one reply
        if "".join(text) != REPLY or len(text) != written:
            raise Missed(
                f"{len(text)} deltas for the model's {written} tokens, "
                f"joined to {''.join(text)!r}, not {REPLY!r}"
            )

    with run.step(
        "the deltas arrive as the model writes them, not in one burst",
        hint="yield each event the moment its chunk arrives; do not collect the reply first",
    ):
        spread = deltas[-1][0] - deltas[0][0]
        if spread < 0.3:  # about 0.8 s: 17 tokens at 20 a second
            raise Missed(f"the first and last delta came {spread:.2f} s apart")

    with run.step(
        "the stream ends with exactly one last event: done, with the usage",
        hint='ask with `stream_options={"include_usage": True}`; keep `chunk.usage` from the '
        'last chunk; after the loop yield encode_json({"usage": ...}, event="done")',
    ):
        usage = last_event(reply, "done").get("usage")
        tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
        if tokens != len(text):
            raise Missed(f"the done event's usage: {usage!r}")

    first, port = reply, llm.port  # the first reply's pings are checked after the errors
    failures: list[tuple[str, dict[str, float], int]] = [
        ("the model refuses the key (401)", {"status": 401}, 0),
        ("the model fails (500)", {"status": 500}, 0),
        ("the model breaks after five tokens", {"fail_after": 5, "ttft": 0.2}, 5),
    ]
    for behaviour, knobs, sent in failures:
        with run.step(
            f"{behaviour}: still a 200, {sent} deltas, then exactly one event: error",
            hint="wrap the request and the loop in try/except openai.OpenAIError (the base of "
            "every error the client raises, before and during the stream) and yield one "
            'encode_json({"message": "..."}, event="error"); no done after it',
        ):
            llm.stop()
            llm = model(run, port, **knobs)
            reply = await ask(client, PROMPT)
            data = last_event(reply, "error")
            if not isinstance(data.get("message"), str) or not data["message"]:
                raise Missed(f"the error event's data has no message: {data!r}")
            if len(reply.events) != sent + 1:
                raise Missed(f"{len(reply.events) - 1} deltas before the error, not {sent}")

    llm.stop()
    llm = model(run, port, ttft=SILENCE, tps=20, tokens=400)  # a long reply: 20 s
    with run.step(
        f"while the model is silent, a comment (a heartbeat) comes every {HEARTBEAT} s",
        hint="`with_heartbeats`: wait for the next event with asyncio.wait(..., "
        'timeout=every); when none came, yield comment("ping") (b": ping\\n") and wait again',
    ):
        if first.pings_first < 2:  # about four in the model's 1 s of silence
            raise Missed(
                f"{first.pings_first} comment lines in the model's {SILENCE:g} s of silence, "
                "before the first delta"
            )

    with run.step(
        "the model stops within a second of the client leaving (its /stats: cancelled)",
        hint="an async generator with the async client (openai.AsyncOpenAI), its loop inside "
        "`async with stream:`: when the client leaves, the cancelled read closes the upstream "
        "response; a sync generator is abandoned and the model writes on for nobody",
    ):
        await client.post(f"{llm.url}/stats/reset")
        await ask(client, LONG, leave_after=3)  # 3 deltas of about 50: we leave

        async def stopped() -> bool:
            counts = await stats(client, llm)
            return counts.get("cancelled", 0) >= 1 and counts.get("active", 0) == 0

        if not await wait_until_async(stopped, within=1.0):
            counts = await stats(client, llm)
            raise Missed(
                f"a second after we left, the model's /stats: {counts['active']} generation(s) "
                f"still running, {counts['cancelled']} cancelled"
            )

    with run.step(
        "a body it cannot read is a 4xx with a reason, never a 500 (5 kinds)",
        hint="`read_message`: read the body in pieces (`request.stream()`), 413 past a limit; "
        "json.loads may raise ValueError or RecursionError (400); a missing or non-string "
        '"message" is a 422; `message.encode()` raises UnicodeEncodeError on "\\ud800" (400)',
    ):
        for name, body in WRONG.items():
            headers = {"Content-Type": "application/json", "Accept": MEDIA_TYPE}
            response = await client.post("/chat", content=body, headers=headers)
            if not 400 <= response.status_code < 500 or not response.text.strip():
                said = response.text[:120]
                raise Missed(f"{name}: {response.status_code} {said!r}")
