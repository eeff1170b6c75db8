"""100,000 open SSE streams on one machine, through nginx, and one broadcast to all of them.

Lesson 09 plans a million users from what one worker holds. This bench holds the next order of
magnitude for real, with the course's own stack on loopback (issue 25): the broadcast app
(`server.apps.broadcast`) on several uvicorn workers, fanned out through Redis Streams, behind
one nginx with several worker processes, and the listeners in processes of their own
(`server.clients.broadcast_load`: every delivery timed, every stream's sequence checked).

The limits, each met on the way and sized for here, not hidden:

- **Open files**, per process (`ulimit -n`; 20,000 soft = hard on the course machine, and an
  ordinary user cannot raise the hard one). Every socket is a descriptor, so an app worker
  holds at most about 19,900 streams, a listener process as many, and an nginx worker half
  that: each proxied stream is two sockets (client side and upstream side). So nginx runs
  `ceil(2 N / (0.75 x 19,900))` workers (14 for 100,000), `worker_connections` just under the
  limit and `worker_rlimit_nofile` equal to it. (Asking nginx for more than the hard limit
  does not fail: each worker logs `setrlimit(RLIMIT_NOFILE, ...) failed (1: Operation not
  permitted)` and runs with the old limit, and since the config says more, nginx no longer
  warns that `worker_connections` exceed it: the first sign is `accept4() failed (24: Too
  many open files)` under load.)
- **Ephemeral ports**: a connection is (source address, source port, destination address,
  destination port), and a connect picks its source port from `ip_local_port_range`
  (28,232 here). So at most about 28,000 streams from 127.0.0.1 to one nginx port: nginx
  listens on one port per listener process (12,500 streams each), with `reuseport`, so the
  kernel spreads each port's connections evenly over nginx's workers (without it, the worker
  that wakes first takes them, and one can reach its descriptor limit while others idle).
- **The listen backlog**: connects not yet accepted wait in the listening socket's queue
  (nginx's `backlog`, 511 by default on Linux, capped by `somaxconn`, 4,096 here). A burst
  that overflows it is not refused: the SYN is dropped and retried after 1 s. The bench
  reports the kernel's `ListenOverflows` and the connects that took over 1 s.
- **Memory**: RSS of each app worker and nginx worker before and with the streams held (KiB
  per stream), the listeners' RSS, and "all": those plus the kernel's TCP buffers; beside it
  the machine's `MemAvailable` difference over the streams held, which on a shared machine
  moves with everyone else's work too (it can even fall below zero). A watchdog stops the
  listeners (by PID) if available memory falls under `--min-available-gib`.
- **CPU**, the limit a shared 2-core machine meets first: a heartbeat is a write in the app, in
  nginx and in the listener, and 100,000 streams at the app's 15 s are 6,700 a second. At a
  load average of 20 the listeners then got too little CPU to finish their last connects
  within `--connect-timeout`; `--heartbeat 60` (safe behind nginx's 1 h read timeout) is a
  quarter of that work. Each step reports the CPU of holding the streams idle.

The streams are added in steps (1/8, 1/4, 1/2, 3/4, all), and at each step `--messages`
broadcasts go out one at a time, each waited for at every stream before the next: delivery
delay p50/p99/max (publish to arrival, one clock), deliveries lost (0: every stream checks
its numbers). The steps are the growth plot (`bench/capacity_100k.png`) and the JSON beside
it (`bench/bench_100k.json`), which lesson 09 reads.

The machine is shared (2 cores, with other work): every step records the load average.

Run: `.venv/bin/python bench/bench_100k.py --heartbeat 60 --messages 2 --idle 3` (about 7
minutes and 6 GiB at a load average of 16; bench/README.md), `--streams 20000` for less,
`--smoke` for 3,000 streams in under a minute (tests/test_bench_runs.py). Exits 1 when a
stream did not open or a delivery was lost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import redis as redis_sync

from server.clients.broadcast_load import LoadProcesses, Report, publish_paced
from server.clients.machine import (
    Snapshot,
    available_kib,
    open_descriptors,
    port_range,
    somaxconn,
)
from server.clients.measure import cpu_seconds, format_table, percentile, rss_kib
from server.clients.open_files import RESERVED_FILES, raise_open_files_limit
from server.course.cluster import start_workers, upstreams
from server.course.launcher import Server, start_nginx, start_redis
from server.course.ports import LOOPBACK, free_port

ROOM = "server.apps.broadcast:app"
HERE = Path(__file__).resolve().parent
NGINX_SHARE = 0.75  # of an nginx worker's descriptors planned for: reuseport's hash is uneven
STEPS = (1 / 8, 1 / 4, 1 / 2, 3 / 4, 1)  # of the listener processes, added step by step


@dataclass(frozen=True)
class Plan:
    """How many of each process `streams` need under an open-files limit of `files`."""

    streams: int
    files: int
    app_workers: int
    clients: int  # listener processes, one nginx port each
    nginx_workers: int

    @classmethod
    def make(cls, streams: int, files: int, app_workers: int, per_client: int) -> Plan:
        usable = files - RESERVED_FILES
        if math.ceil(streams / app_workers) > usable or per_client > usable:
            raise SystemExit(
                f"{streams:,} streams on {app_workers} app workers, {per_client:,} per listener"
                f" process: over the open-files limit ({files:,}); add --app-workers"
            )
        nginx = math.ceil(2 * streams / (NGINX_SHARE * usable))
        return cls(streams, files, app_workers, math.ceil(streams / per_client), max(2, nginx))

    def shares(self) -> list[int]:
        """Each listener process's streams, as even as they go."""
        return [self.streams // self.clients + (i < self.streams % self.clients)
                for i in range(self.clients)]  # fmt: skip

    def steps(self, growth: bool = True) -> list[int]:
        """How many listener processes are open at each step (one step of all: no growth)."""
        if not growth:
            return [self.clients]
        return sorted({max(1, math.ceil(f * self.clients)) for f in STEPS})

    def limits(self) -> list[dict[str, object]]:
        """Each limit, what it allows, and what this plan asks of it."""
        low, high = port_range()
        usable = self.files - RESERVED_FILES
        per_nginx = math.ceil(self.streams / self.nginx_workers)
        return [
            {"limit": "open files per process (soft = hard)", "allows": f"{self.files:,}",
             "asked": f"app worker {math.ceil(self.streams / self.app_workers):,} streams, "
                      f"listener {max(self.shares()):,}, nginx worker ~{2 * per_nginx:,}"},
            {"limit": "streams per nginx worker (2 descriptors each)",
             "allows": f"{usable // 2:,}", "asked": f"~{per_nginx:,} x {self.nginx_workers}"},
            {"limit": "ephemeral ports per destination", "allows": f"{high - low + 1:,}",
             "asked": f"{max(self.shares()):,} (one nginx port per listener process)"},
            {"limit": "somaxconn (listen backlog ceiling)", "allows": f"{somaxconn():,}",
             "asked": "nginx backlog per port and worker (reuseport)"},
        ]  # fmt: skip


