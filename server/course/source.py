"""Show the course's JavaScript in a notebook, read from the file the browser runs: one copy.

A lesson that explains code a learner will copy shows it from its source, never a pasted copy
that drifts. For Python that is `inspect.getsource(obj)`; this does the same for a top-level
function of the pages' scripts (`server/apps/static/*.js`):

    print(js_function(STATIC / "app.js", "chat"))

and `excerpt` cuts a few lines out of either (a Python function's `inspect.getsource`, or a
script's function) so that a lesson shows the lines it talks about, not a whole screen.

The function comes with the `//` comment lines right above it (they say why it is written so),
and ends at the first line that is a lone `}`, which is how the course's scripts (formatted
with Prettier) close a top-level function.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path


def js_function(path: Path, name: str) -> str:
    """The text of the top-level JavaScript function `name` in `path`, with its comment."""
    lines = Path(path).read_text().splitlines()
    start = re.compile(rf"^(export )?(async )?function\*? {re.escape(name)}\(")
    first = next((n for n, line in enumerate(lines) if start.match(line)), None)
    if first is None:
        raise LookupError(f"no top-level function {name!r} in {path}")
    last = lines.index("}", first)
    while first > 0 and lines[first - 1].startswith("//"):
        first -= 1
    return "\n".join(lines[first : last + 1])


def excerpt(source: str, first: str, last: str | None = None) -> str:
    """The lines of `source` from the first that contains `first` to the next that contains
    `last` (both included; without `last`, that one line), dedented: the few lines of a
    function a lesson talks about, from `inspect.getsource(f)` or `js_function(...)`."""
    lines = source.splitlines()
    start = next((n for n, line in enumerate(lines) if first in line), None)
    if start is None:
        raise LookupError(f"no line contains {first!r}")
    end = start
    if last is not None:
        end = next((n for n in range(start, len(lines)) if last in lines[n]), -1)
        if end < 0:
            raise LookupError(f"no line contains {last!r} after {first!r}")
    return textwrap.dedent("\n".join(lines[start : end + 1]))
