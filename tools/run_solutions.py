"""Execute the solved notebooks in place, so their committed outputs are current.

strict nbval compares every cell's output with the one committed in solutions/, so after
changing a lesson, run it again with this tool (`make solutions`), read the diff, commit.

Usage:
    python tools/run_solutions.py                      # every notebook in solutions/
    python tools/run_solutions.py solutions/01_*.ipynb # some of them
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
CELL_TIMEOUT = 300


def execute(path: Path) -> float:
    """Run `path` top to bottom in a fresh kernel, write it back; return the seconds taken."""
    notebook = nbformat.read(path, as_version=4)
    started = time.perf_counter()
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
    nbformat.write(notebook, path)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
    for path in paths:
        print(f"{path.name}: {execute(path):.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