class MemoryWatch:
    """Stop the listeners (by PID) if the machine's available memory falls under a floor."""

    def __init__(self, floor_kib: int) -> None:
        self.floor_kib = floor_kib
        self.loads: list[LoadProcesses] = []
        self.tripped: str | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="memory watch", daemon=True)

    def _watch(self) -> None:
        while not self._done.wait(0.5):
            left = available_kib()
            if left < self.floor_kib:
                self.tripped = f"available memory {left / 2**20:.1f} GiB under the floor"
                for load in list(self.loads):
                    for process in load.processes:
                        process.kill()
                return

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._thread.join()


@contextmanager
def stack(
    plan: Plan, backlog: int, heartbeat: float
) -> Iterator[tuple[dict[str, Server], Server, list[int], Server]]:
    """Redis, the app workers and nginx (one extra port per listener process), all by PID."""
    with ExitStack() as stop, start_redis() as redis:
        env = {"BROKER": "streams", "REDIS_URL": redis.url, "HEARTBEAT": str(heartbeat)}
        names = [f"w{i}" for i in range(plan.app_workers)]
        workers = start_workers(ROOM, names, env=env)
        for worker in workers.values():
            stop.enter_context(worker)
        ports = [free_port(LOOPBACK) for _ in range(plan.clients)]
        listens = "\n".join(f"listen {LOOPBACK}:{p} reuseport backlog={backlog};" for p in ports)
        nginx = stop.enter_context(
            start_nginx(
                upstreams(workers),
                server=listens,
                worker_processes=plan.nginx_workers,
                worker_connections=plan.files - RESERVED_FILES,
                main=f"worker_rlimit_nofile {plan.files};",
            )
        )
        yield workers, nginx, ports, redis


