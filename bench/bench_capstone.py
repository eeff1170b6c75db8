"""The capstone under load: N simulated users chatting through nginx, then the same with a SIGKILL.

Lesson 11 claims the capstone serves many users at once on two workers, and that killing a
worker mid-reply loses nothing. This measures both, with the whole stack on this machine
(`server.course.capstone_stack`: Redis, the fake model, two uvicorn workers, nginx):

- each simulated user gets a session, then sends `--messages` messages, one at a time, with
  a think time before each (random, around `--think` s; the users' starts are spread over
  `--ramp` s), reading each reply to its end and resuming with `Last-Event-ID` whenever the
  stream breaks, as the page does (a POST that fails is retried with its Idempotency-Key);
- the fake model paces tokens like a hosted model (`--ttft` s to the first, `--tps` tokens/s);
- every reply is checked against the fake model's deterministic text for its seed: each token
  index exactly once, in order, and the text equal, or the reply counts as failed;
- time to first token (the POST sent to the first token received, client side) p50/p99,
  tokens/s delivered, the error rate, and memory per open chat: the workers' RSS (VmRSS) at the
  most open chats minus before, over those chats, and Redis's `used_memory` the same way.

`--kill` runs it twice: once as is, then again while worker A is SIGKILLed (by pid) once about
half the users have a reply in flight; every conversation must still complete, exactly. The
bench exits 1 if any reply is lost, repeated, cut or wrong, in either run.

Run: `.venv/bin/python bench/bench_capstone.py --users 200 --kill`, or `--smoke` for a few
seconds with 10 users and the kill (as `tests/test_capstone.py` does). Linux only (/proc).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
import uuid
from dataclasses import dataclass, field

import httpx2
import redis.asyncio as aioredis

from server.apps.fake_openai.model import reply_for
from server.clients.measure import cpu_seconds, format_table, percentile, rss_kib
from server.clients.open_files import raise_open_files_limit
from server.clients.sse_client import NotAnEventStream, aconnect_sse
from server.course.capstone_stack import Capstone, ClientLimits, start_capstone

TERMINAL = ("done", "error", "stopped")
DEADLINE = 120.0  # seconds one reply may take, reconnections included


@dataclass
class Reply:
    ttft: float | None = None  # seconds from the POST sent to the first token received
    seconds: float = 0.0
    tokens: int = 0
    reconnects: int = 0
    problem: str | None = None  # None: exact and done


@dataclass
class Run:
    label: str
    users: int
    replies: list[Reply] = field(default_factory=list)
    wall: float = 0.0
    peak_open: int = 0
    rss_before: int = 0  # KiB, all workers
    rss_peak: int = 0
    redis_before: int = 0  # bytes
    redis_peak: int = 0
    killed: str | None = None
    takeovers: int = 0  # replies adopted by another worker (counted by the survivors)
    client_cpu: float = 0.0  # seconds of CPU this load generator used
    workers_cpu: float = 0.0  # seconds of CPU the workers used (a killed one's until killed)
    model_cpu: float = 0.0  # seconds of CPU the fake model and Redis used
    retried: int = 0  # requests answered 5xx (nginx found no worker) or cut, then retried

    @property
    def failed(self) -> list[Reply]:
        return [r for r in self.replies if r.problem is not None]


class Open:
    """How many replies are being read right now, across all users."""

    now = 0


async def read_reply(
    client: httpx2.AsyncClient, path: str, reply: Reply, sent: float
) -> list[tuple[int, str]]:
    """The reply's tokens, resuming from the last id whenever the stream breaks."""
    pieces: list[tuple[int, str]] = []
    last_id, deadline, ended, said = "", time.monotonic() + DEADLINE, None, ""
    while ended is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no last event within {DEADLINE:g} s")
        headers = {"Last-Event-ID": last_id} if last_id else {}
        try:
            async with aconnect_sse(client, "GET", path, headers=headers) as events:
                async for event in events:
                    last_id = event.id or last_id
                    if event.event == "message":
                        data = json.loads(event.data)
                        if reply.ttft is None:
                            reply.ttft = time.monotonic() - sent
                        pieces.append((data["i"], data["delta"]))
                    elif event.event in TERMINAL:
                        ended = event.event
                        said = json.loads(event.data).get("message", "")
        except NotAnEventStream as refused:
            if refused.response.status_code < 500:  # nginx found no live worker: try again
                raise
        except httpx2.TransportError:
            pass
        if ended is None:
            reply.reconnects += 1
            await asyncio.sleep(0.2)
    if ended != "done":
        raise RuntimeError(f"the reply ended with {ended}: {said}")
    return pieces


