"""What every build-it stage's tests share: the reference and the stubs checked, and mistakes.

Each `tests/test_stage_N.py` starts with

    test_the_reference_passes, test_the_stubs_fail_with_a_hint = reference_and_stubs(N)

(one file per stage, so that parallel workers run the stages side by side), then breaks a copy
of the reference the way a learner plausibly would (`broken`) and shows the check stop at the
behaviour that mistake breaks.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from server.course import project
from server.course.stages import CHECKER_BUG, check_stage, stage_module

Test = Callable[[Path, pytest.CaptureFixture[str]], None]


def reference_copy(tmp_path: Path) -> Path:
    """A copy of the reference project (solutions/mychat): its progress file stays out of git."""
    folder = tmp_path / "solutions" / "mychat"
    ignore = shutil.ignore_patterns("__pycache__", ".progress.json")
    shutil.copytree(project.REFERENCE, folder, ignore=ignore)
    return folder


def broken(tmp_path: Path, file: str, *edits: tuple[str, str]) -> Path:
    """A copy of the reference with each (right, wrong) edit made in `file`: `right` must be
    there exactly once, so a changed reference fails the test instead of breaking nothing."""
    folder = reference_copy(tmp_path)
    path = folder / file
    text = path.read_text()
    for right, wrong in edits:
        assert text.count(right) == 1, f"the reference's {file} no longer has {right!r} once"
        text = text.replace(right, wrong)
    path.write_text(text)
    return folder


def first_miss(stage: int, folder: Path, capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """Check `folder` at `stage`, which must fail (and not by a checker bug): its ❌ line, and
    the whole report for the assertion's message."""
    assert not check_stage(stage, folder)
    out = capsys.readouterr().out
    assert CHECKER_BUG not in out, out
    return next(line for line in out.splitlines() if line.startswith("❌")), out


def reference_and_stubs(stage: int) -> tuple[Test, Test]:
    """The two tests every stage has: the reference passes; the stubs fail with a hint."""
    marks = [getattr(pytest.mark, need) for need in getattr(stage_module(stage), "NEEDS", ())]

    def test_the_reference_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        passed = check_stage(stage, reference_copy(tmp_path))
        out = capsys.readouterr().out
        assert passed, out
        assert "❌" not in out and f"Stage {stage} passed" in out

    def test_the_stubs_fail_with_a_hint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        folder = tmp_path / "notebooks" / "mychat"
        project.generate(folder)
        passed = check_stage(stage, folder)
        out = capsys.readouterr().out
        assert not passed, out
        assert out.count("❌") == 1 and "   received: " in out and "   hint: " in out, out
        assert CHECKER_BUG not in out, out
        assert '"passed": false' in (folder / ".progress.json").read_text()

    tests = [test_the_reference_passes, test_the_stubs_fail_with_a_hint]
    for mark in marks:
        tests = [mark(test) for test in tests]
    return tests[0], tests[1]
