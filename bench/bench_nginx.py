"""What nginx adds to an event stream: first byte and per-event latency, 1,000 streams open.

Lesson 08 claims that nginx, configured for event streams (`SSE_PROXY`: HTTP/1.1 and keep-alive
to the app, no buffering), passes each event on at once, so a proxy in front costs a user
nothing they could notice. This measures it, with the same app reached directly and through
nginx, in the same run:

- N streams held open through the path under test (`server.clients.load.HeldStreams`),
  `/events?interval=1`: an event a second each, N events a second through the app (and nginx);
- beside them, P short probe streams, one after another, each on a new connection:
  `/events?limit=6&interval=0.02` of `server.apps.stamped_events`, whose events carry the time
  they were sent. Time to first byte: from sending the request to the first event parsed.
  Per-event latency: received minus sent (`server.clients.delivery_times`) for events 2 to 6, which
  the app sends while the stream is already open;
- added by nginx: the percentile through nginx minus the same percentile direct. Goal: added
  p99 per event at most 10 ms;
- nginx's memory per held stream (the worker's RSS, held minus before) and the load client's
  own CPU share (near 100%, the client, not the server, would be measured).

Direct and nginx alternate, `--rounds` times, so that a busy moment on a shared machine does
not land on one path only. One uvicorn worker for the app (uvloop and httptools), one nginx
worker (`worker_connections 4096`, `worker_rlimit_nofile 8192`); all on loopback. Linux only
(RSS from /proc). Numbers are reported, never asserted.

Run: `.venv/bin/python bench/bench_nginx.py` (`--streams 1000 --probes 200 --rounds 2`), or
`--smoke` for a few seconds with 50 streams, as `tests/test_nginx.py` does.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

import httpx2

from server.clients.delivery_times import Delivery, deliveries
from server.clients.load import HeldStreams, LoadSummary
from server.clients.measure import format_table, percentile
from server.clients.open_files import raise_open_files_limit as raise_limit
from server.course.launcher import Server, start_app, start_nginx
from server.course.nginx import SSE_PROXY, nginx_version

APP = "server.apps.stamped_events:app"
PROBE = "/events?limit=6&interval=0.02"
GOAL_MS = 10.0  # added p99 per event


@dataclass
class Route:
    """What one route to the app (direct, or through nginx) measured, over all its rounds."""

    name: str
    first_event: list[float] = field(default_factory=list)  # seconds, one per probe
    per_event: list[float] = field(default_factory=list)  # seconds late, events 2..6
    held: list[LoadSummary] = field(default_factory=list)
    failed_probes: int = 0
    rss_per_stream_kib: list[float] = field(default_factory=list)

    def p(self, values: list[float], q: float) -> float:
        return 1000 * percentile(values, q)


def rss_kib(pid: int) -> int:
    """Resident memory of process `pid` and its children (nginx's workers), in KiB."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(") ", 1)[1].split()
            status = (stat.parent / "status").read_text()
        except OSError:  # the process ended while we looked
            continue
        if int(stat.parent.name) == pid or int(fields[1]) == pid:
            total += next(int(line.split()[1]) for line in status.splitlines() if "VmRSS" in line)
    return total


def probe(url: str, count: int) -> tuple[list[list[Delivery]], int]:
    """`count` probe streams, one after another, each on a new connection; (results, failed)."""
    results, failed = [], 0
    no_reuse = httpx2.Limits(max_keepalive_connections=0)  # a new visitor each time
    with httpx2.Client(timeout=30, limits=no_reuse) as client:
        for _ in range(count):
            try:
                results.append(deliveries(url + PROBE, client=client))
            except httpx2.HTTPError:
                failed += 1
    return results, failed


async def measure(path: Route, base: str, streams: int, probes: int, rss_of: int | None) -> None:
    """Hold `streams` streams through `base`, run the probes beside them, add to `path`."""
    before = rss_kib(rss_of) if rss_of else 0
    async with HeldStreams(f"{base}/events?interval=1", streams) as held:
        await held.wait_for_events(1, timeout=60)
        if rss_of:
            path.rss_per_stream_kib.append((rss_kib(rss_of) - before) / max(1, streams))
        results, failed = await asyncio.to_thread(probe, base, probes)
    path.held.append(held.summary())
    path.failed_probes += failed
    for found in results:
        path.first_event.append(found[0].received)
        path.per_event += [d.late for d in found[1:]]


def report(direct: Route, proxied: Route, args: argparse.Namespace) -> None:
    version = ".".join(map(str, nginx_version()))
    print(
        f"{args.streams} streams held (an event a second each) beside {args.probes} probe "
        f"streams per path, {args.rounds} round(s); nginx {version}, one worker; Python "
        f"{platform.python_version()}, {os.cpu_count()} cores shared by app, nginx and client"
    )
    print(f"{direct.held[0].limit_note}\n")
    rows = []
    for what, values in [("first byte", "first_event"), ("per event", "per_event")]:
        d, n = getattr(direct, values), getattr(proxied, values)
        rows.append(
            {
                "ms": what,
                "direct p50": direct.p(d, 50),
                "nginx p50": proxied.p(n, 50),
                "added p50": proxied.p(n, 50) - direct.p(d, 50),
                "direct p99": direct.p(d, 99),
                "nginx p99": proxied.p(n, 99),
                "added p99": proxied.p(n, 99) - direct.p(d, 99),
            }
        )
    print(format_table(rows))
    added = proxied.p(proxied.per_event, 99) - direct.p(direct.per_event, 99)
    verdict = "met" if added <= GOAL_MS else "NOT met"
    print(f"\ngoal: added p99 per event <= {GOAL_MS:g} ms: {verdict} ({added:.2f} ms)\n")
    rows = [
        {
            "path": path.name,
            "held open": f"{min(s.opened for s in path.held)}/{args.streams}",
            "in order": min(s.in_order for s in path.held),
            "probe events": len(path.per_event) + len(path.first_event),
            "failed probes": path.failed_probes,
            "client CPU %": max(100 * s.cpu_share for s in path.held),
        }
        for path in (direct, proxied)
    ]
    print(format_table(rows))
    if proxied.rss_per_stream_kib:
        kib = sum(proxied.rss_per_stream_kib) / len(proxied.rss_per_stream_kib)
        print(f"\nnginx memory per held stream: {kib:.1f} KiB")
    for path in (direct, proxied):
        for summary in path.held:
            for error, count in summary.errors.items():
                print(f"  {path.name}: {count} streams: {error}")


async def run(app: Server, proxy: Server, args: argparse.Namespace) -> tuple[Route, Route]:
    direct, proxied = Route("direct"), Route("through nginx")
    await asyncio.to_thread(probe, app.url, 10)  # warm up both paths
    await asyncio.to_thread(probe, proxy.url, 10)
    for _ in range(args.rounds):
        await measure(direct, app.url, args.streams, args.probes // args.rounds, None)
        await measure(proxied, proxy.url, args.streams, args.probes // args.rounds, proxy.pid)
    return direct, proxied


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=1000, help="streams held open")
    parser.add_argument("--probes", type=int, default=200, help="probe streams per path")
    parser.add_argument("--rounds", type=int, default=2, help="direct/nginx alternations")
    parser.add_argument("--smoke", action="store_true", help="50 streams, a few seconds (CI)")
    args = parser.parse_args()
    if args.smoke:
        args.streams, args.probes, args.rounds = 50, 10, 1

    raise_limit()  # before starting the servers: they inherit it
    with (
        start_app(APP, name="bench-stamped") as app,
        start_nginx(
            [app],
            location=SSE_PROXY,
            worker_connections=4096,
            main="worker_rlimit_nofile 8192;",
        ) as proxy,
    ):
        direct, proxied = asyncio.run(run(app, proxy, args))
    report(direct, proxied, args)


if __name__ == "__main__":
    main()
