"""What the LLM relay costs: the relay against calling the local upstream directly.

Two measurements, each side by side with the direct call, in one run:

1. Added time to first token, sequential requests: the time from sending a request to the
   first text delta, directly from `server.apps.fake_openai` and through `server.apps.llm_relay`
   (median and p99 of the difference).
2. Throughput with many streams: 200 concurrent streams on one relay worker, tokens per
   second reaching the clients, against the same 200 streams read from the upstream directly,
   with the CPU time each process spent per token (Linux only: read from /proc), which shows
   who the bottleneck is.

The upstream is configured to cost nothing (no time to first token, no pacing), so what is
measured is the relay: reading and parsing each upstream chunk, the SSE encoding, the ASGI
sends, the extra hop. Goals (issue 25), as ratios that survive a noisy shared machine: added
TTFT p99 <= 5 ms; relayed tokens/s at least 0.6 of direct in the same run; the relay's CPU
per token at most the upstream's (the fake model: a JSON chunk and a write per token).

The clients are raw asyncio sockets (HTTP/1.1, `Connection: close`) so that their own cost is
small and the same for both paths. Run: `.venv/bin/python bench/bench_relay.py`
(`--requests 300 --streams 200 --tokens 200` are the defaults).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from urllib.parse import quote

from server.clients.measure import cpu_seconds
from server.course.launcher import Server, start_app
from server.seed_texts import PROMPT

DIRECT_DELTA = b'"delta":{"content":"'  # a chunk with text (the first, role-only, has "")
RELAY_DELTA = b'data: {"delta":'


def chat_request(llm: Server, prompt: str = PROMPT) -> bytes:
    body = json.dumps(
        {"model": "m", "messages": [{"role": "user", "content": prompt}], "stream": True}
    ).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{llm.port}\r\n"
        f"Authorization: Bearer sk-bench\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def relay_request(relay: Server, prompt: str = PROMPT) -> bytes:
    return (
        f"GET /chat?message={quote(prompt)} HTTP/1.1\r\nHost: 127.0.0.1:{relay.port}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()


async def one_stream(port: int, request: bytes, marker: bytes) -> tuple[float, int]:
    """Send `request`; return (seconds to the first `marker`, number of markers in all)."""
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    first = None
    received = bytearray()
    while chunk := await reader.read(65536):
        received += chunk
        if first is None and marker in received:
            first = time.perf_counter() - started
    writer.close()
    await writer.wait_closed()
    return (first if first is not None else float("nan")), received.count(marker)


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


async def ttft(llm: Server, relay: Server, requests: int) -> dict[str, list[float]]:
    """Sequential requests, alternating direct and relayed so both see the same machine."""
    direct_req, relay_req = chat_request(llm), relay_request(relay)
    times: dict[str, list[float]] = {"direct": [], "relay": []}
    for i in range(requests + 20):
        d, _ = await one_stream(llm.port, direct_req, DIRECT_DELTA)
        r, _ = await one_stream(relay.port, relay_req, RELAY_DELTA)
        if i >= 20:  # warm-up: imports, connection pools, caches
            times["direct"].append(d)
            times["relay"].append(r)
    return times


async def throughput(port: int, request: bytes, marker: bytes, streams: int) -> tuple[int, float]:
    started = time.perf_counter()
    results = await asyncio.gather(*(one_stream(port, request, marker) for _ in range(streams)))
    return sum(count for _, count in results), time.perf_counter() - started


def cpu_times(*servers: Server) -> list[float]:
    """CPU seconds so far of this process (the clients), then of each server."""
    return [time.process_time(), *(cpu_seconds(server.pid) for server in servers)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="sequential TTFT requests")
    parser.add_argument("--streams", type=int, default=200, help="concurrent streams")
    parser.add_argument("--tokens", type=int, default=200, help="tokens per streamed reply")
    args = parser.parse_args()

    fast = {"FAKE_OPENAI_TTFT": "0", "FAKE_OPENAI_TPS": "0", "FAKE_OPENAI_TOKENS": "8"}
    with start_app("server.apps.fake_openai:app", env=fast, name="bench-upstream") as llm:
        relay_env = {"OPENAI_BASE_URL": f"{llm.url}/v1", "OPENAI_API_KEY": "sk-bench"}
        with start_app("server.apps.llm_relay:app", env=relay_env, name="bench-relay") as relay:
            times = asyncio.run(ttft(llm, relay, args.requests))
    added = [r - d for d, r in zip(times["direct"], times["relay"], strict=True)]
    print(f"time to first token, {args.requests} sequential requests (ms)")
    print(f"  {'':10} {'median':>8} {'p99':>8}")
    for name, values in (*times.items(), ("added", added)):
        print(f"  {name:10} {1000 * statistics.median(values):8.2f} {1000 * p99(values):8.2f}")

    # Long replies of many tokens: the upstream's generated text, not the canned greeting.
    many = {**fast, "FAKE_OPENAI_TOKENS": str(args.tokens)}
    with start_app("server.apps.fake_openai:app", env=many, name="bench-upstream") as llm:
        relay_env = {"OPENAI_BASE_URL": f"{llm.url}/v1", "OPENAI_API_KEY": "sk-bench"}
        with start_app("server.apps.llm_relay:app", env=relay_env, name="bench-relay") as relay:
            long_direct = chat_request(llm, "tell me more")
            long_relay = relay_request(relay, "tell me more")
            rows = []
            for name, port, request, marker in (
                ("direct", llm.port, long_direct, DIRECT_DELTA),
                ("relay", relay.port, long_relay, RELAY_DELTA),
            ):
                before = cpu_times(llm, relay)
                tokens, seconds = asyncio.run(throughput(port, request, marker, args.streams))
                cpu = [b - a for a, b in zip(before, cpu_times(llm, relay), strict=True)]
                rows.append((name, tokens, seconds, [1e6 * c / tokens for c in cpu]))
    print(f"\n{args.streams} concurrent streams of {args.tokens}+ tokens, one worker each")
    print("  (CPU time per token spent by the clients, the upstream and the relay, in µs)")
    head = ("tokens", "seconds", "tokens/s", "client", "upstream", "relay")
    print(f"  {'':10}" + "".join(f" {h:>9}" for h in head))
    for name, tokens, seconds, micros in rows:
        cells = "".join(f" {m:9.1f}" for m in micros)
        print(f"  {name:10} {tokens:9} {seconds:9.2f} {tokens / seconds:9.0f}{cells}")

    rates = [tokens / seconds for _, tokens, seconds, _ in rows]
    upstream_cpu, relay_cpu = rows[1][3][1], rows[1][3][2]  # both while relaying
    print(f"\n  relayed/direct tokens/s {rates[1] / rates[0]:.2f}", end="; ")
    # (CPU time is counted in clock ticks: a smoke run's upstream may show none)
    print(f"relay/upstream CPU per token {relay_cpu / max(upstream_cpu, 1e-9):.2f}")
    goals = (
        ("added TTFT median <= 5 ms", statistics.median(added) <= 0.005),
        ("added TTFT p99 <= 5 ms", p99(added) <= 0.005),
        ("relayed tokens/s >= 0.6 of direct", rates[1] >= 0.6 * rates[0]),
        ("relay CPU per token <= the upstream's", relay_cpu <= upstream_cpu),
    )
    print()
    for goal, met in goals:
        print(f"  {'met' if met else 'MISSED':6}  {goal}")


if __name__ == "__main__":
    main()
