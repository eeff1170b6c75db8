"""A reader that hangs up mid-reply, and what the model did after it left.

Lesson 06's question: when the browser closes the tab after a few words, does the model stop
generating (and billing), or does it write the whole reply for nobody? `hang_up` reads the
first few events of a chat stream, closes the connection, and then asks the course's local
model (``GET /stats`` of `server.apps.fake_openai`) how that generation ended: finished,
or cancelled because its client (the server in between) left, and how many tokens it sent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx2

from server.clients.sse_client import connect_sse

COUNTED = ("finished", "cancelled", "tokens")


@dataclass(frozen=True)
class AfterLeaving:
    """How the model's generation ended after the reader hung up."""

    finished: int  # generations that ran to their end
    cancelled: int  # generations stopped because their client left
    tokens: int  # tokens the model generated for this request
    ran_on: float  # seconds from hanging up until the model was no longer generating


def model_stats(llm_url: str) -> dict[str, int]:
    """The local model's counters: requests, active, finished, cancelled, tokens, ..."""
    return dict(httpx2.get(f"{llm_url}/stats").json())


def hang_up(
    stream_url: str, llm_url: str, message: str, events: int = 3, deadline: float = 10.0
) -> AfterLeaving:
    """GET `stream_url` with ``?message=``, read `events` events, hang up, and wait (at most
    `deadline` seconds) until the model at `llm_url` has no generation running."""
    before = model_stats(llm_url)
    with (
        httpx2.Client() as client,
        connect_sse(client, "GET", stream_url, params={"message": message}) as stream,
    ):
        for received, _ in enumerate(stream, 1):
            if received >= events:
                break
    left = time.perf_counter()  # leaving the `with` closed the connection
    while (now := model_stats(llm_url))["active"] > before["active"]:
        if time.perf_counter() - left > deadline:
            raise TimeoutError(f"the model was still generating {deadline:g} s after we left")
        time.sleep(0.005)
    ran_on = time.perf_counter() - left
    counts = {name: now[name] - before[name] for name in COUNTED}
    return AfterLeaving(ran_on=ran_on, **counts)
