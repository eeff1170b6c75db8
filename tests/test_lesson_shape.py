"""Every lesson has the same shape, so a learner always knows where things are.

A title and the time first; each heading at the top of its own cell; at the end "Check
yourself", then "Summary", then the cell that stops every server, then the way on.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
HEADING = re.compile(r"^#{1,4} ", re.M)


def _cells(path: Path) -> list[nbformat.NotebookNode]:
    return nbformat.read(path, as_version=4).cells


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_every_heading_starts_its_own_cell(path: Path) -> None:
    inside = [
        (cell.get("id"), match.group(0))
        for cell in _cells(path)
        if cell.cell_type == "markdown"
        for match in HEADING.finditer(cell.source)
        if match.start() > 0
    ]
    assert not inside, f"headings in the middle of a cell: {inside}"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_a_lesson_ends_check_yourself_summary_stop_all_and_the_way_on(path: Path) -> None:
    cells = _cells(path)
    headings = [c.source.splitlines()[0] for c in cells if c.cell_type == "markdown" and c.source]
    level2 = [h for h in headings if h.startswith("## ")]
    assert level2[-2:] == ["## Check yourself", "## Summary"], level2[-3:]
    stops = [i for i, c in enumerate(cells) if c.cell_type == "code" and "stop_all()" in c.source]
    summary = max(i for i, c in enumerate(cells) if c.source.startswith("## Summary"))
    assert stops and stops[-1] > summary, "stop_all() comes after the summary"
    tail = "\n".join(c.source for c in cells[stops[-1] + 1 :])
    assert "](" in tail, "the last cells link to the next lesson (or back to the course map)"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_check_yourself_asks_numbered_questions_with_hidden_answers(path: Path) -> None:
    cells = _cells(path)
    start = next(i for i, c in enumerate(cells) if c.source.startswith("## Check yourself"))
    end = next(i for i, c in enumerate(cells) if c.source.startswith("## Summary"))
    text = "\n".join(c.source for c in cells[start:end])
    assert re.search(r"^1\. ", text, re.M), "questions numbered 1., 2., ..."
    assert "<!-- BEGIN SOLUTION -->" in text, "answers hidden from the learner's copy"
