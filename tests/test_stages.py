"""Every build-it stage passes on the reference project and fails helpfully on the untouched stubs.

The reference (solutions/mychat) is what a learner who did every stage has; the stubs
(notebooks/mychat, as generated) are what a learner starts from. On the stubs a stage must stop at
its first behaviour with what it received and a hint: no hang, no crash of the checker itself.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from server.course import project
from server.course.stages import CHECKER_BUG, STAGES, check_stage, stage_module

PRESENT = [
    n for n in STAGES if (Path(__file__).parents[1] / f"server/course/stages/stage_{n}.py").exists()
]


def marks(stage: int) -> list[pytest.MarkDecorator]:
    return [getattr(pytest.mark, need) for need in getattr(stage_module(stage), "NEEDS", ())]


@pytest.fixture
def stubs(tmp_path: Path) -> Path:
    """A fresh learner copy, generated from the reference as `make notebooks` does."""
    folder = tmp_path / "notebooks" / "mychat"
    project.generate(folder)
    return folder


@pytest.fixture
def reference(tmp_path: Path) -> Path:
    """The reference project, copied so its check's progress file stays out of the repo."""
    folder = tmp_path / "solutions" / "mychat"
    shutil.copytree(project.REFERENCE, folder, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


@pytest.mark.parametrize("stage", [pytest.param(n, marks=marks(n)) for n in PRESENT])
def test_the_reference_passes(
    stage: int, reference: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    passed = check_stage(stage, reference)
    out = capsys.readouterr().out
    assert passed, out
    assert "❌" not in out and f"Stage {stage} passed" in out


@pytest.mark.parametrize("stage", [pytest.param(n, marks=marks(n)) for n in PRESENT])
def test_the_stubs_fail_with_a_hint(
    stage: int, stubs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    passed = check_stage(stage, stubs)
    out = capsys.readouterr().out
    assert not passed, out
    assert out.count("❌") == 1 and "   received: " in out and "   hint: " in out, out
    assert CHECKER_BUG not in out, out
    assert '"passed": false' in (stubs / ".progress.json").read_text()


def test_a_learner_error_is_reported_at_their_line(
    stubs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    countdown = stubs / "countdown.py"
    countdown.write_text(countdown.read_text().replace("# stage 1: your code here", "def broken(:"))
    assert not check_stage(1, stubs)
    out = capsys.readouterr().out
    line = countdown.read_text().splitlines().index("def broken(:") + 1
    assert f"SyntaxError: invalid syntax (mychat/countdown.py line {line})" in out, out


def test_an_unknown_stage_is_refused() -> None:
    with pytest.raises(ValueError, match="there is no stage 12"):
        check_stage(12)
