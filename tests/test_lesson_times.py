"""Every lesson states at least the time a careful first pass takes, and the docs quote it.

The estimate comes from `tools/lesson_time.py` (words, code lines, exercises, questions, at
stated rates). A lesson that grows without its stated time growing fails here, and so does a
README or INSTRUCTORS.md row that quotes a time the notebook no longer states.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tools.lesson_time import Estimate, estimates

ROOT = Path(__file__).resolve().parent.parent
LESSONS = estimates()


def quoted(e: Estimate) -> str:
    """How README.md and INSTRUCTORS.md write a lesson's time."""
    extra = f" + {e.stated_optional} optional" if e.stated_optional else ""
    return f"{e.stated_core} min{extra}"


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda e: e.name)
def test_the_stated_time_covers_a_careful_first_pass(lesson: Estimate) -> None:
    assert lesson.stated_core is not None, (
        f"{lesson.name} states no time as '**Time:** about N minutes.' in its first cells"
    )
    assert lesson.stated_core >= lesson.core_minutes, (
        f"{lesson.name} says {lesson.stated_core} min; its core takes about "
        f"{lesson.core_minutes} (python -m tools.lesson_time)"
    )
    assert lesson.stated_core <= 1.5 * lesson.core_minutes + 10, (
        f"{lesson.name} says {lesson.stated_core} min for about {lesson.core_minutes}: "
        "a time that far above the estimate helps nobody plan"
    )


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda e: e.name)
def test_optional_sections_state_their_own_time(lesson: Estimate) -> None:
    if lesson.optional_minutes == 0:
        assert lesson.stated_optional is None, f"{lesson.name} has no optional section"
        return
    assert lesson.stated_optional is not None, (
        f"{lesson.name} has optional sections: say '..., plus N for the optional sections.'"
    )
    assert lesson.stated_optional >= lesson.optional_minutes, (
        f"{lesson.name}'s optional sections take about {lesson.optional_minutes} min, "
        f"not {lesson.stated_optional}"
    )


@pytest.mark.parametrize("document", ["README.md", "INSTRUCTORS.md"])
def test_the_docs_quote_the_times_the_lessons_state(document: str) -> None:
    text = (ROOT / document).read_text()
    for lesson in LESSONS:
        number = lesson.name[:2]
        rows = [r for r in text.splitlines() if re.match(rf"\|\s*{number}\s*\|", r)]
        assert rows, f"{document} has no row for lesson {number}"
        assert any(quoted(lesson) in row for row in rows), (
            f"{document}'s row for lesson {number} should say '{quoted(lesson)}'"
        )


def test_the_estimate_counts_words_code_exercises_and_questions_at_the_stated_rates(
    tmp_path: Path,
) -> None:
    import nbformat

    from tools.lesson_time import estimate

    words = " ".join(["word"] * 125)
    exercise = "def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n"
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell(f"# T\n\n**Time:** about 25 minutes.\n\n{words}"),
        nbformat.v4.new_code_cell("\n".join(f"x{i} = {i}" for i in range(14)) + "\n\n" + exercise),
        nbformat.v4.new_markdown_cell("## Check yourself\n\n1. Why?\n2. How?"),
        nbformat.v4.new_markdown_cell("## 9. Deeper (optional)\n\n" + " ".join(["w"] * 256)),
    ]
    path = tmp_path / "99_t.ipynb"
    nbformat.write(notebook, path)
    e = estimate(path)
    # 125 words + 6 of title and time line + 7 of questions; 14 lines + the def and its stub
    assert (e.core.words, e.core.code_lines, e.core.exercises, e.core.questions) == (
        138,
        16,
        1,
        2,
    )
    assert e.core_minutes == 21  # 138/130 + 16/15 + 15 + 2 * 1.5 = 20.1, rounded up
    assert (e.optional.words, e.optional_minutes) == (260, 2)
    assert (e.stated_core, e.stated_optional) == (25, None)
