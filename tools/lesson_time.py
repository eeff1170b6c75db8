"""How long a careful first pass through each lesson takes, estimated from what it asks.

A stated time is a promise to a learner planning an evening or an instructor planning a day.
This tool estimates it from the learner's copy of each lesson (what they actually see):

    prose        130 words a minute: technical text read carefully, not skimmed
    code         15 lines a minute: read, run, look at the output
    exercises    15 minutes each: write, run the check, fix, run again
    build stages 30 minutes each ("## Build it" sections): a route, a page or a config of the
                 learner's own chat, written in files and checked on real servers
    questions    1.5 minutes each: the "Check yourself" list, answered before peeking

Sections whose heading says "optional" are estimated apart, so a lesson can say "about 40
minutes, plus 15 for the optional sections". Each lesson states its time in its first cells as

    **Time:** about 40 minutes, plus 15 for the optional sections.

(the second half only when it has optional sections), and `tests/test_lesson_times.py` fails
when a stated time is below this estimate or when README.md and INSTRUCTORS.md quote another.

Usage:
    python tools/lesson_time.py          # a table: estimate and stated time for every lesson
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

from tools.make_learner import learner_copy

ROOT = Path(__file__).resolve().parent.parent

WORDS_PER_MINUTE = 130
CODE_LINES_PER_MINUTE = 15
MINUTES_PER_EXERCISE = 15
MINUTES_PER_QUESTION = 1.5
MINUTES_PER_STAGE = 30

STATED = re.compile(
    r"\*\*Time:\*\* about (?P<core>\d+) minutes"
    r"(?:, plus (?P<optional>\d+) for the optional sections?)?"
)
HEADING = re.compile(r"^(#{2,3}) (?P<title>.+)$", re.M)
QUESTION = re.compile(r"^\s*\d+\.\s", re.M)
EXERCISE = "### BEGIN SOLUTION"


@dataclass
class Effort:
    """What a stretch of a lesson asks of a learner."""

    words: int = 0
    code_lines: int = 0
    exercises: int = 0
    questions: int = 0
    stages: int = 0

    @property
    def minutes(self) -> float:
        return (
            self.words / WORDS_PER_MINUTE
            + self.code_lines / CODE_LINES_PER_MINUTE
            + self.exercises * MINUTES_PER_EXERCISE
            + self.questions * MINUTES_PER_QUESTION
            + self.stages * MINUTES_PER_STAGE
        )


@dataclass
class Estimate:
    name: str
    core: Effort
    optional: Effort
    stated_core: int | None
    stated_optional: int | None

    @property
    def core_minutes(self) -> int:
        return math.ceil(self.core.minutes)

    @property
    def optional_minutes(self) -> int:
        return math.ceil(self.optional.minutes)


def estimate(path: Path) -> Estimate:
    """Estimate one solved notebook's time from its learner copy."""
    solution = nbformat.read(path, as_version=4)
    exercises = sum(c.source.count(EXERCISE) for c in solution.cells if c.cell_type == "code")
    notebook = learner_copy(solution, path.name)
    core, optional = Effort(), Effort()
    part = core
    in_questions = False
    stated = None
    for cell in notebook.cells:
        source = cell.source
        if cell.cell_type == "markdown":
            for level, title in HEADING.findall(source):
                if level == "##":
                    part = optional if "optional" in title.lower() else core
                    part.stages += title.lower().startswith("build it")
                in_questions = "check yourself" in title.lower()
            stated = stated or STATED.search(source)
            part.words += len(source.split())
            if in_questions:
                part.questions += len(QUESTION.findall(source))
        elif cell.cell_type == "code":
            part.code_lines += sum(1 for line in source.splitlines() if line.strip())
    # Exercises are counted in the solution (the learner copy has stubs); all are core work.
    core.exercises = exercises
    return Estimate(
        name=path.stem,
        core=core,
        optional=optional,
        stated_core=int(stated["core"]) if stated else None,
        stated_optional=int(stated["optional"]) if stated and stated["optional"] else None,
    )


def estimates() -> list[Estimate]:
    return [estimate(p) for p in sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))]


def main() -> int:
    rows = estimates()
    print(
        f"{'lesson':26} {'words':>6} {'code':>5} {'ex':>3} {'q':>3} "
        f"{'estimate':>9} {'stated':>7}  optional (est/stated)"
    )
    for e in rows:
        print(
            f"{e.name:26} {e.core.words + e.optional.words:6} "
            f"{e.core.code_lines + e.optional.code_lines:5} {e.core.exercises:3} "
            f"{e.core.questions + e.optional.questions:3} {e.core_minutes:9} "
            f"{e.stated_core if e.stated_core is not None else '-':>7}  "
            f"{e.optional_minutes}/{e.stated_optional if e.stated_optional is not None else '-'}"
        )
    total = sum(e.core_minutes for e in rows)
    optional = sum(e.optional_minutes for e in rows)
    print(f"core {total} min ({total / 60:.1f} h), optional sections {optional} min more")
    return 0


if __name__ == "__main__":
    sys.exit(main())