async def post(client: httpx2.AsyncClient, message: str, run: Run) -> dict[str, object]:
    """POST a message, retried with the same Idempotency-Key while nginx finds no worker."""
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    for _attempt in range(50):
        try:
            response = await client.post("/api/chat", json={"message": message}, headers=headers)
            if response.status_code < 500:
                response.raise_for_status()
                return dict(response.json())
        except httpx2.TransportError:
            pass
        run.retried += 1
        await asyncio.sleep(0.2)
    raise RuntimeError("the POST kept failing")


async def user(stack: Capstone, n: int, args: argparse.Namespace, run: Run) -> None:
    rng = random.Random(n)
    async with httpx2.AsyncClient(base_url=stack.url, timeout=30) as client:
        await asyncio.sleep(rng.uniform(0, args.ramp))
        for _attempt in range(50):  # nginx may answer 502 while a worker dies: try again
            try:
                if (await client.get("/api/session")).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            run.retried += 1
            await asyncio.sleep(0.2)
        for m in range(args.messages):
            await asyncio.sleep(rng.uniform(0.5, 1.5) * args.think)
            reply, message = Reply(), f"user {n} asks question {m}"
            run.replies.append(reply)
            sent = time.monotonic()
            Open.now += 1
            run.peak_open = max(run.peak_open, Open.now)
            try:
                accepted = await post(client, message, run)
                pieces = await read_reply(client, f"/{accepted['events']}", reply, sent)
                reply.tokens = len(pieces)
                expected = reply_for(message, int(str(accepted["seed"])), args.tokens)
                if [i for i, _ in pieces] != list(range(len(pieces))):
                    reply.problem = "a token lost, repeated or out of order"
                elif "".join(d for _, d in pieces) != expected:
                    reply.problem = "the text differs from the model's"
            except Exception as error:
                reply.problem = f"{type(error).__name__}: {error}"
            finally:
                Open.now -= 1
                reply.seconds = time.monotonic() - sent


def stack_cpu(stack: Capstone) -> tuple[dict[int, float], float]:
    """CPU seconds so far of each running worker (by pid), and of the fake model plus Redis."""
    workers = {w.pid: cpu_seconds(w.pid) for w in stack.workers.values() if w.running}
    others = [s for s in (stack.upstream, stack.redis) if s is not None]
    return workers, sum(cpu_seconds(s.pid) for s in others)


async def sample_memory(stack: Capstone, run: Run, redis: aioredis.Redis) -> None:
    """Keep the workers' RSS and Redis's memory at the moment the most chats were open."""
    best = -1
    while True:
        await asyncio.sleep(0.25)
        if Open.now > best:
            best = Open.now
            run.rss_peak = sum(rss_kib(w.pid) for w in stack.workers.values() if w.running)
            run.redis_peak = int((await redis.info("memory"))["used_memory"])


