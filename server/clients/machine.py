"""What the whole machine spends on open connections, from the kernel's own counters (Linux).

A bench at 100,000 streams meets limits outside any one process: memory left for everyone
(`MemAvailable`), socket buffers the kernel holds for TCP (`/proc/net/sockstat`), connects a
full listen backlog dropped (`ListenOverflows` in `/proc/net/netstat`, the counter that
`somaxconn` and a server's `backlog` decide), and descriptors a process holds against its
open-files limit. Each reading is one small function over one /proc file, so a bench can
take a `Snapshot` before and after a step and print the difference.

The counters are the machine's, not one process's: on a machine shared with other work, a
difference includes theirs, which is why a bench reports the load average beside it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
PROC = Path("/proc")


def available_kib() -> int:
    """Memory the kernel could give new work without swapping (`MemAvailable`), in KiB."""
    for line in (PROC / "meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    raise RuntimeError("/proc/meminfo has no MemAvailable (Linux 3.14 or later needed)")


def tcp_sockets() -> tuple[int, int]:
    """(TCP sockets in use, KiB of socket buffers the kernel holds for TCP) machine-wide."""
    for line in (PROC / "net" / "sockstat").read_text().splitlines():
        if line.startswith("TCP:"):
            fields = line.split()[1:]
            values = dict(zip(fields[::2], map(int, fields[1::2]), strict=True))
            return values["inuse"], values["mem"] * PAGE // 1024
    raise RuntimeError("/proc/net/sockstat has no TCP line")


def tcp_counters(*names: str) -> dict[str, int]:
    """`TcpExt` counters from /proc/net/netstat (e.g. ListenOverflows, ListenDrops)."""
    lines = (PROC / "net" / "netstat").read_text().splitlines()
    for header, values in zip(lines[::2], lines[1::2], strict=True):
        if header.startswith("TcpExt:"):
            table = dict(zip(header.split()[1:], map(int, values.split()[1:]), strict=True))
            return {name: table[name] for name in names}
    raise RuntimeError("/proc/net/netstat has no TcpExt counters")


def open_descriptors(pid: int) -> int:
    """How many file descriptors process `pid` holds (each socket is one)."""
    return len(os.listdir(PROC / str(pid) / "fd"))


def port_range() -> tuple[int, int]:
    """The ephemeral ports a connect may use: at most this many connections from one source
    address to one destination address and port."""
    low, high = (PROC / "sys" / "net" / "ipv4" / "ip_local_port_range").read_text().split()
    return int(low), int(high)


def somaxconn() -> int:
    """The ceiling the kernel puts on any listen backlog (a server asking more gets this)."""
    return int((PROC / "sys" / "net" / "core" / "somaxconn").read_text())


@dataclass(frozen=True)
class Snapshot:
    """The machine-wide readings at one moment, to subtract one from another."""

    available_kib: int
    tcp_in_use: int
    tcp_buffers_kib: int
    listen_overflows: int
    listen_drops: int
    load: tuple[float, float, float]

    @classmethod
    def now(cls) -> Snapshot:
        in_use, buffers = tcp_sockets()
        counters = tcp_counters("ListenOverflows", "ListenDrops")
        return cls(
            available_kib(),
            in_use,
            buffers,
            counters["ListenOverflows"],
            counters["ListenDrops"],
            os.getloadavg(),
        )
