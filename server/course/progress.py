"""The room's progress for an instructor: learners × stages passed, read from each project folder.

Every stage check writes `<project>/.progress.json`. On a hub, run

    python -m server.course.progress /home/*/sse-course/notebooks/mychat

(or `make progress PROJECTS='...'`) and get one row per learner, named by the folder's owner
directory, with ✅ for a stage passed, ❌ for one tried and not yet passed, and · for one not tried.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from server.course.stages import STAGES


def learner_name(folder: Path) -> str:
    """The learner's home folder name (`/home/ana/sse-course/notebooks/mychat` → ana)."""
    parts = folder.resolve().parts
    homes = [i for i, part in enumerate(parts[:-1]) if part == "home"]
    return parts[homes[-1] + 1] if homes else str(folder)


def row(folder: Path) -> tuple[str, list[str]]:
    try:
        progress = json.loads((folder / ".progress.json").read_text())
    except (FileNotFoundError, ValueError):
        progress = {}
    marks = []
    for stage in STAGES:
        result = progress.get(str(stage))
        marks.append("·" if result is None else "✅" if result.get("passed") else "❌")
    return learner_name(folder), marks


def table(folders: Iterable[Path]) -> str:
    rows = sorted(row(folder) for folder in folders)
    width = max([len("learner"), *(len(name) for name, _ in rows)])
    lines = [f"{'learner':<{width}}  " + " ".join(f"{s:>2}" for s in STAGES)]
    for name, marks in rows:
        lines.append(f"{name:<{width}}  " + " ".join(f"{m:>2}" for m in marks))
    passed = [sum(m == "✅" for m in marks) for _, marks in rows]
    lines.append(f"{len(rows)} learners; stages passed per learner: {sorted(passed) or '-'}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    folders = [Path(arg) for arg in (sys.argv[1:] if argv is None else argv)]
    if not folders:
        print("usage: python -m server.course.progress FOLDER...  (each learner's mychat/)")
        return 2
    print(table(folder for folder in folders if folder.is_dir()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
