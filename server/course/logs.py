"""Where the course's servers write their logs, safely on a machine that many users share.

Each server the launcher starts writes to a file of its own (and keeps any files it needs, such
as nginx's rendered config, in a folder of its own) inside one folder per kernel:
`$TMPDIR/sse-course-<uid>/<pid>/`, or `$COURSE_LOG_DIR` when it is set. On a shared host (a
JupyterHub with forty learners) the temporary folder belongs to everyone, and that asks for care:

- Each user gets a folder of their own (`sse-course-<uid>`), created with mode 0700. A shared
  parent would belong to whoever came first, and lock everyone else out.
- A folder that already exists is checked before use: a real directory (not a symbolic link),
  owned by this user, open to nobody else. Anything else is refused with a message that says
  what to do: the course never writes into a folder another user controls.
- A log file is always a new file (`O_CREAT | O_EXCL`, which also refuses a symbolic link at
  that name): never a file, or a link, that someone placed there in advance. A taken name is
  skipped, so names stay readable: `server.apps.http_demo_app-1.log`, `-2`, ...
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO

from server.course.errors import LauncherError

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW


def log_dir() -> Path:
    """This kernel's log folder: `$COURSE_LOG_DIR`, else a private one in the temp folder."""
    override = os.environ.get("COURSE_LOG_DIR")
    if override:
        path = Path(override)
        path.mkdir(parents=True, exist_ok=True)
        return path
    mine = _private_dir(Path(tempfile.gettempdir()) / f"sse-course-{os.geteuid()}")
    return _private_dir(mine / str(os.getpid()))


def create_log(name: str) -> tuple[Path, BinaryIO]:
    """A new, empty log file for the server `name`, open for writing: (its path, the file)."""
    folder = log_dir()
    for number in itertools.count(1):
        path = folder / f"{_stem(name)}-{number}.log"
        try:
            descriptor = os.open(path, _CREATE, 0o600)
        except FileExistsError:
            continue
        return path, open(descriptor, "wb")
    raise AssertionError("unreachable")


def reopen_log(path: Path) -> BinaryIO:
    """A log file `create_log` made, open to add to its end (a restarted server goes on in it)."""
    return open(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW), "ab")


def new_workdir(name: str) -> Path:
    """A new private folder for a server's own files (nginx's config, redis's dir)."""
    return Path(tempfile.mkdtemp(prefix=f"{_stem(name)}-", dir=log_dir()))


def _stem(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name)


def _private_dir(path: Path) -> Path:
    """`path` as a folder only this user can use: created with mode 0700, or checked."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = path.lstat()
    instead = "or set COURSE_LOG_DIR to a folder of your own."
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        kind = "a symbolic link" if stat.S_ISLNK(info.st_mode) else "not a folder"
        raise LauncherError(
            f"{path} is {kind}. The course keeps its server logs there and will not use it: "
            f"remove it (`rm {path}`), {instead}"
        )
    if info.st_uid != os.geteuid():
        raise LauncherError(
            f"{path} is owned by user {info.st_uid}, not by you (user {os.geteuid()}). The "
            "course keeps its server logs there and will not write into a folder another user "
            f"controls: ask them or an administrator to remove it, {instead}"
        )
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise LauncherError(
            f"{path} is open to other users (mode {stat.S_IMODE(info.st_mode):o}). The course "
            f"keeps its server logs there: make it private with `chmod 700 {path}`, {instead}"
        )
    return path
