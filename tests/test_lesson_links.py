"""server.course.lesson_links: links from an on-paper section to cells that check something."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from server.course.lesson_links import broken_links, cell_source, linked_cells

ROOT = Path(__file__).resolve().parent.parent


def write(path: Path, *cells: nbformat.NotebookNode) -> None:
    nbformat.write(new_notebook(cells=list(cells)), path)


def test_links_to_missing_or_unchecking_cells_are_reported(tmp_path: Path) -> None:
    write(
        tmp_path / "01_a.ipynb",
        new_code_cell("assert 1 + 1 == 2", id="checks"),
        new_code_cell('claim("holds", True)', id="claims"),
        new_code_cell("print('nothing checked')", id="prints"),
        new_markdown_cell("assert, in prose", id="prose"),
    )
    links = "".join(
        f"[x](01_a.ipynb#cell-id={cell_id}) "
        for cell_id in ("checks", "claims", "prints", "prose", "gone")
    )
    write(
        tmp_path / "02_b.ipynb",
        new_markdown_cell(links + "[y](09_none.ipynb#cell-id=checks)", id="02-check-table"),
        new_markdown_cell("[z](01_a.ipynb#cell-id=gone)", id="02-other"),
    )
    assert len(linked_cells(tmp_path, "02_b.ipynb", "02-check")) == 6
    assert cell_source(tmp_path, "02_b.ipynb", "02-other") == "[z](01_a.ipynb#cell-id=gone)"
    with pytest.raises(LookupError, match="no cell 'nope'"):
        cell_source(tmp_path, "02_b.ipynb", "nope")
    assert broken_links(tmp_path, "02_b.ipynb", "02-check") == [
        "01_a.ipynb#prints",
        "01_a.ipynb#prose",
        "01_a.ipynb#gone",
        "09_none.ipynb#checks",
    ]


def test_lesson_11_s_checklist_links_hold_in_solutions_and_learner_copies() -> None:
    for folder in ("solutions", "notebooks"):
        assert linked_cells(ROOT / folder, "11_capstone.ipynb", "11-check")
        assert broken_links(ROOT / folder, "11_capstone.ipynb", "11-check") == []
