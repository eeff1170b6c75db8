"""The learner's own chat project: the reference in solutions/mychat, theirs in notebooks/mychat.

From lesson 04 on, each lesson ends with a stage of a streaming chat the learner builds in real
files (a Python package, its page, its nginx config). The reference is one working project; the
learner's copy is generated from it the way learner notebooks are, by replacing each stage's code
with a stub. In the reference, a stage's code sits between two marker comments:

    @router.get("/countdown")
    async def countdown(request: Request) -> StreamingResponse:
        ### BEGIN STAGE 1
        return StreamingResponse(ticks(), media_type="text/event-stream")
        ### END STAGE 1

The learner's copy keeps both markers, so they see where their stage 1 code goes, and gets a stub
in between: `raise NotImplementedError(...)` inside a Python function (the app still imports and
answers with a 500 that the stage check explains), a comment everywhere else. The markers are
written in each file's own comment syntax: `###` in Python, `#` in nginx, `//` in JavaScript,
`<!-- -->` in HTML. A marker may name its own stub, when an earlier stage calls this one's code
and must keep working: `### BEGIN STAGE 2, stub: return start` gives
`return start  # stage 2: your code here`.

Three promises, each tested in tests/test_project.py:

- Regenerating the learner's copy (`make notebooks`) never loses their work: a file that differs
  from what was generated last time (`.generated.json` keeps the hashes) is copied to
  `notebooks/mychat.backup/<time>/` before it is replaced.
- "Catch up to stage N" (`make catch-up STAGE=N`) fills the blocks of stages 1 to N-1 with the
  reference's code and leaves every other line of the learner's files alone. A file whose markers
  were deleted is replaced whole, after a backup.
- The learner's own new files are never touched.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "solutions" / "mychat"
LEARNER = ROOT / "notebooks" / "mychat"
MANIFEST = ".generated.json"
SKIP = {"__pycache__", ".progress.json", MANIFEST}

MARKER = re.compile(
    r"^(?P<indent>[ \t]*)(?P<open>###|#|//|<!--)[ \t]*(?P<edge>BEGIN|END) STAGE (?P<stage>\d+)"
    r"(?:, stub: (?P<stub>.*?))?[ \t]*(?:-->)?[ \t]*$"
)


@dataclass(frozen=True)
class Block:
    """One stage's lines in a file: `begin` and `end` are the indexes of the marker lines."""

    stage: int
    begin: int
    end: int
    indent: str
    comment: str
    stub: str | None = None


def blocks(text: str, where: str) -> list[Block]:
    """The stage blocks of a file, in order; a marker out of place is a `ValueError`."""
    found, open_block = [], None
    for index, line in enumerate(text.split("\n")):
        match = MARKER.match(line)
        if not match:
            continue
        stage = int(match["stage"])
        if match["edge"] == "BEGIN":
            if open_block is not None:
                raise ValueError(f"{where} line {index + 1}: BEGIN STAGE inside another stage")
            open_block = (stage, index, match["indent"], match["open"], match["stub"])
        else:
            if open_block is None or open_block[0] != stage:
                raise ValueError(f"{where} line {index + 1}: END STAGE {stage} without its BEGIN")
            _, begin, indent, comment, stub = open_block
            found.append(Block(stage, begin, index, indent, comment, stub))
            open_block = None
    if open_block is not None:
        raise ValueError(f"{where}: BEGIN STAGE {open_block[0]} is never closed")
    return found


def stub_line(block: Block, suffix: str) -> str:
    """What the learner finds between a stage's markers before they write anything."""
    say, comment = f"stage {block.stage}: your code here", block.comment.replace("###", "#")
    if block.stub:  # the marker names a stub that keeps earlier stages working
        return f"{block.indent}{block.stub}  {comment} {say}"
    if suffix == ".py" and block.indent:
        return f'{block.indent}raise NotImplementedError("{say}")'
    if comment == "<!--":
        return f"{block.indent}<!-- {say} -->"
    return f"{block.indent}{comment} {say}"


def stubbed(text: str, suffix: str, where: str, *, keep_upto: int = 0) -> str:
    """`text` with every stage after `keep_upto` replaced by its stub, markers kept."""
    lines = text.split("\n")
    for block in reversed(blocks(text, where)):
        if block.stage > keep_upto:
            lines[block.begin + 1 : block.end] = [stub_line(block, suffix)]
    return "\n".join(lines)


