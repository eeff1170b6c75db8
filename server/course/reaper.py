"""A watchdog that stops the course's servers when the process that started them dies.

`atexit` handlers do not run when a Jupyter kernel is killed (SIGKILL on "Restart kernel",
an out-of-memory kill, a crashed interpreter), so a kernel cannot be trusted to stop its own
servers. Instead the launcher starts this small process once per kernel and keeps a pipe to
its standard input. The launcher writes one line per server it starts (``add PGID``) and one
per server it stops (``remove PGID``). When the pipe reaches end-of-file, whichever way the
kernel died, the reaper terminates every process group still registered, then exits.

Each server runs in its own session (and so its own process group), which lets the reaper
stop a server together with its children: nginx's workers, uvicorn's reloader, and so on.
The reaper runs in a session of its own too, so that killing the kernel's process group
does not take the reaper down before it has done its job.

Run as ``python -m server.course.reaper``; it is never imported by the notebooks.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterable

GRACE_SECONDS = 3.0


def _signal(pgid: int, sig: int) -> bool:
    """Send `sig` to the group; False if it is gone (or its id now belongs to someone else)."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def terminate_groups(pgids: Iterable[int], grace: float = GRACE_SECONDS) -> None:
    """SIGTERM every group, wait up to `grace` seconds, then SIGKILL what is left.

    A group may exit at any moment, between any two of these steps, so there is no "is it
    alive?" check before a signal: each signal is sent, and a group that is gone by then is
    simply done. One group's exit must never stop the cleanup of the others.
    """
    alive = [pgid for pgid in pgids if _signal(pgid, signal.SIGTERM)]
    deadline = time.monotonic() + grace
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [pgid for pgid in alive if _signal(pgid, 0)]
    for pgid in alive:
        _signal(pgid, signal.SIGKILL)


def main() -> None:
    # The kernel may be interrupted (Ctrl-C in a cell sends SIGINT to its group); the reaper
    # lives in its own session, but ignore SIGINT anyway so only end-of-file stops it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    groups: set[int] = set()
    for line in sys.stdin:
        command, _, value = line.strip().partition(" ")
        if command == "add" and value.isdigit():
            groups.add(int(value))
        elif command == "remove" and value.isdigit():
            groups.discard(int(value))
    terminate_groups(groups)


if __name__ == "__main__":
    main()
