"""A capstone reply read over HTTP the way its page reads it: one connection, or resumed.

Lesson 11 sends chats the way `capstone.js` does, with `httpx2`, so that each step can be
checked: a user is a client that keeps its session cookie; a reply is read from its event
stream until its last event (``done``, ``error`` or ``stopped``); when the connection breaks
(a worker killed), the reader connects again with ``Last-Event-ID`` set to the last id it saw,
and the server sends only what came after it. Each event's arrival time is kept, for time to
first token and for "streamed, not one burst".
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx2

from server.sse import Decoder, Event

TERMINAL = ("done", "error", "stopped")
RESUMABLE = (502, 503, 504)  # nginx had no live worker for this attempt


def new_user(url: str, timeout: float = 30) -> httpx2.Client:
    """A browser of its own: a client that keeps the session cookie the chat gives it."""
    client = httpx2.Client(base_url=url, timeout=timeout)
    client.get("/api/session").raise_for_status()
    return client


@dataclass
class Reply:
    """What one user read of one reply: its events, when each arrived, over how many
    connections."""

    events: list[Event] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    connections: int = 0

    @property
    def ended(self) -> bool:
        return bool(self.events) and self.events[-1].event in TERMINAL

    @property
    def tokens(self) -> list[dict[str, Any]]:
        return [json.loads(e.data) for e in self.events if e.event == "message"]

    @property
    def text(self) -> str:
        return "".join(token["delta"] for token in self.tokens)

    def first_token_at(self, after: float = 0.0) -> float:
        """When the first token arriving after `after` (a perf_counter time) arrived."""
        return next(
            t for e, t in zip(self.events, self.arrivals, strict=True)
            if e.event == "message" and t > after
        )  # fmt: skip


def read_reply(
    client: httpx2.Client, path: str, reply: Reply | None = None, stop_after: int | None = None
) -> Reply:
    """Read one connection of a reply stream, from `reply`'s last event id on, until the
    reply's last event (or `stop_after` tokens in all, or the connection ends)."""
    reply = reply or Reply()
    last_id = reply.events[-1].id if reply.events else ""
    headers = {"Last-Event-ID": last_id} if last_id else {}
    decoder = Decoder()
    with client.stream("GET", f"/{path}", headers=headers) as response:
        if response.status_code in RESUMABLE:
            raise httpx2.TransportError(f"{response.status_code} from the proxy")
        if response.status_code != 200:
            raise httpx2.HTTPStatusError(
                f"{response.status_code}: {response.read()!r}",
                request=response.request,
                response=response,
            )
        reply.connections += 1
        for chunk in response.iter_bytes():
            for event in decoder.feed(chunk):
                reply.events.append(event)
                reply.arrivals.append(time.perf_counter())
            if reply.ended or (stop_after is not None and len(reply.tokens) >= stop_after):
                break
    return reply


def resume_to_end(
    client: httpx2.Client, path: str, reply: Reply, deadline: float = 30, pause: float = 0.1
) -> Reply:
    """Reconnect with Last-Event-ID until the reply's last event, as the page does; a failed
    attempt (no worker answering yet) is retried after `pause` seconds, up to `deadline`."""
    give_up = time.perf_counter() + deadline
    while not reply.ended:
        if time.perf_counter() > give_up:
            raise TimeoutError(f"the reply did not end in {deadline} s")
        try:
            read_reply(client, path, reply)
        except httpx2.TransportError:
            time.sleep(pause)
    return reply
