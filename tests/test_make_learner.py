"""The learner-copy generator: stubs where the markers are, no outputs, drift detected."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tools.make_learner import MARKDOWN_STUB, STUB, learner_copy, strip_solutions

ROOT = Path(__file__).resolve().parent.parent


def test_solution_block_becomes_a_stub_at_the_marker_indent() -> None:
    source = "def f(x):\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION\n"
    assert strip_solutions(source, "t") == f"def f(x):\n    {STUB}\n"


def test_text_outside_markers_is_untouched() -> None:
    source = "a = 1\nprint(a)"
    assert strip_solutions(source, "t") == source


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("### BEGIN SOLUTION\nx", "never closed"),
        ("### END SOLUTION", "without a BEGIN"),
        ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "inside another"),
    ],
)
def test_unbalanced_markers_are_an_error(source: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        strip_solutions(source, "t")


def test_learner_copy_has_no_outputs_and_no_solution() -> None:
    cell = nbformat.v4.new_code_cell(
        "def f():\n    ### BEGIN SOLUTION\n    return 42\n    ### END SOLUTION",
        execution_count=3,
        outputs=[nbformat.v4.new_output("stream", text="42\n")],
    )
    solution = nbformat.v4.new_notebook(cells=[cell], metadata={"widgets": {}})
    copy = learner_copy(solution, "t.ipynb")
    assert copy.cells[0].outputs == []
    assert copy.cells[0].execution_count is None
    assert "42" not in copy.cells[0].source
    assert "widgets" not in copy.metadata
    assert solution.cells[0].outputs, "the solution itself must not be modified"


def test_markdown_answers_are_hidden_in_the_learner_copy() -> None:
    questions = "## Check yourself\n\n1. Why?\n\n"
    answers = "<!-- BEGIN SOLUTION -->\n**Answers.** 1. Because.\n<!-- END SOLUTION -->"
    cell = nbformat.v4.new_markdown_cell(questions + answers)
    solution = nbformat.v4.new_notebook(cells=[cell])
    copy = learner_copy(solution, "07_x.ipynb")
    assert copy.cells[0].source == questions + MARKDOWN_STUB.format(name="07_x.ipynb")
    assert "Because" in solution.cells[0].source, "the solution itself must not be modified"


def test_code_markers_in_markdown_are_left_alone() -> None:
    text = "Write `### BEGIN SOLUTION` above your answer.\n### END SOLUTION"
    copy = learner_copy(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(text)]), "t")
    assert copy.cells[0].source == text


def test_learner_copies_match_the_solutions() -> None:
    result = subprocess.run(
        [sys.executable, "tools/make_learner.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
