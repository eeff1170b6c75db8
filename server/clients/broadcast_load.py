"""Thousands of listeners on a broadcast room, in processes of their own, timing every delivery.

The capacity benches ask how fast one published message reaches every client, and how many
deliveries a worker sustains. A load generator that shares a process (or a core) with the
bench, or one that is itself saturated, reports its own delays as the server's. So the
listeners run in separate processes (`LoadProcesses`), each holding its share of the streams
with `server.clients.load.HeldStreams`, and each reports its own CPU time.

Every published message is `{"n": n, "t": time.time()}` (`server.clients.publisher`). A
`StampedRecord` checks that a stream's numbers come one after another (a gap or a duplicate
is a problem, reported, never averaged) and keeps each delivery's delay: its arrival time
minus `t`, both read from the wall clock of this one machine.

A listener process is driven by one JSON line per command on its stdin and answers with one
JSON line on its stdout (`python -m server.clients.broadcast_load URL N`): it says
`{"ready": ...}` once its streams are open (with their connect times, `connect_summary`),
then answers `{"wait": count, "timeout": s}` (every open stream has `count` messages) and
`{"report": true}` (the delays, counts and CPU since the last report). Its stdin closing
stops it.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from server.clients.http_raw import read_head
from server.clients.load import HeldStreams, StreamRecord, loopback_address
from server.clients.measure import percentile
from server.sse import Event


@dataclass
class StampedRecord(StreamRecord):
    """A stream of `{"n", "t"}` messages: numbers in a row, and each one's delay in seconds."""

    delays: list[float] = field(default_factory=list)

    def accept(self, event: Event, at: float) -> None:
        arrived = time.time()
        if self.first_event is None:
            self.first_event = at
        self.events += 1
        try:
            message = json.loads(event.data)
            number, sent = int(message["n"]), float(message["t"])
        except (ValueError, KeyError, TypeError):
            self._problem(f"event {self.events}: not a numbered message: {event.data[:40]!r}")
            return
        if self.last_id and number != self.last_id + 1:
            kind = "gap" if number > self.last_id else "duplicate or out of order"
            self._problem(f"{kind}: n={number} after n={self.last_id}")
        self.last_id = number
        self.delays.append(arrived - sent)


async def _listen(url: str, n: int, opening: int, connect_timeout: float = 10.0) -> None:
    """The listener process: hold `n` streams, answer commands from stdin until it closes."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def say(message: dict[str, Any]) -> None:
        print(json.dumps(message), flush=True)

    async with HeldStreams(
        url, n, opening=opening, connect_timeout=connect_timeout, record=StampedRecord
    ) as held:
        records: list[StampedRecord] = held.records  # type: ignore[assignment]
        opened = sum(r.connected is not None for r in records)
        errors = sorted({r.error for r in records if r.error})
        connects = [r.connected for r in records if r.connected is not None]
        say(
            {
                "ready": opened,
                "asked": n,
                "errors": errors[:5],
                "limit": held.limit_note,
                "connect": connect_summary(connects),
            }
        )
        cpu = time.process_time()
        wall = time.perf_counter()
        while line := await reader.readline():
            command = json.loads(line)
            if "wait" in command:
                reached = await held.wait_for_events(command["wait"], command["timeout"])
                say({"waited": reached})
            elif command.get("report"):
                delays = [d for r in records for d in r.delays]
                for record in records:
                    record.delays.clear()
                now_cpu, now_wall = time.process_time(), time.perf_counter()
                say(
                    {
                        "delays": [round(d, 6) for d in delays],
                        "events": sum(r.events for r in records),
                        "open": sum(r.connected is not None and r.error is None for r in records),
                        "in_order": sum(not r.problems for r in records),
                        "problems": [p for r in records for p in r.problems][:5],
                        "cpu": now_cpu - cpu,
                        "wall": now_wall - wall,
                    }
                )
                cpu, wall = now_cpu, now_wall


def connect_summary(seconds: list[float]) -> dict[str, float | int]:
    """Connect times (to the response headers): p50, p99, max, and how many took over 1 s.

    1 s is the first SYN retransmission: a connect dropped by a full listen backlog takes at
    least that long (a burst meets the backlog that way, not as an error). But so does one
    queued behind a busy server: the kernel's `ListenOverflows` says which it was."""
    return {
        "p50": percentile(seconds, 50),
        "p99": percentile(seconds, 99),
        "max": max(seconds, default=0.0),
        "over_1s": sum(s >= 1.0 for s in seconds),
    }


