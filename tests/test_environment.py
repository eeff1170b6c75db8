"""The two ways to install the course (venv + pip, conda) must install the same things."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _requirements() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[re.sub(r"\[.*\]", "", name).lower()] = version
    return pins


def test_every_python_dependency_is_pinned_exactly() -> None:
    pins = _requirements()
    assert pins, "requirements.txt lists no packages"
    assert [name for name, version in pins.items() if not version] == []


def test_conda_environment_installs_the_same_pins_and_python() -> None:
    text = (ROOT / "environment.yml").read_text()
    assert "- -r requirements.txt" in text, "environment.yml must install requirements.txt"
    # Any other pip line in environment.yml would be a second, drifting pin.
    pip_block = text.split("- pip:", 1)[1]
    assert [ln.strip() for ln in pip_block.splitlines() if ln.strip()] == ["- -r requirements.txt"]
    for program in ("nginx", "redis-server"):
        assert re.search(rf"^\s*- {program}$", text, re.M), f"{program} missing from conda env"
    conda_python = re.search(r"^\s*- python=(\d+\.\d+)", text, re.M)
    assert conda_python, "environment.yml must pin python"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == f">={conda_python.group(1)}"
