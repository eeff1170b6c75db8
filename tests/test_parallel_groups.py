"""`make test`'s parallel workers keep a module's tests together, so its stack starts once.

tests/conftest.py puts each module's tests in one xdist group (`--dist loadgroup`); a group
that silently stops reaching the scheduler costs nothing visible but time: every module-scoped
stack (nginx, workers, Redis, Chromium) then starts on each worker that gets one of its tests.
So a small suite of three modules, each with a module-scoped fixture that notes its setups, is
run the way the Makefile runs the tests, with this conftest.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MODULE = """
import os

import pytest


@pytest.fixture(scope="module")
def stack():
    with open(os.environ["SETUPS"], "a") as setups:
        setups.write(__name__ + "\\n")


@pytest.mark.parametrize("n", range(4))
def test_uses_the_stack(stack, n):
    pass
"""


def test_a_module_s_stack_starts_once_across_parallel_workers(tmp_path: Path) -> None:
    tests = tmp_path / "tests"
    tests.mkdir()
    shutil.copy(ROOT / "tests" / "conftest.py", tests)
    for name in ("a", "b", "c"):
        (tests / f"test_{name}.py").write_text(MODULE)
    setups = tmp_path / "setups"
    # xdist alone of the installed plugins (the others cost seconds of imports per worker)
    only_xdist = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    env = {**os.environ, **only_xdist, "PYTHONPATH": str(ROOT), "SETUPS": str(setups)}
    xdist = ["-p", "xdist.plugin", "-n", "2", "--dist", "loadgroup", "--no-loadscope-reorder"]
    done = subprocess.run(  # the Makefile's XDIST
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *xdist, "tests"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "12 passed" in done.stdout, done.stdout
    assert sorted(setups.read_text().split()) == ["test_a", "test_b", "test_c"]