def nginx_workers(nginx: Server) -> list[int]:
    return [child.pid for child in psutil.Process(nginx.pid).children()]


def hub_clients(worker: Server) -> int:
    """How many streams this app worker's hub holds now (its /stats)."""
    with urllib.request.urlopen(worker.url + "/stats", timeout=30) as answer:
        return int(json.load(answer)["hub"]["clients"])


def open_listeners(
    urls: list[str], shares: list[int], opening: int, timeout: float
) -> list[LoadProcesses]:
    """One listener process per URL, opened side by side; each holds its share of streams."""

    def one(pair: tuple[str, int]) -> LoadProcesses:
        return LoadProcesses(
            pair[0], pair[1], processes=1, opening=opening, connect_timeout=timeout
        )

    with ThreadPoolExecutor(max_workers=max(1, len(urls))) as pool:
        return list(pool.map(one, zip(urls, shares, strict=True)))


def ms(seconds: float) -> float:
    return round(1000 * seconds, 1)


def measure_step(
    workers: dict[str, Server], nginx: Server, loads: list[LoadProcesses],
    base: dict[int, int], before: Snapshot, held: int,
) -> dict[str, Any]:  # fmt: skip
    """Memory and descriptors with `held` streams open, against the `base` RSS per pid."""
    apps = [w.pid for w in workers.values()]
    proxies = nginx_workers(nginx)
    clients = [p.pid for load in loads for p in load.processes]
    now = Snapshot.now()
    counts = [hub_clients(w) for w in workers.values()]
    app = sum(rss_kib(p) - base[p] for p in apps)
    proxy = sum(rss_kib(p) - base[p] for p in proxies)
    listeners = sum(rss_kib(p) for p in clients)
    return {
        "held": held,
        "app KiB/stream": app / held,
        "nginx KiB/stream": proxy / held,
        "listener KiB/stream": listeners / held,
        "all KiB/stream": (app + proxy + listeners + now.tcp_buffers_kib) / held,
        "machine KiB/stream": (before.available_kib - now.available_kib) / held,
        "kernel TCP buffers MiB": now.tcp_buffers_kib / 1024,
        "streams per app worker": f"{min(counts):,}-{max(counts):,}",
        "most fds: app": max(open_descriptors(p) for p in apps),
        "nginx": max(open_descriptors(p) for p in proxies),
        "listener": max(open_descriptors(p) for p in clients),
        "available GiB": now.available_kib / 2**20,
        "load": now.load[0],
    }


def broadcast(
    url: str, loads: list[LoadProcesses], seen: list[int], first: int, messages: int,
    pids: dict[str, list[int]], wait: float, run_id: str,
) -> tuple[Report, int, int, dict[str, float], float, int]:  # fmt: skip
    """`messages` broadcasts, one at a time, each waited for at every stream before the next.

    Returns the merged report, the deliveries expected, the next message number, and the CPU
    seconds each group of `pids` spent meanwhile, and the wall time."""
    for load in loads:
        load.report()  # from here on
    refused = 0
    started = time.monotonic()
    cpu = {name: sum(cpu_seconds(p) for p in group) for name, group in pids.items()}
    for _ in range(messages):
        refused += publish_one(url, first, run_id)
        first += 1
        for i, load in enumerate(loads):
            seen[i] += 1
            load.wait(seen[i], timeout=wait)  # one that fell short shows as lost below
    used = {name: sum(cpu_seconds(p) for p in group) - cpu[name] for name, group in pids.items()}
    report = Report.merge([load.report() for load in loads])
    expected = messages * sum(load.opened for load in loads)
    return report, expected, first, used, time.monotonic() - started, refused


