"""The stage checks as a learner meets them: their own error at their own line, a stage that
does not exist refused. Each stage's own tests (the reference passes, the stubs fail with a hint,
mistakes caught) are in tests/test_stage_N.py, built from tests/stage_checks.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from server.course import project
from server.course.stages import STAGES, check_stage

ROOT = Path(__file__).resolve().parents[1]


def test_every_stage_has_its_reference_and_stub_tests() -> None:
    """Each stage module's two standard tests live in tests/test_stage_N.py (see stage_checks)."""
    for stage in STAGES:
        tests = ROOT / "tests" / f"test_stage_{stage}.py"
        assert tests.is_file(), f"no {tests.name} for stage {stage}"
        assert f"= reference_and_stubs({stage})" in tests.read_text(), tests.name


@pytest.fixture
def stubs(tmp_path: Path) -> Path:
    """A fresh learner copy, generated from the reference as `make notebooks` does."""
    folder = tmp_path / "notebooks" / "mychat"
    project.generate(folder)
    return folder


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
