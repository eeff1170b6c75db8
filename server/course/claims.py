"""One cell per claim: the lesson says what holds, the cell measures it and says ✅ or why not.

A lesson's sentence "a sync generator leaves the server responsive" is worth something only
if a cell checks it on the learner's machine. `claim` is that check in one line:

    claim("a sync generator left the server responsive", median(pings) < delay / 10,
          f"the median ping took {median(pings) * 1000:.0f} ms")

It prints `✅ a sync generator left the server responsive` when the condition holds, so the
printed text never varies and strict nbval can compare it; when the condition fails it raises
`AssertionError` with the statement and the evidence, so the learner and CI both see which
claim stopped holding and what was measured instead.
"""

from __future__ import annotations


class ClaimFailed(AssertionError):
    """A claim the lesson makes did not hold on this machine."""


def claim(statement: str, holds: object, evidence: str = "") -> None:
    """Print `✅ statement` if `holds` is true, else raise `ClaimFailed` with the evidence."""
    if not holds:
        raise ClaimFailed(f"❌ {statement}" + (f": {evidence}" if evidence else ""))
    print(f"✅ {statement}")