def publish_one(url: str, n: int, run_id: str, tries: int = 5) -> int:
    """POST `{"n", "t"}`; on a 503, again after its Retry-After, with the same body and
    `Idempotency-Key` (so a retry cannot store it twice). Returns the 503s it got.

    On a loaded machine a worker busy fanning out can read Redis's answer to XADD after the
    app's 2 s command timeout: the publisher gets a 503, as a real one would, and retries."""
    body = json.dumps({"n": n, "t": time.time()}).encode()
    headers = {"Content-Type": "application/json", "Idempotency-Key": f"{run_id}-{n}"}
    for refused in range(tries):
        request = urllib.request.Request(url, body, headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                if answer.status == 201:
                    return refused
        except urllib.error.HTTPError as error:
            if error.code != 503:
                raise RuntimeError(f"publish {n}: {error.code} {error.read()[:200]!r}") from None
            time.sleep(float(error.headers.get("Retry-After", "1")))
    raise RuntimeError(f"publish {n}: 503 {tries} times in a row")


def redis_work(redis: Server) -> tuple[int, int]:
    """(calls, µs) Redis has spent on XADD and XREAD so far (`INFO commandstats`): the fan-out's
    whole cost there, one XADD per publish and one XREAD per app worker per wake-up."""
    client = redis_sync.Redis.from_url(redis.url, socket_timeout=30)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    mine = [stats.get(f"cmdstat_{name}", {}) for name in ("xadd", "xread")]
    return sum(int(s.get("calls", 0)) for s in mine), sum(int(s.get("usec", 0)) for s in mine)


def idle_cpu(pids: dict[str, list[int]], seconds: float) -> dict[str, float]:
    """CPU seconds per second each group of `pids` spends holding its streams with nothing
    to send: the heartbeats (one per stream every 15 s), to subtract from a broadcast's."""
    cpu = {name: sum(cpu_seconds(p) for p in group) for name, group in pids.items()}
    time.sleep(seconds)
    return {
        name: (sum(cpu_seconds(p) for p in group) - cpu[name]) / seconds
        for name, group in pids.items()
    }


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (memory, delay) = plt.subplots(1, 2, figsize=(9, 3.4))
    x = [row["held"] for row in rows]
    for key, label in (("all KiB/stream", "all (+ kernel TCP buffers)"),
                       ("app KiB/stream", "app workers"), ("nginx KiB/stream", "nginx workers"),
                       ("listener KiB/stream", "listener processes")):  # fmt: skip
        memory.plot(x, [row[key] for row in rows], marker="o", label=label)
    delay.plot(x, [row["p99 ms"] for row in rows], marker="o", label="p99")
    delay.plot(x, [row["p50 ms"] for row in rows], marker="o", label="p50")
    delay.plot(x, [row["max ms"] for row in rows], marker=".", linestyle=":", label="max")
    memory.set(xlabel="streams held", ylabel="KiB per stream")
    memory.set_ylim(0, 1.5 * max(row["all KiB/stream"] for row in rows))  # room for the legend
    delay.set(xlabel="streams held", ylabel="one broadcast to all (ms)")
    delay.set_ylim(bottom=0)
    memory.legend(fontsize=8, loc="upper center", ncol=2)
    delay.legend(fontsize=8, loc="upper left")
    for axes in (memory, delay):
        axes.grid(alpha=0.3)
        axes.xaxis.set_major_formatter(lambda value, _: f"{value:,.0f}")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    print(f"\nplot: {path}")


def run(args: argparse.Namespace, plan: Plan, out: Path, picture: Path) -> int:
    """The stack, the steps, the tables; 0 when every stream opened and nothing was lost."""
    rows: list[dict[str, Any]] = []
    stopped: str | None = None
    started = time.monotonic()
    run_id = f"bench100k-{os.getpid()}-{int(time.time())}"
    servers = stack(plan, args.backlog, args.heartbeat)
    with servers as (workers, nginx, ports, redis), ExitStack() as held_open:
        apps = [w.pid for w in workers.values()]
        with LoadProcesses(nginx.url + "/events", 20 * plan.app_workers, processes=1):
            first = asyncio.run(publish_paced(nginx.url + "/publish", 1.0, 1.0, 0))  # warm-up
        base = {p: rss_kib(p) for p in apps + nginx_workers(nginx)}
        before = Snapshot.now()
        loads: list[LoadProcesses] = []
        seen: list[int] = []
        shares = plan.shares()
        watch = held_open.enter_context(MemoryWatch(int(args.min_available_gib * 2**20)))
        for step in plan.steps(not args.no_growth):
            new = range(len(loads), step)
            urls = [f"http://{LOOPBACK}:{ports[i]}/events" for i in new]
            connect_start = Snapshot.now()
            t0 = time.monotonic()
            try:
                added = open_listeners(
                    urls, [shares[i] for i in new], args.opening, args.connect_timeout
                )
            except RuntimeError as error:  # a listener process died: the watch, or a limit
                stopped = watch.tripped or f"a listener process failed: {error}"
                break
            connect_s = time.monotonic() - t0
            for load in added:
                held_open.enter_context(load)
            watch.loads += added
            loads += added
            seen += [0] * len(added)
            after_connect = Snapshot.now()
            opened = sum(load.opened for load in loads)
            connects = [ready["connect"] for load in added for ready in load.ready]
            errors = sorted({e for load in added for ready in load.ready for e in ready["errors"]})
            row = measure_step(workers, nginx, loads, base, before, max(1, opened))
            pids = {"app": apps, "nginx": nginx_workers(nginx),
                    "listeners": [p.pid for load in loads for p in load.processes]}  # fmt: skip
            idle = idle_cpu(pids, args.idle)
            redis_before = redis_work(redis)
            report, expected, first, used, wall, refused = broadcast(
                nginx.url + "/publish", loads, seen, first, args.messages, pids, args.wait,
                run_id,
            )  # fmt: skip
            deliveries = max(1, len(report.delays))
            cpu = {name: max(0.0, used[name] - idle[name] * wall) for name in used}
            redis_calls, redis_us = (
                after - before
                for after, before in zip(redis_work(redis), redis_before, strict=True)
            )
            row = {
                "asked": sum(shares[: len(loads)]),
                **row,
                "p50 ms": ms(percentile(report.delays, 50)),
                "p99 ms": ms(percentile(report.delays, 99)),
                "max ms": ms(max(report.delays, default=0.0)),
                "lost": expected - len(report.delays),
                "publishes refused (503), retried": refused,
                "out of order": sum(shares[: len(loads)]) - report.in_order,
                "problems": report.problems[:3],
                "app µs/delivery": 1e6 * cpu["app"] / deliveries,
                "nginx µs/delivery": 1e6 * cpu["nginx"] / deliveries,
                "listener µs/delivery": 1e6 * cpu["listeners"] / deliveries,
                "Redis µs/broadcast": redis_us / args.messages,
                "Redis calls/broadcast": redis_calls / args.messages,
                "idle CPU %: app": 100 * idle["app"],
                "idle nginx": 100 * idle["nginx"],
                "idle listeners": 100 * idle["listeners"],
                "connect s": round(connect_s, 1),
                "connect p99 ms": ms(max(c["p99"] for c in connects)),
                "connect max ms": ms(max(c["max"] for c in connects)),
                "connects over 1 s": sum(c["over_1s"] for c in connects),
                "listen overflows": after_connect.listen_overflows - connect_start.listen_overflows,
                "refused": errors[:3],
                "load after": os.getloadavg()[0],
            }
            rows.append(row)
            print(f"step {len(rows)}: {json.dumps(row, ensure_ascii=False)}", flush=True)
            if watch.tripped:
                stopped = watch.tripped
                break
    elapsed = time.monotonic() - started
    return report_run(args, plan, rows, stopped, elapsed, out, picture)


def report_run(
    args: argparse.Namespace, plan: Plan, rows: list[dict[str, Any]], stopped: str | None,
    elapsed: float, out: Path, picture: Path,
) -> int:  # fmt: skip
    """Print the tables, write the JSON and the plot; the exit status."""
    tables = {
        f"growth: {args.messages} broadcasts at each step, one at a time": (
            "asked", "held", "p50 ms", "p99 ms", "max ms", "lost", "out of order",
            "app KiB/stream", "nginx KiB/stream", "listener KiB/stream", "all KiB/stream",
            "machine KiB/stream", "load"),
        "connects and descriptors (most in one process) at each step": (
            "held", "connect s", "connect p99 ms", "connect max ms", "connects over 1 s",
            "listen overflows", "refused", "publishes refused (503), retried", "most fds: app",
            "nginx", "listener", "streams per app worker"),
        "CPU per delivery above idle, Redis per broadcast, CPU held idle (% of a core)": (
            "held", "app µs/delivery", "nginx µs/delivery", "listener µs/delivery",
            "Redis µs/broadcast", "Redis calls/broadcast", "idle CPU %: app", "idle nginx",
            "idle listeners"),
    }  # fmt: skip
    print(f"\n## limits\n\n{format_table(plan.limits())}")
    for title, columns in tables.items():
        print(f"\n## {title}\n\n{format_table([{k: row[k] for k in columns} for row in rows])}")
    final = rows[-1] if rows else {}
    lost = sum(abs(row["lost"]) + row["out of order"] for row in rows)
    complete = bool(rows) and final["held"] == plan.streams and lost == 0
    print(
        f"\nstreams held: {final.get('held', 0):,} of {plan.streams:,}; lost: {lost}; "
        f"{elapsed:.0f} s; load average {os.getloadavg()[0]:.1f}"
    )
    if stopped:
        print(f"stopped: {stopped}")
    for row in rows:
        if row["problems"] or row["refused"]:
            print(f"at {row['held']:,}: problems {row['problems']}, refused {row['refused']}")
    result = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "plan": vars(plan)
        | {"backlog": args.backlog, "messages": args.messages, "heartbeat": args.heartbeat},
        "limits": plan.limits(),
        "steps": rows,
        "stopped": stopped,
        "complete": complete,
        "seconds": round(elapsed),
    }
    out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print(f"json: {out}")
    if len(rows) > 1:
        title = (f"{plan.app_workers} app workers, {plan.nginx_workers} nginx workers, "
                 f"{plan.clients} listener processes, Redis Streams; {os.cpu_count()} cores, "
                 f"shared (load average {min(r['load'] for r in rows):.0f}-"
                 f"{max(r['load'] for r in rows):.0f})")  # fmt: skip
        plot(rows, picture, title)
    return 0 if complete else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=100_000)
    parser.add_argument("--smoke", action="store_true", help="3,000 streams, under a minute")
    parser.add_argument("--app-workers", type=int, default=8)
    parser.add_argument("--per-client", type=int, default=12_500, help="streams per listener")
    parser.add_argument("--messages", type=int, default=3, help="broadcasts at each step")
    parser.add_argument("--opening", type=int, default=50, help="connects in flight, each")
    parser.add_argument("--connect-timeout", type=float, default=30.0, help="s, each stream")
    parser.add_argument("--idle", type=float, default=5.0, help="s held idle before broadcasts")
    parser.add_argument("--backlog", type=int, default=511, help="nginx's listen backlog")
    parser.add_argument("--heartbeat", type=float, default=15.0, help="s, the app's HEARTBEAT")
    parser.add_argument("--no-growth", action="store_true", help="all streams in one step")
    parser.add_argument("--wait", type=float, default=120.0, help="s a broadcast may take")
    parser.add_argument("--min-available-gib", type=float, default=4.0)
    parser.add_argument("--out", type=Path, help="JSON, plot beside (bench/bench_100k.json)")
    args = parser.parse_args()
    out, picture = HERE / "bench_100k.json", HERE / "capacity_100k.png"
    if args.smoke:
        args.streams, args.app_workers, args.per_client, args.messages = 3_000, 2, 1_500, 2
        args.wait, args.idle = 15.0, 1.0
        scratch = Path(tempfile.gettempdir())
        out, picture = scratch / f"bench_100k_{os.getpid()}.json", scratch / "capacity_100k.png"
    if args.out:  # the plot beside it
        out, picture = args.out, args.out.with_suffix(".png")
    soft, hard = raise_open_files_limit()  # before the servers start: they inherit it
    plan = Plan.make(args.streams, soft, args.app_workers, args.per_client)
    print(
        f"# {plan.streams:,} streams: {plan.app_workers} app workers, {plan.nginx_workers} "
        f"nginx workers, {plan.clients} listener processes; open files {soft:,} (hard "
        f"{hard:,}); Python {platform.python_version()}, {os.cpu_count()} cores; load average "
        f"{os.getloadavg()[0]:.1f}",
        flush=True,
    )
    sys.exit(run(args, plan, out, picture))


if __name__ == "__main__":
    main()
