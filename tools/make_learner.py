"""Generate the learner copies in notebooks/ from the solved notebooks in solutions/.

solutions/NN_topic.ipynb is the single source of every lesson. In it, the body of each
exercise sits between two marker lines:

    def build_request(host: str, path: str) -> bytes:
        ### BEGIN SOLUTION
        return f"GET {path} HTTP/1.1\\r\\nHost: {host}\\r\\n\\r\\n".encode()
        ### END SOLUTION

The learner's copy gets a stub in its place, indented like the marker, and no outputs:

    def build_request(host: str, path: str) -> bytes:
        raise NotImplementedError  # your code here

Answers written in Markdown (a lesson's "Check yourself" questions) are marked the same way,
with HTML comments, which do not show when the solution is rendered:

    <!-- BEGIN SOLUTION -->
    **Answers.** 1. ...
    <!-- END SOLUTION -->

and the learner's copy says where to find them instead (`MARKDOWN_STUB`).

The learner's chat project, solutions/mychat, is generated into notebooks/mychat the same way,
by `server.course.project` (stage blocks instead of solution blocks; edited files backed up).

Usage:
    python tools/make_learner.py            # write notebooks/ from solutions/
    python tools/make_learner.py --check    # exit 1 if notebooks/ differ from what it writes
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

from server.course import project

ROOT = Path(__file__).resolve().parent.parent
BEGIN = re.compile(r"^(?P<indent>[ \t]*)### BEGIN SOLUTION[ \t]*$")
END = re.compile(r"^[ \t]*### END SOLUTION[ \t]*$")
STUB = "raise NotImplementedError  # your code here"
MARKDOWN_BEGIN = re.compile(r"^(?P<indent>[ \t]*)<!-- BEGIN SOLUTION -->[ \t]*$")
MARKDOWN_END = re.compile(r"^[ \t]*<!-- END SOLUTION -->[ \t]*$")
MARKDOWN_STUB = "*Answer in your own words first, then compare with `solutions/{name}`.*"
KEEP_METADATA = ("kernelspec", "language_info")


def strip_solutions(
    source: str,
    where: str,
    begin_marker: re.Pattern[str] = BEGIN,
    end_marker: re.Pattern[str] = END,
    stub: str = STUB,
) -> str:
    """Replace every marked solution block in `source` by a stub at the marker's indent."""
    lines, out, indent = source.split("\n"), [], None
    for number, line in enumerate(lines, 1):
        begin = begin_marker.match(line)
        if begin:
            if indent is not None:
                raise ValueError(f"{where} line {number}: BEGIN SOLUTION inside another one")
            indent = begin.group("indent")
            out.append(indent + stub)
        elif end_marker.match(line):
            if indent is None:
                raise ValueError(f"{where} line {number}: END SOLUTION without a BEGIN")
            indent = None
        elif indent is None:
            out.append(line)
    if indent is not None:
        raise ValueError(f"{where}: BEGIN SOLUTION is never closed by END SOLUTION")
    return "\n".join(out)


def learner_copy(solution: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    """The learner's notebook: solutions stubbed, outputs and run metadata removed."""
    notebook = nbformat.from_dict(solution)
    notebook.metadata = {k: v for k, v in notebook.metadata.items() if k in KEEP_METADATA}
    for index, cell in enumerate(notebook.cells):
        cell.metadata = {k: v for k, v in cell.metadata.items() if k in ("tags",)}
        where = f"{name} cell {index}"
        if cell.cell_type == "code":
            cell.source = strip_solutions(cell.source, where)
            cell.outputs = []
            cell.execution_count = None
        elif cell.cell_type == "markdown":
            stub = MARKDOWN_STUB.format(name=name)
            cell.source = strip_solutions(cell.source, where, MARKDOWN_BEGIN, MARKDOWN_END, stub)
    return notebook


def render(path: Path) -> str:
    notebook = learner_copy(nbformat.read(path, as_version=4), path.name)
    return nbformat.writes(notebook) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report drift, write nothing")
    args = parser.parse_args(argv)
    solutions = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
    drifted = []
    for path in solutions:
        target = ROOT / "notebooks" / path.name
        text = render(path)
        current = target.read_text() if target.exists() else None
        if current != text:
            drifted.append(target)
            if not args.check:
                target.write_text(text)
    if args.check:
        problems = project.drift()
        for problem in problems:
            print(f"notebooks/{problem}")
        drifted += [project.LEARNER] * bool(problems)
    else:
        for line in project.generate():
            print(line)
    expected = {p.name for p in solutions}
    extra = [p for p in (ROOT / "notebooks").glob("*.ipynb") if p.name not in expected]
    if args.check and (drifted or extra):
        for path in drifted:
            if path != project.LEARNER:
                print(f"{path.relative_to(ROOT)} differs from what solutions/ generates")
        for path in extra:
            print(f"{path.relative_to(ROOT)} has no source in solutions/")
        print("Run `make notebooks` to regenerate the learner copies.")
        return 1
    if not args.check:
        for path in drifted:
            print(f"wrote {path.relative_to(ROOT)}")
        for path in extra:
            print(f"warning: {path.relative_to(ROOT)} has no source in solutions/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
