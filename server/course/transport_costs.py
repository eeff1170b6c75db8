"""What a message costs over a WebSocket and over SSE + POST: bytes on the wire, and a worker's
memory, throughput and CPU. Lesson 10's measurements, and `bench/bench_ws_vs_sse.py`'s.

Seed 003 says SSE's "packets are small because there are no headers unlike the websocket".
Settling it takes the exact bytes each transport put on the wire, so `bytes_per_message` runs
the chat (`server.apps.ws_chat`) through a wiretap and counts them with
`server.clients.wire_bytes`, for small messages (the tokens of a reply) and 4 KB ones (user
messages), over a WebSocket without compression, one with `permessage-deflate`, and an SSE
stream whose messages go up as POSTs (counted by `server.clients.byte_meter`).

`measure` is the cost to a worker: memory per idle connection (resident memory before and after
holding them), then a burst of one reply to many clients (messages per second, and the
worker's CPU per message, read from its `/stats`). The clients are the raw-socket load clients
(`HeldStreams`, `HeldSockets`), of one design, so the comparison measures the server.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx2

from server.clients.byte_meter import CountingTransport, Meter
from server.clients.chat_transports import over_sse, over_websocket
from server.clients.load import HeldStreams
from server.clients.measure import rss_kib
from server.clients.wire_bytes import sse_bytes, websocket_bytes
from server.clients.ws_load import HeldSockets
from server.course.launcher import Server, start_app
from server.course.wiretap import Wiretap, start_wiretap

APP = "server.apps.ws_chat:app"
TRANSPORTS = ("SSE", "WebSocket")
# Five user messages of 4,000 bytes of varied text, and one user message with a 200-token reply.
LARGE = [
    " ".join(f"item {i}: {(i * 7919 + n) % 10007}" for i in range(300))[:4000] for n in range(5)
]
SIZES = {"token": (["hi"], 200), "4 KB": (LARGE, 0)}


def by_connection(tap: Wiretap) -> list[tuple[bytes, bytes]]:
    """(bytes up, bytes down) of each connection a wiretap carried, in the order they opened."""
    grouped: dict[int, list[bytes]] = {}
    for record in tap.records():
        pair = grouped.setdefault(record.connection, [b"", b""])
        if record.direction in ("up", "down"):
            pair[record.direction == "down"] += record.data
    return [(up, down) for up, down in grouped.values()]


@dataclass(frozen=True)
class MessageCost:
    """Bytes on the wire per message after the handshake; framing is all but the payload."""

    message: str  # "token" or "4 KB"
    transport: str  # "WebSocket", "WebSocket + deflate" or "SSE + POST"
    down_bytes: float
    down_framing: float
    up_bytes: float
    up_framing: float


async def bytes_per_message(app: Server) -> list[MessageCost]:
    """Per message size, three connections through a wiretap in front of `app`: a WebSocket
    without compression, one with permessage-deflate (the default of `websockets` and of every
    browser), and an SSE stream whose POSTs go around the tap and are counted by a meter."""
    costs = []
    for size, (texts, tokens) in SIZES.items():
        meter = Meter()
        async with httpx2.AsyncClient(transport=CountingTransport(meter), timeout=30) as poster:
            with start_wiretap(app) as tap:
                got = [
                    await over_websocket(tap.url, texts, tokens, compression=None),
                    await over_websocket(tap.url, texts, tokens),
                    await over_sse(tap.url, texts, tokens, poster=poster, post_url=app.url),
                ]
                connections = by_connection(tap)[:3]
        kind = "token" if size == "token" else "user"  # the messages of this size
        body = len(json.dumps({"text": texts[0], "tokens": tokens}).encode())
        names = ("WebSocket", "WebSocket + deflate", "SSE + POST")
        for name, messages, (up, down) in zip(names, got, connections, strict=True):
            keep = [m["type"] == kind for m in messages]
            counted_down = (sse_bytes if name == "SSE + POST" else websocket_bytes)(down)
            counted_down = counted_down.only(keep)
            if name == "SSE + POST":  # each message up is a whole POST: request and response
                up_bytes = meter.total / len(texts)
                up_framing = up_bytes - body
            else:  # every frame up is a user message
                counted_up = websocket_bytes(up)
                up_bytes, up_framing = counted_up.per_message, counted_up.framing_per_message
            costs.append(
                MessageCost(
                    size,
                    name,
                    counted_down.per_message,
                    counted_down.framing_per_message,
                    up_bytes,
                    up_framing,
                )
            )
    return costs


@dataclass
class WorkerCost:
    """One transport's cost to one worker: memory per idle connection, then one burst."""

    transport: str
    idle_open: int
    kib_per_idle: float
    clients: int
    delivered: int
    seconds: float
    server_cpu: float
    client_cpu: float

    @property
    def per_second(self) -> float:
        return self.delivered / self.seconds if self.seconds else 0.0

    @property
    def cpu_us_per_message(self) -> float:
        return 1e6 * self.server_cpu / self.delivered if self.delivered else 0.0