async def killer(stack: Capstone, run: Run, users: int) -> None:
    """SIGKILL worker A once about half the users have a reply in flight."""
    while Open.now < max(1, users // 2):
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # into the replies, not at their first byte
    await asyncio.to_thread(stack.workers["A"].kill)
    run.killed = f"A (pid {stack.workers['A'].pid}) with {Open.now} replies in flight"


async def load(stack: Capstone, args: argparse.Namespace, label: str, kill: bool) -> Run:
    run = Run(label, args.users)
    redis = aioredis.Redis.from_url(stack.redis.url)
    run.rss_before = sum(rss_kib(w.pid) for w in stack.workers.values())
    run.redis_before = int((await redis.info("memory"))["used_memory"])
    before = await asyncio.to_thread(takeovers, stack)
    sampler = asyncio.create_task(sample_memory(stack, run, redis))
    chaos = asyncio.create_task(killer(stack, run, args.users)) if kill else None
    start, cpu = time.monotonic(), time.process_time()
    workers_before, model_before = stack_cpu(stack)
    await asyncio.gather(*(user(stack, n, args, run) for n in range(args.users)))
    run.wall, run.client_cpu = time.monotonic() - start, time.process_time() - cpu
    workers_after, model_after = stack_cpu(stack)
    run.workers_cpu = sum(t - workers_before.get(p, 0) for p, t in workers_after.items())
    run.model_cpu = model_after - model_before
    for task in (sampler, chaos):
        if task is not None:
            task.cancel()
    await redis.aclose()
    after = await asyncio.to_thread(takeovers, stack)
    run.takeovers = sum(count - before.get(name, 0) for name, count in after.items())
    return run


def takeovers(stack: Capstone) -> dict[str, int]:
    """capstone_takeovers_total of each running worker (from its own /metrics)."""
    return {
        name: int(stack.metrics(name)["capstone_takeovers_total"])
        for name, worker in stack.workers.items()
        if worker.running
    }


def report(runs: list[Run], args: argparse.Namespace) -> None:
    print(
        f"{args.users} users x {args.messages} messages, think {args.think:g} s, through nginx "
        f"to 2 workers; fake model: TTFT {args.ttft:g} s, {args.tps:g} tokens/s, "
        f"{args.tokens}+ tokens a reply; {os.cpu_count()} cores shared by everything\n"
    )
    rows = []
    for run in runs:
        ttfts = [r.ttft for r in run.replies if r.ttft is not None]
        tokens = sum(r.tokens for r in run.replies)
        opened = max(1, run.peak_open)
        rows.append({
            "run": run.label,
            "replies": len(run.replies),
            "exact": len(run.replies) - len(run.failed),
            "error %": 100 * len(run.failed) / max(1, len(run.replies)),
            "TTFT p50 ms": 1000 * percentile(ttfts, 50) if ttfts else float("nan"),
            "TTFT p99 ms": 1000 * percentile(ttfts, 99) if ttfts else float("nan"),
            "tokens/s": tokens / run.wall,
            "most open": run.peak_open,
            "reconnects": sum(r.reconnects for r in run.replies),
            "takeovers": run.takeovers,
            "retried": run.retried,
            "CPU % client": 100 * run.client_cpu / run.wall,
            "workers": 100 * run.workers_cpu / run.wall,
            "model+Redis": 100 * run.model_cpu / run.wall,
            # memory per chat only from a first run: later ones start warm (and one is killed)
            "worker KiB/chat": (run.rss_peak - run.rss_before) / opened if run is runs[0] else "-",
            "Redis KiB/chat": (run.redis_peak - run.redis_before) / 1024 / opened
            if run is runs[0] else "-",
        })  # fmt: skip
    print(format_table(rows))
    for run in runs:
        if run.killed:
            print(f"\n{run.label}: killed worker {run.killed}")
        for reply in run.failed[:5]:
            print(f"  {run.label}: {reply.problem}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--messages", type=int, default=2)
    parser.add_argument("--think", type=float, default=1.0)
    parser.add_argument("--ramp", type=float, default=5.0)
    parser.add_argument("--ttft", type=float, default=0.3)
    parser.add_argument("--tps", type=float, default=25.0)
    parser.add_argument("--tokens", type=int, default=40)
    parser.add_argument("--kill", action="store_true", help="a second run with a SIGKILL")
    parser.add_argument("--smoke", action="store_true", help="10 users, 1 message, --kill")
    args = parser.parse_args()
    if args.smoke:
        args.users, args.messages, args.think, args.ramp, args.kill = 10, 1, 0.2, 0.5, True
    raise_open_files_limit()
    fake = {"FAKE_OPENAI_TTFT": str(args.ttft), "FAKE_OPENAI_TPS": str(args.tps),
            "FAKE_OPENAI_TOKENS": str(args.tokens)}  # fmt: skip
    env = {"RATE_PER_MINUTE": "1000"}  # the default lease (3 s) and sweep (0.5 s)
    runs = []
    one_address = ClientLimits(streams=4096, chat_per_second=1000, chat_burst=4096)  # all users
    with start_capstone(
        workers=2, env=env, fake_env=fake, worker_connections=4096, client_limits=one_address
    ) as stack:
        runs.append(asyncio.run(load(stack, args, "steady", kill=False)))
        if args.kill:
            runs.append(asyncio.run(load(stack, args, "SIGKILL A", kill=True)))
    report(runs, args)
    return 1 if any(run.failed for run in runs) else 0


if __name__ == "__main__":
    raise SystemExit(main())
