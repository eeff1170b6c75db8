"""How many streams one worker holds, and how fast it fans out: the course's app and its rivals.

Four measurements (issue 15), each side by side in one run with what a reader would
otherwise use, because only ratios survive a noisy shared machine:

1. `idle`: N SSE connections held on one worker (heartbeat every 15 s): memory per
   connection (the server's RSS with them held, minus before, over N), the server's CPU while
   they sit idle for `--hold` seconds, and how many were refused.
2. `latency`: 1,000 listeners on one worker, one message a second: publish-to-receive delay,
   p50 and p99. Then 4,000 listeners on two workers behind nginx, fanned out through Redis
   (lesson 09's stack, the Streams broker).
3. `throughput`: 1,000 listeners, messages published ever faster: the most deliveries per
   second (messages x listeners) a worker keeps up with, p99 under 1 s and nothing lost.
4. `growth`: memory per connection and p99 at 1k, 2k, 5k and 10k listeners, plotted to
   `bench/capacity_growth.png`.

Contenders: the course's broadcast app (`server.apps.broadcast`, its in-process hub, and with
Redis Streams); the same room written the tutorial way (`server.apps.broadcast_contenders`):
a raw Starlette `StreamingResponse`, sse-starlette's `EventSourceResponse`, FastAPI's native
`EventSourceResponse`; and, for holding only, lesson 07's Django project under ASGI (it has no
broadcast room). Servers: uvicorn with uvloop and httptools (its defaults when installed), and
the course's app once more on uvicorn's pure-Python stack (`--loop asyncio --http h11`).

The listeners run in two processes of their own (`server.clients.broadcast_load`), parse
every event with `server.sse.Decoder` and check each message arrived once and in order; the
busiest one's CPU share is reported (near 100%, the client was the bottleneck).

Run: `.venv/bin/python bench/bench_capacity.py` (about 15 minutes), `--only idle,latency`
for some parts (`cluster`: the 4,000 listeners behind nginx), `--contender "raw Starlette"
--contender "course, granian"` for some servers (the course's in-process one is always kept,
as the reference), `--smoke` for a few seconds of each with 100 listeners
(tests/test_capacity.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from server.clients.broadcast_load import LoadProcesses, Report, publish_paced
from server.clients.measure import cpu_seconds, format_table, percentile, rss_kib
from server.clients.open_files import raise_open_files_limit, stream_budget
from server.course.cluster import start_workers, upstreams
from server.course.launcher import Server, start_app, start_command, start_nginx, start_redis

ROOM = "server.apps.broadcast:app"
RIVAL = "server.apps.broadcast_contenders:app"
DJANGO = "server.apps.django_streams.asgi:application"
PURE_PYTHON = ("--loop", "asyncio", "--http", "h11")
PARTS = ("idle", "latency", "cluster", "throughput", "growth")
GROWTH = ("course, in-process", "raw Starlette")  # the contenders measured at every size


@dataclass(frozen=True)
class Contender:
    name: str
    app: str
    env: Mapping[str, str]
    args: tuple[str, ...] = ()
    path: str = "/events"
    broadcasts: bool = True  # has a room to publish to (Django's project has none)
    redis: bool = False
    runner: str = "uvicorn"  # or "hypercorn", "granian": the same app, another server


CONTENDERS = (
    Contender("course, in-process", ROOM, {"BROKER": "memory"}),
    Contender("course, Redis Streams", ROOM, {"BROKER": "streams"}, redis=True),
    Contender("course, pure Python", ROOM, {"BROKER": "memory"}, PURE_PYTHON),
    Contender("course, hypercorn", ROOM, {"BROKER": "memory"}, runner="hypercorn"),
    Contender("course, granian", ROOM, {"BROKER": "memory"}, runner="granian"),
    Contender("raw Starlette", RIVAL, {"CONTENDER": "starlette"}),
    Contender("sse-starlette", RIVAL, {"CONTENDER": "sse-starlette"}),
    Contender("FastAPI native", RIVAL, {"CONTENDER": "fastapi"}),
    Contender("Django ASGI", DJANGO, {}, path="/events?interval=15", broadcasts=False),
)


@contextmanager
def serve(contender: Contender, redis: Server | None) -> Iterator[Server]:
    env = dict(contender.env)
    if contender.redis:
        assert redis is not None
        env["REDIS_URL"] = redis.url
    with start_server(contender, env) as server:
        with LoadProcesses(server.url + contender.path, 20):  # imports, first allocations
            if contender.broadcasts:
                publish_at(server.url + "/publish", 100, 0.05, 0)  # n=0..4: no listener checks
        yield server


def start_server(contender: Contender, env: Mapping[str, str]) -> Server:
    """One worker process of `contender.app`, under the server `contender.runner` names."""
    name = f"bench-{contender.runner}"
    if contender.runner == "uvicorn":
        return start_app(contender.app, env=env, args=contender.args, name=name)
    if contender.runner == "hypercorn":
        command = [sys.executable, "-m", "hypercorn", "--bind", "127.0.0.1:{port}"]
        listening = r"Running on https?://\S+:(\d+)"
    else:  # granian: Rust HTTP, the app in one worker process it spawns
        command = [sys.executable, "-m", "granian", "--interface", "asgi"]
        command += ["--host", "127.0.0.1", "--port", "{port}", "--workers", "1"]
        command += ["--backpressure", "20000"]  # its default refuses beyond 1,024 requests
        listening = r"Started worker-1"  # it prints the port asked for, not the one bound
    return start_command([*command, contender.app], listening=listening, env=env, name=name)


def app_pid(server: Server) -> int:
    """The process that runs the app: the server's own, or the one worker it spawned.

    granian and hypercorn run the app in a child process even with one worker (hypercorn
    also starts multiprocessing's resource tracker, which is not it).
    """
    workers = []
    for children in glob.glob(f"/proc/{server.pid}/task/*/children"):
        for pid in Path(children).read_text().split():
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"resource_tracker" not in command:
                workers.append(int(pid))
    return workers[0] if len(workers) == 1 else server.pid


def publish_at(url: str, rate: float, seconds: float, first: int) -> int:
    """`{"n", "t"}` messages at `rate` a second, on time whatever the server answers."""
    return asyncio.run(publish_paced(url, rate, seconds, first))


def ms(seconds: float) -> float:
    return round(1000 * seconds, 1)


def delivered(report: Report, listeners: int, messages: int) -> str:
    """ "all" when every listener got every message once and in order, else what went wrong."""
    if len(report.delays) == listeners * messages and report.in_order == listeners:
        return "all, in order"
    return f"{len(report.delays)}/{listeners * messages}; {report.problems[:2]}"


# --- the four measurements ----------------------------------------------------------------


def idle(server: Server, contender: Contender, n: int, hold: float) -> dict[str, object]:
    """Hold `n` connections on a fresh server for `hold` seconds: memory, CPU, refusals."""
    pid = app_pid(server)
    before, sockets = rss_kib(pid), open_sockets(pid)
    with LoadProcesses(server.url + contender.path, n) as held:
        held_rss = rss_kib(pid)
        cpu = cpu_seconds(pid)
        time.sleep(hold)
        idle_cpu = (cpu_seconds(pid) - cpu) / hold
        report = held.report()
    closed_within(pid, sockets + 100, 300)
    return {
        "server": contender.name,
        "held": f"{report.open}/{n}",
        "refused": n - held.opened,
        "RSS before MiB": before / 1024,
        "RSS held MiB": held_rss / 1024,
        "KiB/conn": (held_rss - before) / max(1, held.opened),
        "idle CPU %": 100 * idle_cpu,
        "client CPU %": 100 * report.cpu_share,
    }


def open_sockets(pid: int) -> int:
    """How many sockets process `pid` has open (Linux: its /proc fd links)."""
    count = 0
    for fd in glob.glob(f"/proc/{pid}/fd/*"):
        with contextlib.suppress(FileNotFoundError):  # closed since the listing
            count += os.readlink(fd).startswith("socket:")
    return count


def closed_within(pid: int, most: int, seconds: float) -> None:
    """Wait until process `pid` holds at most `most` sockets (bounded by `seconds`).

    A worker takes a while to end 10,000 streams; the next part's listeners, connecting
    meanwhile, timed out on a loaded machine (only 601 of 1,000 connected).
    """
    deadline = time.monotonic() + seconds
    while open_sockets(pid) > most and time.monotonic() < deadline:
        time.sleep(0.5)


def fan_out(
    url: str, listeners: int, rate: float, seconds: float, pids: Sequence[int] = ()
) -> tuple[Report, int, int, list[float]]:
    """`listeners` on `url`/events, `rate` messages a second for `seconds`.

    Returns the report, the listeners that connected (on a loaded machine some time out:
    the rows say how many), the messages sent, and the CPU seconds each of `pids` spent
    meanwhile.
    """
    with LoadProcesses(url + "/events", listeners) as load:
        if load.opened < listeners:
            print(f"only {load.opened} of {listeners} listeners connected", file=sys.stderr)
        load.report()  # from here on
        cpu = [cpu_seconds(pid) for pid in pids]
        sent = publish_at(url + "/publish", rate, seconds, 1) - 1
        load.wait(sent, timeout=60)
        used = [cpu_seconds(pid) - before for pid, before in zip(pids, cpu, strict=True)]
        return load.report(), load.opened, sent, used


def latency_row(name: str, report: Report, listeners: int, sent: int) -> dict[str, object]:
    return {
        "server": name,
        "listeners": listeners,
        "messages": sent,
        "p50 ms": ms(percentile(report.delays, 50)),
        "p99 ms": ms(percentile(report.delays, 99)),
        "max ms": ms(max(report.delays, default=0.0)),
        "delivered": delivered(report, listeners, sent),
        "client CPU %": 100 * report.cpu_share,
    }


def cluster_latency(listeners: int, seconds: float, redis: Server) -> dict[str, object]:
    """The course's app on two workers behind nginx, fanned out through Redis Streams."""
    env = {"BROKER": "streams", "REDIS_URL": redis.url}
    with ExitStack() as stack:
        workers = start_workers(ROOM, "AB", env=env)
        for worker in workers.values():
            stack.enter_context(worker)
        nginx = stack.enter_context(
            start_nginx(
                upstreams(workers),
                worker_connections=2 * listeners + 1000,
                main=f"worker_rlimit_nofile {4 * listeners + 2000};",
            )
        )
        pids = [app_pid(worker) for worker in workers.values()] + [app_pid(nginx), redis.pid]
        report, connected, sent, cpu = fan_out(nginx.url, listeners, 1.0, seconds, pids)
    row = latency_row("course, 2 workers + nginx + Redis", report, connected, sent)
    deliveries = max(1, len(report.delays))
    return row | {
        "workers µs/delivery": 1e6 * (cpu[0] + cpu[1]) / deliveries,
        "nginx µs/delivery": 1e6 * cpu[2] / deliveries,
        "Redis µs/message": 1e6 * cpu[3] / max(1, sent),
    }


def throughput(
    server: Server, contender: Contender, listeners: int, rates: Sequence[float], seconds: float
) -> dict[str, object]:
    """Step the publish rate up until the worker falls behind; the best rate it kept up with.

    Kept up: every listener got every message, and p99 stayed under 1 s (the publisher keeps
    its pace whatever the server does, so a worker that cannot keep up shows as delay).
    "µs/delivery, all steps" is the worker's CPU over every step, the missed one included:
    on a machine too busy for any step to be kept up, still a figure to compare.
    """
    nan = float("nan")
    best: dict[str, object] = {"server": contender.name, "deliveries/s": 0, "p99 ms": nan}
    best |= {"server µs/delivery": nan, "server CPU %": nan, "client CPU %": nan}
    best["first rate missed"] = "none"
    pid = app_pid(server)
    all_work, all_delivered = 0.0, 0
    with LoadProcesses(server.url + "/events", listeners) as load:
        best["listeners"] = load.opened
        first = 1
        for rate in rates:
            load.report()
            cpu, started = cpu_seconds(pid), time.perf_counter()
            after = publish_at(server.url + "/publish", rate, seconds, first)
            caught_up = load.wait(after - 1, timeout=30)
            wall = time.perf_counter() - started
            work = cpu_seconds(pid) - cpu
            report, sent = load.report(), after - first
            first = after
            all_work, all_delivered = all_work + work, all_delivered + len(report.delays)
            best["µs/delivery, all steps"] = 1e6 * all_work / max(1, all_delivered)
            p99 = percentile(report.delays, 99)
            lost = load.opened * sent - len(report.delays)  # the rows say how many connected
            if not caught_up or p99 > 1.0 or lost:
                best["first rate missed"] = (
                    f"{rate * listeners:,.0f}/s: p99 {ms(p99):,.0f} ms, {lost} lost"
                )
                break
            best |= {
                "deliveries/s": round(len(report.delays) / wall),
                "p99 ms": ms(p99),
                "server µs/delivery": 1e6 * work / len(report.delays),
                "server CPU %": 100 * work / wall,
                "client CPU %": 100 * report.cpu_share,
            }
    return best


def growth(contender: Contender, sizes: list[int], seconds: float) -> list[dict[str, object]]:
    """One fresh server, listeners added in steps: memory per connection and p99 at each."""
    rows: list[dict[str, object]] = []
    with serve(contender, None) as server, ExitStack() as stack:
        pid = app_pid(server)
        before = rss_kib(pid)
        loads: list[LoadProcesses] = []
        starts: list[int] = []
        held, first = 0, 1
        for size in sizes:
            load = stack.enter_context(LoadProcesses(server.url + "/events", size - held))
            loads.append(load)
            starts.append(first)  # the first message this group of listeners will see
            held += load.opened
            rss = rss_kib(pid)
            for each in loads:
                each.report()  # from here on
            after = publish_at(server.url + "/publish", 1.0, seconds, first)
            sent, first = after - first, after
            for each, joined in zip(loads, starts, strict=True):
                each.wait(after - joined, timeout=60)  # one that fell behind shows below
            reports = [each.report() for each in loads]
            report = Report.merge(reports)
            row = latency_row(contender.name, report, held, sent)
            rows.append({**row, "KiB/conn": (rss - before) / max(1, held)})
    return rows


def plot(rows: list[dict[str, object]], sizes: list[int], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (memory, delay) = plt.subplots(1, 2, figsize=(9, 3.2))
    for name in dict.fromkeys(str(row["server"]) for row in rows):
        mine = [row for row in rows if row["server"] == name]
        x = [row["listeners"] for row in mine]
        memory.plot(x, [row["KiB/conn"] for row in mine], marker="o", label=name)
        delay.plot(x, [row["p99 ms"] for row in mine], marker="o", label=name)
    memory.set(xlabel="listeners", ylabel="KiB per connection", xscale="log", xticks=sizes)
    memory.set_ylim(bottom=0)  # a difference of 10% looks like one
    delay.set(xlabel="listeners", ylabel="p99 delay (ms)", xscale="log", xticks=sizes)
    for axes in (memory, delay):
        axes.set_xticklabels([f"{size:,}" for size in sizes])
        axes.grid(alpha=0.3)
    memory.legend(fontsize=8)
    figure.suptitle(f"One uvicorn worker, {os.cpu_count()} cores shared with the listeners")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    print(f"\nplot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(PARTS), help="some of " + ",".join(PARTS))
    parser.add_argument("--smoke", action="store_true", help="100 listeners, seconds (CI)")
    parser.add_argument("--contender", action="append", help="one by name (repeat for more)")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    contenders: tuple[Contender, ...] = CONTENDERS
    if args.contender:
        chosen = {CONTENDERS[0].name, *args.contender}
        unknown = chosen - {contender.name for contender in CONTENDERS}
        if unknown:
            parser.error(f"no contender {sorted(unknown)}; the names are in CONTENDERS")
        contenders = tuple(c for c in CONTENDERS if c.name in chosen)
    n, listeners, cluster, hold, seconds = 10_000, 1_000, 4_000, 20.0, 10.0
    rates, sizes = [10, 15, 20, 25, 30, 35, 40, 50], [1_000, 2_000, 5_000, 10_000]
    plot_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "capacity_growth.png")
    if args.smoke:
        n, listeners, cluster, hold, seconds = 100, 100, 100, 1.0, 2.0
        rates, sizes = [5, 10], [50, 100]
        plot_path = os.path.join(tempfile.gettempdir(), f"capacity_growth_{os.getpid()}.png")
    soft, hard = raise_open_files_limit()  # before starting servers: they inherit it
    fits, note = stream_budget(n)
    if fits < n:  # the listeners are split over two processes, but the server holds them all
        print(f"scaled down: {note}")
        n, sizes = fits, [size for size in sizes if size <= fits]
    print(
        f"# Capacity: Python {platform.python_version()}, {os.cpu_count()} cores shared by "
        f"servers and listeners, open files {soft} (hard {hard})"
    )
    tables: dict[str, list[dict[str, object]]] = {part: [] for part in PARTS if part in parts}
    with start_redis() as redis:
        for contender in contenders:
            with serve(contender, redis) as server:
                if "idle" in parts:
                    tables["idle"].append(idle(server, contender, n, hold))
                if "latency" in parts and contender.broadcasts:
                    report, connected, sent, _ = fan_out(server.url, listeners, 1.0, seconds)
                    tables["latency"].append(latency_row(contender.name, report, connected, sent))
                if "throughput" in parts and contender.broadcasts:
                    row = throughput(server, contender, listeners, rates, seconds / 2)
                    tables["throughput"].append(row)
        if "cluster" in parts:
            tables["cluster"].append(cluster_latency(cluster, seconds, redis))
    if "growth" in parts:
        for contender in contenders:
            if contender.name not in GROWTH:
                continue
            tables["growth"] += growth(contender, sizes, seconds / 2)
    titles = {
        "idle": f"idle: {n} connections held for {hold:g} s on one worker, heartbeat every 15 s",
        "latency": f"latency: {listeners} listeners on one worker, 1 message/s",
        "cluster": f"latency: {cluster} listeners on 2 workers behind nginx, Redis Streams",
        "throughput": f"throughput: {listeners} listeners, rates {rates}/s, {seconds / 2:g} s each",
        "growth": f"growth: listeners added to one worker, 1 message/s for {seconds / 2:g} s",
    }
    for part, rows in tables.items():
        print(f"\n## {titles[part]}\n\n{format_table(rows)}")
    if tables.get("growth"):
        plot(tables["growth"], sizes, plot_path)


if __name__ == "__main__":
    main()