def held(transport: str, server: Server, n: int) -> Any:
    """`n` connections of `transport` to the chat's room, as an async context manager."""
    if transport == "SSE":
        return HeldStreams(f"{server.url}/events", n)
    return HeldSockets(f"{server.url}/ws", n)


def opened(connections: Any) -> int:
    """How many of the held connections opened."""
    if isinstance(connections, HeldStreams):
        return sum(r.connected is not None for r in connections.records)
    return int(connections.opened)


async def wait_for(connections: Any, count: int, timeout: float) -> bool:
    """True once every held connection received `count` messages, False after `timeout`."""
    if isinstance(connections, HeldStreams):
        return await connections.wait_for_events(count, timeout)
    return bool(await connections.wait_for_messages(count, timeout))


async def measure(
    transport: str, server: Server, idle: int, clients: int, tokens: int
) -> WorkerCost:
    """Hold `idle` connections (memory), then send one reply of `tokens` to `clients`."""
    async with httpx2.AsyncClient(base_url=server.url, timeout=30) as http:
        async with held(transport, server, 20) as warm:  # imports, first allocations
            await http.post("/messages", json={"text": "warm up", "tokens": 5})
            await wait_for(warm, 7, 30)
        before = rss_kib(server.pid)
        async with held(transport, server, idle) as connections:
            idle_open = opened(connections)
            await http.get("/stats")  # answered after the server has handled every open
            kib = (rss_kib(server.pid) - before) / max(1, idle_open)
        async with held(transport, server, clients) as connections:
            cpu = (await http.get("/stats")).json()["cpu_seconds"]
            started = time.perf_counter()
            await http.post("/messages", json={"text": "go", "tokens": tokens})
            done = await wait_for(connections, tokens + 2, 120)
            seconds = time.perf_counter() - started
            cpu = (await http.get("/stats")).json()["cpu_seconds"] - cpu
            records = connections.records
            delivered = sum(getattr(r, "events", getattr(r, "messages", 0)) for r in records)
        if not done:
            print(f"  {transport}: not every client got all {tokens + 2} messages in time")
    client_cpu = (
        connections.summary().cpu_seconds if transport == "SSE" else connections.cpu_seconds
    )
    return WorkerCost(transport, idle_open, kib, clients, delivered, seconds, cpu, client_cpu)


@contextmanager
def fresh_worker(transport: str, tokens: int) -> Iterator[Server]:
    """A chat worker that served nothing yet (memory is measured best on such a process)."""
    env = {"BROKER": "memory", "TOKEN_DELAY": "0", "QUEUE_SIZE": str(tokens + 100)}
    with start_app(APP, env=env, name=f"bench-{transport.lower()}") as server:
        yield server


async def worker_costs(idle: int = 200, clients: int = 10, tokens: int = 1000) -> list[WorkerCost]:
    """`measure` for SSE, then WebSocket, each on a fresh worker."""
    results = []
    for transport in TRANSPORTS:
        with fresh_worker(transport, tokens) as server:
            results.append(await measure(transport, server, idle, clients, tokens))
    return results
