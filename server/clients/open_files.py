"""How many connections this process may hold: the open-files limit, raised where allowed.

Every socket is a file descriptor, and a process may hold at most its soft `RLIMIT_NOFILE`
(`ulimit -n`; often 1,024 by default). A load generator that meets the limit fails with
"Too many open files" half-way through a run. So `raise_open_files_limit` lifts the soft limit
to the hard one (processes started afterwards, the servers under test, inherit it), and
`stream_budget` says how many of the streams asked for fit, and why not all: a bench then
reports a smaller N with that line, not a traceback.
"""

from __future__ import annotations

import contextlib
import resource

RESERVED_FILES = 100  # descriptors a process needs besides its streams


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft limit on open files to the hard one where allowed; return (soft, hard)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    with contextlib.suppress(ValueError, OSError):  # macOS refuses an unlimited hard limit
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def stream_budget(wanted: int) -> tuple[int, str]:
    """How many of `wanted` streams this process can hold, and a line saying what limits it."""
    soft, hard = raise_open_files_limit()
    note = f"open-files limit {soft} (hard {hard})"
    if soft - RESERVED_FILES >= wanted:
        return wanted, note
    fits = max(0, soft - RESERVED_FILES)
    return fits, f"{note}: {wanted} streams asked, {fits} fit; raise it with ulimit -n"
