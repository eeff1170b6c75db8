"""Is this machine ready for the course? Every check says what it found, or how to fix it.

Lesson 00 runs these checks in a cell; from a terminal, `python -m server.course.doctor` does the
same and exits with status 1 if anything is missing.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from server.course.launcher import BinaryNotFoundError, find_binary

REQUIREMENTS = Path(__file__).resolve().parents[2] / "requirements.txt"
MIN_PYTHON = (3, 11)
VERSION_FLAGS = {"nginx": "-v", "redis-server": "--version"}


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str  # what was found, or how to fix it

    def __str__(self) -> str:
        return f"{'✅' if self.ok else '❌'} {self.name}: {self.detail}"


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
    try:
        path = find_binary(name)
    except BinaryNotFoundError as error:
        return Check(name, False, str(error))
    result = subprocess.run([path, VERSION_FLAGS[name]], capture_output=True, text=True)
    version = (result.stdout + result.stderr).strip().splitlines()[0].split(" sha=")[0]
    return Check(name, True, f"{version} at {path}")


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
        check_binary("nginx"),
        check_binary("redis-server"),
        check_loopback(),
    ]


def main() -> int:
    checks = run_all()
    for check in checks:
        print(check)
    failed = [c for c in checks if not c.ok]
    print(f"\n{len(checks) - len(failed)} of {len(checks)} checks passed.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
