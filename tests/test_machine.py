"""server.clients.machine reads the kernel's counters that bench_100k reports: each one moves
when what it counts does (a socket held, a backlog overflowed), so a figure cannot be a
constant or another counter's."""

from __future__ import annotations

import os
import socket
import sys
import time

import pytest

from server.clients import machine

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")


def test_a_held_connection_is_two_descriptors_and_two_tcp_sockets() -> None:
    before = machine.open_descriptors(os.getpid())
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
        with client, accepted:
            # listener + client + accepted; the machine-wide count includes others' sockets
            assert machine.open_descriptors(os.getpid()) == before + 3
            assert machine.tcp_sockets()[0] >= 3


def test_a_full_backlog_counts_listen_overflows() -> None:
    """A listener that never accepts, with a backlog of 1: the third connect overflows it
    (Linux queues backlog + 1), and the kernel counts the dropped SYN."""
    before = machine.tcp_counters("ListenOverflows")["ListenOverflows"]
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        clients = [socket.socket() for _ in range(4)]
        try:
            for client in clients:
                client.setblocking(False)
                client.connect_ex(server.getsockname())
            deadline = time.monotonic() + 5
            while machine.tcp_counters("ListenOverflows")["ListenOverflows"] == before:
                assert time.monotonic() < deadline, "no overflow counted in 5 s"
                time.sleep(0.01)
        finally:
            for client in clients:
                client.close()


def test_snapshot_reads_memory_ports_and_the_backlog_ceiling() -> None:
    snapshot = machine.Snapshot.now()
    assert 0 < snapshot.available_kib < os.sysconf("SC_PHYS_PAGES") * machine.PAGE // 1024
    low, high = machine.port_range()
    assert 1024 <= low < high <= 65535
    assert machine.somaxconn() >= 128
    assert len(snapshot.load) == 3