async def publish_paced(url: str, rate: float, seconds: float, first: int = 1) -> int:
    """POST `{"n", "t"}` messages to `url` at `rate` a second for `seconds`; the next n.

    Open loop: each request goes out on time on one connection without waiting for the
    answer to the one before (HTTP/1.1 pipelining; the server answers them in order, so the
    messages stay in order). A worker busy fanning out answers late, but cannot slow the
    publisher down and so hide that it fell behind, as a publisher that waits for each
    answer would. Raises `RuntimeError` on an answer other than 201.
    """
    host, port, path = loopback_address(url)
    count = math.ceil(rate * seconds)
    reader, writer = await asyncio.open_connection(host, port)

    async def answers() -> None:
        for n in range(first, first + count):
            _, status, _, head = read_head(io.BytesIO(await reader.readuntil(b"\r\n\r\n")))
            body = await reader.readexactly(int(head.get("content-length", "0")))
            if status != 201:
                raise RuntimeError(f"publish {n}: {status} {body[:200]!r}")

    reading = asyncio.create_task(answers())
    try:
        started = time.perf_counter()
        for i in range(count):
            await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
            body = json.dumps({"n": first + i, "t": time.time()}).encode()
            head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            writer.write(head.encode() + body)
            if reading.done():
                break  # an answer failed: stop, and raise it below
        await reading
    finally:
        reading.cancel()
        writer.close()
    return first + count


@dataclass
class Report:
    """What every listener process got since the last report, added up."""

    delays: list[float]
    events: int
    open: int
    in_order: int
    problems: list[str]
    cpu_share: float  # the busiest listener process's CPU over wall time: near 1, saturated

    @classmethod
    def merge(cls, reports: list[Report]) -> Report:
        """Several groups of listeners' reports as one."""
        return cls(
            delays=[d for r in reports for d in r.delays],
            events=sum(r.events for r in reports),
            open=sum(r.open for r in reports),
            in_order=sum(r.in_order for r in reports),
            problems=[p for r in reports for p in r.problems][:5],
            cpu_share=max((r.cpu_share for r in reports), default=0.0),
        )


class LoadProcesses:
    """`n` listeners on `url`, spread over `processes` listener processes."""

    def __init__(
        self,
        url: str,
        n: int,
        *,
        processes: int = 2,
        opening: int = 100,
        connect_timeout: float = 10.0,
    ) -> None:
        shares = [n // processes + (i < n % processes) for i in range(processes)]
        self.processes = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "server.clients.broadcast_load",
                    url,
                    str(share),
                    str(opening),
                    str(connect_timeout),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for share in shares
            if share
        ]
        try:
            self.ready = [self._answer(p) for p in self.processes]
        except BaseException:
            self.close()
            raise
        self.opened = sum(answer["ready"] for answer in self.ready)

    def _answer(self, process: subprocess.Popen[str]) -> dict[str, Any]:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"listener process {process.pid} exited ({process.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def _ask(self, command: dict[str, Any]) -> list[dict[str, Any]]:
        for process in self.processes:
            assert process.stdin is not None
            process.stdin.write(json.dumps(command) + "\n")
            process.stdin.flush()
        return [self._answer(process) for process in self.processes]

    def wait(self, count: int, timeout: float) -> bool:
        """Wait until every open stream has `count` messages; False if `timeout` ran out."""
        return all(answer["waited"] for answer in self._ask({"wait": count, "timeout": timeout}))

    def report(self) -> Report:
        """Deliveries since the last report (or since the streams opened)."""
        answers = self._ask({"report": True})
        return Report.merge(
            [
                Report(
                    delays=a["delays"],
                    events=a["events"],
                    open=a["open"],
                    in_order=a["in_order"],
                    problems=a["problems"],
                    cpu_share=a["cpu"] / a["wall"] if a["wall"] else 0.0,
                )
                for a in answers
            ]
        )

    def close(self, timeout: float = 30.0) -> None:
        """Close every stream: each process ends when its stdin does."""
        for process in self.processes:
            if process.stdin is not None:
                process.stdin.close()
        for process in self.processes:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()

    def __enter__(self) -> LoadProcesses:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


if __name__ == "__main__":
    timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 10.0  # the connect timeout, optional
    asyncio.run(_listen(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), timeout))
