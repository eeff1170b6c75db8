"""server.course.bench_figures: a bench's table read from the README, as lessons quote it."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.course.bench_figures import bench_table

README = """# Benches

## `a.py`: first

| n | ms |
|--:|--:|
| 1 | 2 |
| 3 | 4 |

| a second table | ignored |
|---|---|
| x | y |

## `b.py`: second

no table here
"""


def test_the_first_table_of_the_section_as_dicts(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(README)
    assert bench_table("a.py", readme) == [{"n": "1", "ms": "2"}, {"n": "3", "ms": "4"}]


@pytest.mark.parametrize(("bench", "error"), [("c.py", "no section"), ("b.py", "no table")])
def test_a_missing_section_or_table_is_a_clear_error(
    tmp_path: Path, bench: str, error: str
) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(README)
    with pytest.raises(LookupError, match=error):
        bench_table(bench, readme)


def test_the_capstone_bench_s_table_has_what_lesson_11_reads() -> None:
    runs = bench_table("bench_capstone.py")
    assert {"users", "run", "replies exact", "error %", "most open"} <= set(runs[0])
    assert any(run["run"].startswith("SIGKILL") for run in runs)
