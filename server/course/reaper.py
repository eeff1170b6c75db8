"""A watchdog that stops the course's servers when the process that started them dies.

`atexit` handlers do not run when a Jupyter kernel is killed (SIGKILL on "Restart kernel",
an out-of-memory kill, a crashed interpreter), so a kernel cannot be trusted to stop its own
servers. Instead the launcher starts this small process once per kernel and keeps a pipe to
its standard input. Both ends of that pipe are in this module:

- the kernel's end, `Watchdog`: it starts the reaper when the first server starts, and writes
  one line per server it starts (``add PGID``) and one per server it stops (``remove PGID``);
- the reaper's end, `main`: it keeps the set of registered groups, and when the pipe reaches
  end-of-file, whichever way the kernel died, it terminates every group still registered,
  then exits. A kernel that exits cleanly stops its servers first and then closes the pipe,
  so the reaper finds nothing left to do.

Each server runs in its own session (and so its own process group), which lets the reaper
stop a server together with its children: nginx's workers, uvicorn's reloader, and so on.
The reaper runs in a session of its own too, so that killing the kernel's process group
does not take the reaper down before it has done its job.

The reaper runs as ``python -m server.course.reaper``; only the launcher talks to it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable

GRACE_SECONDS = 3.0


class Watchdog:
    """The kernel's end of the pipe: tells the reaper which process groups to stop."""

    def __init__(self) -> None:
        self._reaper: subprocess.Popen[bytes] | None = None
        self._owner = 0  # the pid that started the reaper: a forked child needs its own
        self._groups: set[int] = set()

    def add(self, pgid: int) -> None:
        self._groups.add(pgid)
        self._tell(f"add {pgid}\n")

    def remove(self, pgid: int) -> None:
        if pgid in self._groups:
            self._groups.discard(pgid)
            self._tell(f"remove {pgid}\n")

    def close(self, timeout: float) -> None:
        """Let the reaper go: end-of-file on its input. Stop the servers first, or it will."""
        reaper, self._reaper = self._reaper, None
        if reaper is not None and reaper.stdin is not None and self._owner == os.getpid():
            reaper.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                reaper.wait(timeout)

    def _tell(self, line: str) -> None:
        reaper = self._reaper
        if reaper is None or self._owner != os.getpid() or reaper.poll() is not None:
            reaper = self._reaper = subprocess.Popen(
                [sys.executable, "-m", "server.course.reaper"],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            self._owner = os.getpid()
            line = "".join(f"add {pgid}\n" for pgid in self._groups)  # a new reaper: all of them
        assert reaper.stdin is not None  # stdin=PIPE
        reaper.stdin.write(line.encode())
        reaper.stdin.flush()


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
