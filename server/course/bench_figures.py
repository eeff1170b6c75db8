"""A table of figures from `bench/README.md`, read by a lesson instead of copied into it.

Some claims cannot be measured in a notebook cell: a load test takes minutes and needs the
machine to itself. Those lessons quote the benches instead, and say so. So that a quote never
drifts from its source, the lesson reads the table from the README (the section a bench's
``## `name.py` `` heading opens) and asserts on the rows it finds there:

    runs = bench_table("bench_capstone.py")   # [{"users": "50", "run": "steady", ...}, ...]
"""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parents[2] / "bench" / "README.md"


def bench_table(bench: str, readme: Path = README) -> list[dict[str, str]]:
    """The rows of the first table in `bench`'s section of `readme`, as {column: text}."""
    text = readme.read_text()
    heading = f"## `{bench}`"
    if heading not in text:
        raise LookupError(f"{readme} has no section {heading!r}")
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    lines = [line.strip() for line in section.splitlines()]
    table: list[list[str]] = []
    for line in lines:
        if line.startswith("|"):
            table.append([cell.strip() for cell in line.strip("|").split("|")])
        elif table:
            break  # the first table has ended
    if len(table) < 3:
        raise LookupError(f"no table under {heading!r} in {readme}")
    header, _rule, *rows = table
    return [dict(zip(header, row, strict=True)) for row in rows]
