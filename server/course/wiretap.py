"""A loopback TCP proxy that records every chunk that crosses it, and can misbehave on purpose.

    tap = start_wiretap(app)                 # client -> tap.url -> app
    httpx2.get(tap.url + "/hello")
    for record in tap.records():             # (seconds, connection, direction, bytes)
        print(record)

It sits between a client and a server and writes each read, as it happened, to a JSON-lines
file: when it arrived, on which connection, in which direction ("up" is client to server,
"down" server to client), and the exact bytes. Lessons use it to show what really crossed the
wire and when: the raw request, where TCP split a stream, bursts caused by a buffering proxy.

Faults, for reconnection and robustness lessons and tests (Toxiproxy does this for other
stacks; this is small enough to read):

- `delay`: seconds added before forwarding each chunk (a slow network),
- `chunk_size`: forward the server's bytes in pieces of at most this many bytes, to put chunk
  boundaries anywhere, even inside a UTF-8 character,
- `cut_after`: close both sides of a connection once this many bytes went down,
- `tap.cut()`: close every open connection now (the network failed).

Without a fault, it ends a connection as TCP does: each direction ends on its own. A client
that half-closes (`shutdown(SHUT_WR)` after its request, as `nc -N` and some HTTP/1.0 clients
do) says "I have nothing more to send", not "I am gone": the wiretap passes that end of file
on to the server (`write_eof`), records it (`up-eof`), and keeps forwarding the answer until
the server ends its side too (`down-eof`). Only then does it close the connection (`close`).

It runs as its own process (`python -m server.course.wiretap`), started through the launcher like
every other server, so a cell that blocks on a socket cannot stall it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path

from server.course.launcher import Server, start_python

RECORDS = "records.jsonl"


@dataclass(frozen=True)
class Record:
    seconds: float  # since the wiretap started
    connection: int  # 1, 2, ... in the order connections were accepted
    # "open"; "up" (client to server) and "down" (server to client) with the bytes read;
    # "up-eof" and "down-eof" when that side ended its sending (a half-close); "close".
    direction: str
    data: bytes


@dataclass
class Wiretap:
    """A running wiretap: where to connect, and what it recorded."""

    server: Server

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        return self.server.port

    def records(self, since: int = 0) -> list[Record]:
        """Everything recorded so far (from the `mark()` `since`, if given), leaving out
        connections that carried no bytes (such as the launcher's readiness check, which only
        connects)."""
        records = self._all()[since:]
        talked = {r.connection for r in records if r.data}
        return [r for r in records if r.connection in talked]

    def mark(self) -> int:
        """A place in the records: `records(since=mark)` leaves out what crossed before it, such
        as nginx's readiness probe on its way to the app. A chunk is recorded before it is
        forwarded, so a request answered by now is behind the mark, whole."""
        return len(self._all())

    def _all(self) -> list[Record]:
        assert self.server.workdir is not None
        return list(read_records(self.server.workdir / RECORDS))

    def cut(self) -> None:
        """Close every connection open right now, as a failing network would."""
        self.server.process.send_signal(signal.SIGUSR1)

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> Wiretap:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_wiretap(
    upstream: Server | tuple[str, int],
    *,
    port: int | None = None,
    delay: float = 0.0,
    chunk_size: int = 0,
    cut_after: int = 0,
) -> Wiretap:
    """Start a wiretap in front of `upstream` (a `Server`, or a `(host, port)` pair), on
    `port`, or with None on one the OS picks as it binds, so no other process can take it
    between the choice and the bind (nginx in front of it is then given `tap.port`)."""
    if isinstance(upstream, Server):
        upstream = (upstream.host, upstream.port)
    host, upstream_port = upstream
    args = [
        "--port", "{port}", "--upstream", f"{host}:{upstream_port}",
        "--record", f"{{workdir}}/{RECORDS}",
        "--delay", str(delay), "--chunk-size", str(chunk_size), "--cut-after", str(cut_after),
    ]  # fmt: skip
    listening = r"\bon 127\.0\.0\.1:(\d+)"  # the port it bound: `--port 0` lets the OS pick
    return Wiretap(
        start_python("server.course.wiretap", args, port=port, name="wiretap", listening=listening)
    )


def read_records(path: Path) -> Iterator[Record]:
    if not path.exists():
        return
    # A line is written whole, yet a reader may see its first part only: left for next time.
    for line in path.read_text().split("\n")[:-1]:
        item = json.loads(line)
        yield Record(item["t"], item["c"], item["d"], base64.b64decode(item["b"]))


# --- the proxy itself (runs in the wiretap's own process) ---------------------------------


class Proxy:
    def __init__(self, args: argparse.Namespace) -> None:
        self.upstream_host, _, port = args.upstream.rpartition(":")
        self.upstream_port = int(port)
        self.delay = args.delay
        self.chunk_size = args.chunk_size
        self.cut_after = args.cut_after
        self.record_file = open(args.record, "a", buffering=1)  # noqa: SIM115 (lives with the process)
        self.started = time.monotonic()
        self.ids = count(1)
        self.open: dict[int, tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = {}

    def record(self, connection: int, direction: str, data: bytes = b"") -> None:
        line = {
            "t": round(time.monotonic() - self.started, 6),
            "c": connection,
            "d": direction,
            "b": base64.b64encode(data).decode(),
        }
        self.record_file.write(json.dumps(line) + "\n")

    async def handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        connection = next(self.ids)
        try:
            server_r, server_w = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
        except OSError:
            client_w.close()
            return
        self.open[connection] = (client_w, server_w)
        self.record(connection, "open")
        # Both directions, each until its sender ends it: a client that is done sending may
        # still be waiting for the answer.
        await asyncio.gather(
            self.pump(connection, "up", client_r, server_w),
            self.pump(connection, "down", server_r, client_w),
        )
        self.close(connection)

    async def pump(
        self, connection: int, direction: str, reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:  # fmt: skip
        """Forward one direction until its sender ends it, then pass the end on."""
        cut_after = self.cut_after if direction == "down" else 0
        sent = 0
        try:
            while (data := await reader.read(65536)) and connection in self.open:
                self.record(connection, direction, data)
                for piece in self.pieces(direction, data):
                    if self.delay:
                        await asyncio.sleep(self.delay)
                    if connection not in self.open:
                        return  # cut while the piece was held back
                    if cut_after and sent + len(piece) >= cut_after:
                        writer.write(piece[: cut_after - sent])
                        await writer.drain()
                        self.close(connection)
                        return
                    writer.write(piece)
                    await writer.drain()
                    sent += len(piece)
            if connection in self.open:  # an end of file, not a cut: a half-close, passed on
                self.record(connection, f"{direction}-eof")
                writer.write_eof()
        except OSError:  # reset by one side: the other side loses the connection too
            self.close(connection)

    def pieces(self, direction: str, data: bytes) -> list[bytes]:
        """`data` as forwarded: cut into `chunk_size` pieces on the way down, if asked."""
        if direction != "down" or not self.chunk_size:
            return [data]
        size = self.chunk_size
        return [data[i : i + size] for i in range(0, len(data), size)]

    def close(self, connection: int) -> None:
        writers = self.open.pop(connection, None)
        if writers:
            self.record(connection, "close")
            for writer in writers:
                writer.close()

    def cut_all(self) -> None:
        for connection in list(self.open):
            self.close(connection)


async def serve(args: argparse.Namespace) -> None:
    proxy = Proxy(args)
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, proxy.cut_all)
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", args.port)
    port = server.sockets[0].getsockname()[1]  # the bound one, should `--port 0` be given
    print(f"wiretap on 127.0.0.1:{port} -> {args.upstream}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description="Record and disturb TCP traffic on loopback.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="host:port to forward to")
    parser.add_argument("--record", required=True, help="JSON-lines file to append records to")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--chunk-size", type=int, default=0)
    parser.add_argument("--cut-after", type=int, default=0)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
