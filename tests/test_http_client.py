"""One HTTP client across the course: `httpx2`, the maintained continuation of `httpx` (issue 29).

`httpx` has had no release since 0.28.1 (December 2024); `httpx2` is the same API under a new
import name, and the course's pinned stack already runs on it (the `openai` client, Starlette's
`TestClient`, the `mcp` SDK). So the course's modules and lesson cells import `httpx2`, and
`httpcore2` where they reach below it. `httpx` (and its engine, `httpcore`) stays only in the
places named below, each for a reason a learner can check, and each import there carries a
comment that says why. A new `import httpx` anywhere else fails here, and so does an exception
that no longer imports it (the list stays exact).
"""

from __future__ import annotations

import ast
import functools
import subprocess
from pathlib import Path

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager

ROOT = Path(__file__).resolve().parent.parent
# The import names of the unmaintained client and of its engine (`httpx2` runs on `httpcore2`:
# mixing `httpcore`'s errors or pools with an `httpx2` client would silently not match).
OLD = {"httpx", "httpcore"}

# Python modules, by path from the repository's root.
MODULES = {
    "tests/test_sse_differential.py": "httpx-sse is one of the parsers compared, run as its users "
    "run it: `EventSource` over an `httpx.Response`",
    "tests/test_fastapi_streams.py": "checks what an httpx-sse client sees (`connect_sse` takes an "
    "`httpx.Client`)",
    "bench/bench_decoder.py": "times httpx-sse as its users run it: `EventSource` over an "
    "`httpx.Response`",
}

# Lessons, by notebook name: the rule covers the solution and the learner's copy alike.
LESSONS = {
    "03_sse_wire_format": "§7.3 and §10 compare the course's decoder with httpx-sse, which takes "
    "an `httpx` client or response",
    "04_fastapi_streaming": "§4 and its heartbeat cell read the app's streams with httpx-sse, "
    "which takes an `httpx` client",
}


def _tracked(*patterns: str) -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "--", *patterns], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return [ROOT / line for line in out.splitlines() if line]


def _old_imports(source: str) -> list[tuple[int, str]]:
    """(line number, line) of each import of `httpx` or `httpcore` (not `httpx2`, `httpx_sse`)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        if any(name.split(".")[0] in OLD for name in names):
            found.append((node.lineno, source.splitlines()[node.lineno - 1]))
    return found


@functools.cache  # one scan of the tree for all of this module's tests
def _modules() -> dict[str, list[tuple[int, str]]]:
    found = {}
    for path in _tracked("*.py"):
        imports = _old_imports(path.read_text())
        if imports:
            found[path.relative_to(ROOT).as_posix()] = imports
    return found


@functools.cache
def _lesson_cells() -> dict[str, list[tuple[str, int, str]]]:
    """Per lesson: (notebook, cell index, line) of each old import in a code cell."""
    transform = TransformerManager().transform_cell  # IPython's magics, as the kernel runs them
    found: dict[str, list[tuple[str, int, str]]] = {}
    for path in _tracked("solutions/*.ipynb", "notebooks/*.ipynb"):
        for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
            if cell.cell_type != "code":
                continue
            for _, line in _old_imports(transform(cell.source)):
                where = (path.relative_to(ROOT).as_posix(), index, line.strip())
                found.setdefault(path.stem, []).append(where)
    return found


def test_old_client_is_imported_only_where_a_library_needs_it() -> None:
    modules, lessons = _modules(), _lesson_cells()
    unexplained = sorted(set(modules) - set(MODULES)) + sorted(set(lessons) - set(LESSONS))
    where = [f"{path}:{n}: {line}" for path in modules for n, line in modules[path]]
    where += [f"{nb} cell {i}: {line}" for cells in lessons.values() for nb, i, line in cells]
    assert not unexplained, (
        "these import httpx or httpcore; use httpx2 (httpcore2), or name the place and the "
        f"library that needs httpx in this test: {unexplained}\n  " + "\n  ".join(where)
    )


@pytest.mark.parametrize("place", [*MODULES, *LESSONS])
def test_each_exception_still_needs_httpx_and_says_why(place: str) -> None:
    if place in MODULES:
        lines = [line for _, line in _modules().get(place, [])]
    else:
        lines = [line for _, _, line in _lesson_cells().get(place, [])]
    assert lines, f"{place} no longer imports httpx: remove it from this test's exceptions"
    silent = [line for line in lines if "#" not in line]
    assert not silent, f"{place}: say why httpx, in a comment on the import: {silent}"
