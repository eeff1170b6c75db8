"""Ports: pick a free one, check that one is free, and ask one whether a server answers yet.

A probe says whether *something* answers on a port, not *who* does: the supervisor asks only
after the server itself has said that it listens (see `server.course.supervisor`), and the
probes are what make "listening" into "ready" (a gunicorn worker still loading the app, say).
"""

from __future__ import annotations

import errno
import http.client
import socket

from server.course.errors import PortInUseError

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def check_port_free(host: str, port: int) -> None:
    """Raise `PortInUseError` if another process listens on `host:port`."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do
        try:
            sock.bind((host, port))
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise
            raise PortInUseError(
                f"Port {port} on {host} is already in use. Pass port=None to let the course "
                f"pick a free port, or find what holds it with `lsof -iTCP:{port} -sTCP:LISTEN` "
                "and stop it (a server from a kernel you restarted is stopped by its watchdog "
                "within seconds)."
            ) from None


def http_answers(host: str, port: int, path: str = "/") -> bool:
    """True once anything answers HTTP at host:port (a 404 or a 502 is an answer too)."""
    connection = http.client.HTTPConnection(host, port, timeout=2)
    try:
        connection.request("GET", path)
        connection.getresponse()
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def tcp_answers(host: str, port: int) -> bool:
    """True once a TCP connection to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def redis_answers(host: str, port: int) -> bool:
    """True once redis answers PING with PONG."""
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False
