"""The same chat over WebSocket and over SSE, on one worker: memory per idle connection,
messages per second and CPU per message, side by side in one run (lesson 10).

The app is `server.apps.ws_chat` (one uvicorn worker, uvicorn's defaults: uvloop, httptools,
the websockets sans-I/O implementation with permessage-deflate offered). Both transports read
the same room from the same in-memory hub, so only the transport differs. The load clients
are as alike as can be: `server.clients.load.HeldStreams` for SSE and
`server.clients.ws_load.HeldSockets` for WebSocket, both raw asyncio sockets in this process;
the WebSocket client does not ask for compression (a browser would, see the lesson's bytes).

For each transport, in turn, on a fresh server:

1. **idle**: open `--idle` connections that receive nothing; the server's RSS (VmRSS from
   /proc) with them open, minus before, over the number open: memory per idle connection;
2. **burst**: `--clients` connections; one `POST /messages` asks for a reply of `--tokens`
   tokens with no pacing (`TOKEN_DELAY=0`); each client receives tokens + 2 messages. From
   the POST to the last message at every client: delivered messages per second, and the
   server's CPU seconds (its own `time.process_time()`, from `/stats`) per delivered message.

The measurement is `server.course.transport_costs.measure`, which lesson 10 runs at a smaller
scale. Numbers are reported, never asserted. Linux only (RSS from /proc). Run:
`.venv/bin/python bench/bench_ws_vs_sse.py` (`--idle 1000 --clients 100 --tokens 2000`), or
`--smoke` (a few seconds), as `tests/test_ws_chat.py` does.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform

from server.clients.measure import format_table
from server.clients.open_files import raise_open_files_limit
from server.course.transport_costs import WorkerCost, worker_costs


def report(results: list[WorkerCost], idle: int, clients: int, tokens: int) -> None:
    print(
        f"server.apps.ws_chat on one uvicorn worker; Python {platform.python_version()}, "
        f"{os.cpu_count()} cores shared by the server and this client\n"
    )
    rows = [
        {
            "transport": r.transport,
            "idle open": f"{r.idle_open}/{idle}",
            "KiB/idle conn": r.kib_per_idle,
            "clients": r.clients,
            "delivered": r.delivered,
            "msgs/s": round(r.per_second),
            "server CPU µs/msg": r.cpu_us_per_message,
            "client CPU s": f"{r.client_cpu:.2f}",
        }
        for r in results
    ]
    print(format_table(rows))
    sse, ws = results
    print(
        f"\nWebSocket / SSE, same run: memory per idle connection "
        f"{ws.kib_per_idle / sse.kib_per_idle if sse.kib_per_idle else float('nan'):.2f}x, "
        f"messages/s {ws.per_second / sse.per_second if sse.per_second else float('nan'):.2f}x, "
        f"server CPU per message "
        f"{ws.cpu_us_per_message / sse.cpu_us_per_message if sse.cpu_us_per_message else 0:.2f}x"
        f"  ({clients} clients x {tokens + 2} messages)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--idle", type=int, default=1000, help="idle connections held")
    parser.add_argument("--clients", type=int, default=100, help="clients in the burst")
    parser.add_argument("--tokens", type=int, default=2000, help="tokens in the burst's reply")
    parser.add_argument("--smoke", action="store_true", help="a few seconds (CI)")
    args = parser.parse_args()
    if args.smoke:
        args.idle, args.clients, args.tokens = 50, 10, 100
    raise_open_files_limit()  # before starting the servers: they inherit it
    results = asyncio.run(worker_costs(args.idle, args.clients, args.tokens))
    report(results, args.idle, args.clients, args.tokens)


if __name__ == "__main__":
    main()
