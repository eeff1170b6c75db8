"""Is this machine ready for the course? Every check says what it found, or how to fix it.

Lesson 00 runs these checks in a cell; from a terminal, `python -m server.course.doctor` does the
same and exits with status 1 if anything the first lessons need is missing.

Not everything is needed at once. Python, the pinned packages and a loopback address are needed
from lesson 00 on: without them a check *fails* (❌). The programs that are not Python packages
come in later: Chromium (lesson 05, a browser the notebook drives), nginx (lesson 08) and
redis-server (lesson 09). Without them a check only *warns* (⚠️), with the line that installs
them and the lesson that needs them, so a learner can start now and install them before then.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Literal

from server.course.browser import BrowserNotFoundError, find_chromium
from server.course.launcher import BinaryNotFoundError, find_binary

REQUIREMENTS = Path(__file__).resolve().parents[2] / "requirements.txt"
MIN_PYTHON = (3, 11)
VERSION_FLAGS = {"nginx": "-v", "redis-server": "--version"}
# The first lesson that runs each program; before it, a missing one is only a warning.
NEEDED_FROM = {"chromium": 5, "nginx": 8, "redis-server": 9}
SYMBOLS = {"ok": "✅", "warning": "⚠️", "failed": "❌"}


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str  # what was found, or how to fix it
    needed_from: int = 0  # the first lesson that needs it

    @property
    def status(self) -> Literal["ok", "warning", "failed"]:
        """`ok`, `failed` (needed now) or `warning` (missing, but only a later lesson needs it)."""
        if self.ok:
            return "ok"
        return "warning" if self.needed_from > 0 else "failed"

    def __str__(self) -> str:
        return f"{SYMBOLS[self.status]} {self.name}: {self.detail}"


def _missing(name: str, how_to_install: str) -> Check:
    lesson = NEEDED_FROM[name]
    return Check(
        name,
        False,
        f"{how_to_install} Needed from lesson {lesson:02d} on; lessons 00-{lesson - 1:02d} run "
        "without it.",
        needed_from=lesson,
    )


def check_python() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info[:2] >= MIN_PYTHON:
        return Check("python", True, f"{version} at {sys.executable}")
    return Check("python", False, f"{version} is too old; the course needs 3.11 or newer")


def pinned_packages() -> dict[str, str]:
    """The `name==version` pins of requirements.txt (empty if the file is not beside us)."""
    if not REQUIREMENTS.exists():
        return {}
    pins = {}
    for line in REQUIREMENTS.read_text().splitlines():
        name, _, version = line.split("#")[0].strip().partition("==")
        if name:
            pins[re.sub(r"\[.*\]", "", name)] = version
    return pins


def check_packages() -> list[Check]:
    checks = []
    for name, pinned in pinned_packages().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            checks.append(Check(name, False, "not installed; run `make setup`"))
            continue
        if installed == pinned:
            checks.append(Check(name, True, installed))
        else:
            checks.append(
                Check(name, False, f"{installed} installed, {pinned} pinned; run `make setup`")
            )
    return checks


def check_binary(name: str) -> Check:
    """nginx or redis-server: found (with its version), or how to install it."""
    try:
        path = find_binary(name)
    except BinaryNotFoundError as error:
        return _missing(name, str(error))
    result = subprocess.run([path, VERSION_FLAGS[name]], capture_output=True, text=True)
    version = (result.stdout + result.stderr).strip().splitlines()[0].split(" sha=")[0]
    return Check(name, True, f"{version} at {path}", needed_from=NEEDED_FROM[name])


def check_chromium() -> Check:
    """The browser lessons 05 on drive with Playwright (found, not started: that takes seconds)."""
    try:
        path = find_chromium()
    except BrowserNotFoundError as error:
        return _missing("chromium", str(error))
    return Check("chromium", True, f"found at {path}", needed_from=NEEDED_FROM["chromium"])


def check_loopback() -> Check:
    """Servers listen on 127.0.0.1; some sandboxes forbid binding even that."""
    try:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            sock.listen()
    except OSError as error:
        return Check("loopback", False, f"cannot listen on 127.0.0.1: {error}")
    return Check("loopback", True, "servers can listen on 127.0.0.1")


def run_all() -> list[Check]:
    return [
        check_python(),
        *check_packages(),
        check_loopback(),
        check_chromium(),
        check_binary("nginx"),
        check_binary("redis-server"),
    ]


def main() -> int:
    """Print every check and a count; exit status 1 if something needed now has failed."""
    checks = run_all()
    for check in checks:
        print(check)
    counts = {status: sum(c.status == status for c in checks) for status in SYMBOLS}
    warnings = f"{counts['warning']} warning{'' if counts['warning'] == 1 else 's'}"
    print(
        f"\n{counts['ok']} of {len(checks)} checks passed, {warnings} (needed only by later "
        f"lessons), {counts['failed']} failed."
    )
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
