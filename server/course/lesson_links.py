"""Links from a lesson's on-paper section to the cells that measured what it says.

Lesson 11's production checklist is prose: each row pairs a vendor's documented limit with
what the course measured, linked as ``[08 §2](08_nginx.ipynb#cell-id=08-s1-plot)``. Lessons
change and cells get new ids, so a link can come to point at nothing, or at a cell that no
longer checks anything. `broken_links` finds those: every such link in the lesson's markdown
cells whose id starts with `prefix` must name a code cell, in a notebook of the same folder,
that asserts or makes a `claim`. The notebook is read as JSON (no validation): it is fast, and
works the same on solutions and on learner copies.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

LINK = re.compile(r"\]\((\d\d_\w+\.ipynb)#cell-id=([\w-]+)\)")
CHECKS = re.compile(r"\bassert\b|\bclaim\(")


def _cells(path: Path) -> list[dict[str, object]]:
    cells: list[dict[str, object]] = json.loads(path.read_text())["cells"]
    return cells


def _source(cell: dict[str, object]) -> str:
    source = cell["source"]
    return "".join(source) if isinstance(source, list) else str(source)


def cell_source(folder: Path, lesson: str, cell_id: str) -> str:
    """The source of one cell of `lesson` (a checklist table, to check its rows)."""
    for cell in _cells(folder / lesson):
        if cell.get("id") == cell_id:
            return _source(cell)
    raise LookupError(f"{lesson} has no cell {cell_id!r}")


def linked_cells(folder: Path, lesson: str, prefix: str) -> list[tuple[str, str]]:
    """Every (notebook, cell id) that `lesson`'s markdown cells starting `prefix` link to."""
    return [
        link
        for cell in _cells(folder / lesson)
        if cell["cell_type"] == "markdown" and str(cell.get("id", "")).startswith(prefix)
        for link in LINK.findall(_source(cell))
    ]


def broken_links(folder: Path, lesson: str, prefix: str) -> list[str]:
    """The links (``name#id``) that point at no code cell which asserts or claims."""
    broken = []
    for name, cell_id in linked_cells(folder, lesson, prefix):
        path = folder / name
        target = next(
            (c for c in _cells(path) if c.get("id") == cell_id) if path.exists() else iter(()),
            None,
        )
        if target is None or target["cell_type"] != "code" or not CHECKS.search(_source(target)):
            broken.append(f"{name}#{cell_id}")
    return broken
