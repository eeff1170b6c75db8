"""Holding 1,000 open SSE streams on one worker: Django ASGI (lesson 07) beside FastAPI (lesson 04).

Lesson 07 claims that under ASGI an open stream costs no thread, so one uvicorn worker holds
a thousand of them and still answers a plain page in milliseconds. This measures it, side by
side with lesson 04's FastAPI app on the same machine in the same run:

- plain request latency, p50 and p99 of sequential requests each on a new connection, with no
  stream open and then with N held (Django: the sync view `/`, which runs in a thread, and
  `/async-plain`; FastAPI: `/ping`);
- the server's memory per held stream: the uvicorn process's RSS (VmRSS in /proc) with the
  streams open, minus before, over N;
- that every stream stayed alive and in order: each must receive two events, ids 1 then 2;
- the load generator's own CPU time, so that a saturated client is not taken for a slow server.

The streams are `/events?interval=5`: one event at once, then one every 5 s, so the test is
about holding streams, not throughput. The clients are `server.clients.load` (raw asyncio
sockets, parsed by `server.sse.Decoder`) in this process; each server is one uvicorn worker
with uvicorn's defaults (uvloop and httptools where installed). Numbers are reported, never
asserted: compare the ratios. Linux only (RSS from /proc).

Run: `.venv/bin/python bench/bench_streams_held.py` (`--streams 1000 --requests 1000`), or
`--smoke` for a few seconds with 50 streams, as `tests/test_load.py` does.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
from dataclasses import dataclass

from server.clients.load import HeldStreams, Latency, LoadSummary, plain_latency
from server.clients.measure import format_table, rss_kib
from server.clients.open_files import raise_open_files_limit as raise_limit
from server.course.launcher import Server, start_app

APPS = (  # name, import string, plain pages
    ("Django ASGI", "server.apps.django_streams.asgi:application", ("/", "/async-plain")),
    ("FastAPI", "server.apps.fastapi_streams:app", ("/ping",)),
)
WARM_UP = 20  # requests and streams before measuring: imports, caches, first allocations


@dataclass
class Run:
    name: str
    idle: dict[str, Latency]
    held: dict[str, Latency]
    rss_before: int  # KiB
    rss_held: int
    streams: LoadSummary
    alive: int  # streams that got their second event and were still open at the end

    @property
    def kib_per_stream(self) -> float:
        return (self.rss_held - self.rss_before) / max(1, self.streams.opened)


async def measure(
    name: str, server: Server, pages: tuple[str, ...], n: int, interval: float, requests: int
) -> Run:
    for page in pages:
        await plain_latency(server.url + page, WARM_UP)
    async with HeldStreams(f"{server.url}/events?limit=1&interval=0", WARM_UP) as warm:
        await warm.wait_for_events(1, timeout=30)
    idle = {page: await plain_latency(server.url + page, requests) for page in pages}
    rss_before = rss_kib(server.pid)
    async with HeldStreams(f"{server.url}/events?interval={interval:g}", n) as held:
        await held.wait_for_events(1, timeout=30)
        rss_held = rss_kib(server.pid)
        busy = {page: await plain_latency(server.url + page, requests) for page in pages}
        await held.wait_for_events(2, timeout=2 * interval + 30)
    alive = sum(r.events >= 2 and r.error is None and not r.ended for r in held.records)
    return Run(name, idle, busy, rss_before, rss_held, held.summary(), alive)


def ms(seconds: float) -> float:
    return 1000 * seconds


def ratio(ours: float, theirs: float) -> str:
    """`ours / theirs` as "1.23x"; "n/a" when it is not a finite number (nothing measured)."""
    value = ours / theirs if theirs else math.nan
    return f"{value:.2f}x" if math.isfinite(value) else "n/a"


def report(runs: list[Run], n: int, interval: float, requests: int) -> None:
    print(
        f"{n} streams of /events?interval={interval:g} held on one uvicorn worker each; "
        f"Python {platform.python_version()}, {os.cpu_count()} cores shared by the servers "
        f"and this client; {runs[0].streams.limit_note}"
    )
    print(f"\nplain request latency, {requests} sequential requests on new connections (ms)\n")
    rows = [
        {
            "server": run.name,
            "page": page,
            "p50 idle": ms(run.idle[page].p50),
            "p99 idle": ms(run.idle[page].p99),
            f"p50 {n} held": ms(run.held[page].p50),
            f"p99 {n} held": ms(run.held[page].p99),
            "failed": run.idle[page].errors + run.held[page].errors,
        }
        for run in runs
        for page in run.idle
    ]
    print(format_table(rows))
    print("\nstreams, server memory, and the client's own cost\n")
    rows = [
        {
            "server": run.name,
            "open": f"{run.streams.opened}/{run.streams.asked}",
            "in order": run.streams.in_order,
            "alive": run.alive,
            "events": run.streams.events,
            "RSS idle MiB": run.rss_before / 1024,
            "RSS held MiB": run.rss_held / 1024,
            "KiB/stream": run.kib_per_stream,
            "connect p99 ms": ms(run.streams.connect_p99),
            "client CPU s": f"{run.streams.cpu_seconds:.2f}",
            "client CPU %": 100 * run.streams.cpu_share,
        }
        for run in runs
    ]
    print(format_table(rows))
    for run in runs:
        for error, count in run.streams.errors.items():
            print(f"  {run.name}: {count} streams: {error}")
    django, fastapi = runs
    print("\nDjango ASGI / FastAPI, same run (above 1: Django is slower or bigger)\n")
    print(f"memory per held stream: {ratio(django.kib_per_stream, fastapi.kib_per_stream)}")
    idle, held = fastapi.idle["/ping"], fastapi.held["/ping"]
    rows = [
        {
            "latency vs /ping": page,
            "p50 idle": ratio(django.idle[page].p50, idle.p50),
            "p99 idle": ratio(django.idle[page].p99, idle.p99),
            f"p50 {n} held": ratio(django.held[page].p50, held.p50),
            f"p99 {n} held": ratio(django.held[page].p99, held.p99),
        }
        for page in django.idle
    ]
    print(format_table(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=1000, help="streams held per server")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between events")
    parser.add_argument("--requests", type=int, default=1000, help="plain requests per page")
    parser.add_argument("--smoke", action="store_true", help="50 streams, a few seconds (CI)")
    args = parser.parse_args()
    if args.smoke:
        args.streams, args.interval, args.requests = 50, 1.0, 20

    raise_limit()  # before starting the servers: they inherit it
    runs = []
    for name, app, pages in APPS:
        with start_app(app, name=f"bench-{name.split()[0].lower()}") as server:
            run = measure(name, server, pages, args.streams, args.interval, args.requests)
            runs.append(asyncio.run(run))
    report(runs, args.streams, args.interval, args.requests)


if __name__ == "__main__":
    main()
