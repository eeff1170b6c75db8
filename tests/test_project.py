"""The learner's chat project: generated from the reference, never losing the learner's work.

A learner edits `notebooks/mychat/` for hours; regenerating their copy or catching up to a stage
must keep what they wrote. These tests use a small reference of their own (tmp_path), so they
hold whatever the real project's stages become.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.course import progress, project
from server.course.stages import check_stage

APP = '''"""A two-stage file."""

import json

### BEGIN STAGE 1
def hello() -> str:
    return "hello"
### END STAGE 1


def answer(name: str) -> str:
    ### BEGIN STAGE 2, stub: return ""
    return hello() + ", " + name
    ### END STAGE 2


def shout(name: str) -> str:
    ### BEGIN STAGE 3
    return answer(name).upper()
    ### END STAGE 3
'''
PAGE = "<main>\n  <!-- BEGIN STAGE 3 -->\n  <p>hi</p>\n  <!-- END STAGE 3 -->\n</main>\n"
SCRIPT = "// BEGIN STAGE 3\nconsole.log(1);\n// END STAGE 3\n"


@pytest.fixture
def reference(tmp_path: Path) -> Path:
    folder = tmp_path / "solutions" / "mychat"
    (folder / "static").mkdir(parents=True)
    (folder / "app.py").write_text(APP)
    (folder / "static" / "index.html").write_text(PAGE)
    (folder / "static" / "app.js").write_text(SCRIPT)
    return folder


@pytest.fixture
def learner(tmp_path: Path, reference: Path) -> Path:
    folder = tmp_path / "notebooks" / "mychat"
    project.generate(folder, reference)
    return folder


def test_each_stage_is_stubbed_in_the_files_own_comment_syntax(learner: Path) -> None:
    app = (learner / "app.py").read_text()
    assert "### BEGIN STAGE 1\n# stage 1: your code here\n### END STAGE 1" in app
    assert 'return ""  # stage 2: your code here' in app  # the marker's own stub
    assert 'raise NotImplementedError("stage 3: your code here")' in app
    assert "return hello()" not in app and "import json" in app  # code outside blocks is given
    assert "<!-- stage 3: your code here -->" in (learner / "static" / "index.html").read_text()
    assert "// stage 3: your code here" in (learner / "static" / "app.js").read_text()


def test_the_stub_copy_compiles(learner: Path) -> None:
    compile((learner / "app.py").read_text(), "app.py", "exec")


def test_regenerating_keeps_an_edited_file_in_a_backup(learner: Path, reference: Path) -> None:
    app = learner / "app.py"
    mine = app.read_text().replace("# stage 1: your code here", "def hello() -> str: ...")
    app.write_text(mine)
    (reference / "app.py").write_text(APP.replace('"hello"', '"hi"'))  # the course changes
    done = project.generate(learner, reference)
    backups = list((learner.parent / "mychat.backup").rglob("app.py"))
    assert len(backups) == 1 and backups[0].read_text() == mine, done
    assert app.read_text() != mine


def test_regenerating_replaces_an_untouched_file_without_a_backup(
    learner: Path, reference: Path
) -> None:
    (reference / "static" / "app.js").write_text(SCRIPT.replace("1", "2"))
    project.generate(learner, reference)
    assert not (learner.parent / "mychat.backup").exists()


def test_the_learners_own_files_are_never_touched(learner: Path, reference: Path) -> None:
    own = learner / "notes.py"
    own.write_text("# mine\n")
    project.generate(learner, reference)
    project.catch_up(3, learner, reference)
    assert own.read_text() == "# mine\n"


def test_catching_up_fills_only_earlier_stages_and_keeps_the_rest(
    learner: Path, reference: Path
) -> None:
    app = learner / "app.py"
    text = app.read_text().replace(
        'raise NotImplementedError("stage 3: your code here")', "return 'mine'"
    )
    app.write_text(text.replace("import json", "import json  # my comment"))
    project.catch_up(3, learner, reference)
    caught_up = app.read_text()
    assert 'return "hello"' in caught_up and 'return hello() + ", " + name' in caught_up
    assert "return 'mine'" in caught_up and "# my comment" in caught_up  # theirs, kept
    saved = next((learner.parent / "mychat.backup").rglob("app.py")).read_text()
    assert "# my comment" in saved and 'return "hello"' not in saved


def test_catching_up_a_file_without_its_markers_replaces_it_after_a_backup(
    learner: Path, reference: Path
) -> None:
    app = learner / "app.py"
    app.write_text("print('markers deleted')\n")
    project.catch_up(2, learner, reference)
    assert 'return "hello"' in app.read_text()
    assert 'raise NotImplementedError("stage 3' in app.read_text()
    assert next((learner.parent / "mychat.backup").rglob("app.py")).read_text().startswith("print")


def test_drift_names_a_stale_copy(learner: Path, reference: Path) -> None:
    assert project.drift(learner, reference) == []
    (reference / "app.py").write_text(APP + "\n# more\n")
    assert project.drift(learner, reference) == [
        "mychat/app.py differs from what mychat/ generates",
        f"mychat/{project.MANIFEST} is out of date",
    ]


def test_a_marker_out_of_place_is_refused() -> None:
    with pytest.raises(ValueError, match="BEGIN STAGE 2 is never closed"):
        project.blocks("### BEGIN STAGE 2\nx = 1\n", "app.py")
    with pytest.raises(ValueError, match="END STAGE 1 without its BEGIN"):
        project.blocks("x = 1\n### END STAGE 1\n", "app.py")


def test_the_real_learner_copy_is_what_the_reference_generates() -> None:
    assert project.drift() == []


def test_catch_up_then_check_the_stage_before(tmp_path: Path) -> None:
    """The promise to a learner who skipped a lesson: after catching up to 2, stage 1 passes."""
    folder = tmp_path / "notebooks" / "mychat"
    project.generate(folder)
    project.catch_up(2, folder)
    assert check_stage(1, folder)


def test_the_progress_table_reads_each_learners_results(tmp_path: Path) -> None:
    for name, results in {"ana": {"1": True, "2": False}, "bo": {}}.items():
        folder = tmp_path / "home" / name / "sse-course" / "notebooks" / "mychat"
        folder.mkdir(parents=True)
        marks = {stage: {"passed": passed} for stage, passed in results.items()}
        (folder / ".progress.json").write_text(json.dumps(marks))
    table = progress.table(sorted((tmp_path / "home").glob("*/sse-course/notebooks/mychat")))
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["learner", "1", "2"]
    assert lines[1].split()[:4] == ["ana", "✅", "❌", "·"], table
    assert lines[2].split()[:3] == ["bo", "·", "·"], table
    assert lines[-1] == "2 learners; stages passed per learner: [0, 1]"
