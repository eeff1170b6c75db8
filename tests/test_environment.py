"""The ways to install the course (venv + pip, conda, `pip install -e .`) must agree."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from server.course.doctor import pinned_packages

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# Import names that differ from the distribution's name.
DISTRIBUTION = {"dotenv": "python-dotenv"}


def _requirements() -> dict[str, str]:
    return {canonicalize_name(name): version for name, version in pinned_packages().items()}


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


def test_the_package_declares_ranges_that_contain_the_pins() -> None:
    """`pip install -e .` alone must work, and with the versions the course is tested on."""
    pins = _requirements()
    for line in PROJECT["dependencies"]:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is a dependency of the package but not in requirements.txt"
        assert requirement.specifier.contains(pins[name]), (line, pins[name])


def test_every_third_party_import_of_the_package_is_declared() -> None:
    declared = {canonicalize_name(Requirement(line).name) for line in PROJECT["dependencies"]}
    imported = set()
    for path in (ROOT / "server").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = {n for n in imported if n not in sys.stdlib_module_names and n != "server"}
    missing = {n for n in third_party if canonicalize_name(DISTRIBUTION.get(n, n)) not in declared}
    assert not missing, f"server/ imports {sorted(missing)}, which pyproject.toml does not declare"