def fill(learner: str, reference: str, upto: int, where: str) -> str | None:
    """The learner's text with the blocks of stages 1..`upto` taken from the reference.

    None when the two files no longer have the same blocks (the learner deleted a marker):
    then only replacing the whole file is possible."""
    theirs, ours = blocks(learner, where), blocks(reference, where)
    if [b.stage for b in theirs] != [b.stage for b in ours]:
        return None
    lines, source = learner.split("\n"), reference.split("\n")
    for mine, good in reversed(list(zip(theirs, ours, strict=True))):
        if mine.stage <= upto:
            lines[mine.begin + 1 : mine.end] = source[good.begin + 1 : good.end]
    return "\n".join(lines)


def reference_files(reference: Path = REFERENCE) -> Iterator[Path]:
    """Every file of the reference project, relative to it, in a stable order."""
    for path in sorted(reference.rglob("*")):
        relative = path.relative_to(reference)
        if path.is_file() and not SKIP & set(relative.parts) and path.suffix != ".pyc":
            yield relative


def learner_files(reference: Path = REFERENCE) -> dict[Path, str]:
    """What the learner's copy of each reference file looks like before they write anything."""
    return {
        relative: stubbed((reference / relative).read_text(), relative.suffix, str(relative))
        for relative in reference_files(reference)
    }


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Copy:
    """The learner's folder, and where its backups go."""

    def __init__(self, folder: Path = LEARNER) -> None:
        self.folder = folder
        self.backups = folder.with_name(folder.name + ".backup")
        self._stamp = ""

    def manifest(self) -> dict[str, str]:
        try:
            loaded: dict[str, str] = json.loads((self.folder / MANIFEST).read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return loaded

    def back_up(self, relative: Path) -> Path:
        """Copy one file into this run's backup folder (one folder per run, named by time)."""
        if not self._stamp:
            self._stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.backups / self._stamp / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(self.folder / relative, target)
        return target

    def write(self, relative: Path, text: str) -> None:
        path = self.folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def drift(folder: Path = LEARNER, reference: Path = REFERENCE) -> list[str]:
    """What differs between `folder` and a fresh learner copy (for `make lint`)."""
    expected = learner_files(reference)
    problems = [
        f"{folder.name}/{relative} differs from what {reference.name}/ generates"
        for relative, text in expected.items()
        if not (folder / relative).is_file() or (folder / relative).read_text() != text
    ]
    manifest = {str(relative): digest(text) for relative, text in expected.items()}
    if Copy(folder).manifest() != manifest:
        problems.append(f"{folder.name}/{MANIFEST} is out of date")
    return problems


def generate(folder: Path = LEARNER, reference: Path = REFERENCE) -> list[str]:
    """Write the learner's copy; a file they edited is backed up first. Returns what it did."""
    copy, done = Copy(folder), []
    generated_before = copy.manifest()
    expected = learner_files(reference)
    for relative, text in expected.items():
        path = folder / relative
        current = path.read_text() if path.is_file() else None
        if current == text:
            continue
        if current is not None and digest(current) != generated_before.get(str(relative)):
            done.append(f"kept your edited {relative} in {copy.back_up(relative)}")
        copy.write(relative, text)
        done.append(f"wrote {folder.name}/{relative}")
    manifest = {str(relative): digest(text) for relative, text in expected.items()}
    copy.write(Path(MANIFEST), json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return done


def catch_up(stage: int, folder: Path = LEARNER, reference: Path = REFERENCE) -> list[str]:
    """Fill stages 1 to `stage`-1 from the reference, so the learner can start `stage`."""
    copy, done = Copy(folder), []
    for relative in reference_files(reference):
        good = (reference / relative).read_text()
        path = folder / relative
        if not path.is_file():
            copy.write(relative, stubbed(good, relative.suffix, str(relative), keep_upto=stage - 1))
            done.append(f"wrote {folder.name}/{relative}")
            continue
        current = path.read_text()
        try:
            filled = fill(current, good, stage - 1, str(relative))
        except ValueError:
            filled = None
        if filled is None:
            filled = stubbed(good, relative.suffix, str(relative), keep_upto=stage - 1)
        if filled != current:
            saved = copy.back_up(relative)
            copy.write(relative, filled)
            done.append(f"filled {folder.name}/{relative} (your version is in {saved})")
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The learner's chat project.")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("catch-up", help="fill the stages before STAGE from the reference")
    up.add_argument("stage", type=int)
    up.add_argument("--project", type=Path, default=LEARNER)
    args = parser.parse_args(argv)
    done = catch_up(args.stage, args.project.resolve())
    print("\n".join(done) or f"{args.project} already has stages 1 to {args.stage - 1}.")
    print(f"Stages 1 to {args.stage - 1} now hold the reference code; stage {args.stage} is yours.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
