"""axe-core, the accessibility rules engine, run inside a Playwright page.

The engine is one JavaScript file, `axe.min.js`, taken from an installed Python package
(`axe-playwright-python`, pinned in requirements.txt), so nothing is downloaded at test time.
`scan` (async API: notebooks, stage checks) and `scan_sync` (sync API: tests) inject it into the
page as it is now, run every rule against the whole document, and return the violations.
`failing` keeps the ones a course page must not have: any of impact "serious" or "critical",
and any "moderate" one not excused with a reason.

    found = scan_sync(page)                      # after the page has streamed a reply
    assert not failing(found, allowed={}), report(found)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

PACKAGE = "axe_playwright_python"  # the wheel that ships axe.min.js
BLOCKING = ("critical", "serious")
RUN = """async () => {
  const results = await axe.run(document, { resultTypes: ["violations"] });
  return { version: axe.version, violations: results.violations.map((v) => ({
    rule: v.id, impact: v.impact, help: v.help,
    targets: v.nodes.map((n) => n.target.join(" ")),
  })) };
}"""


@dataclass(frozen=True)
class Violation:
    """One rule broken, on one or more elements."""

    rule: str  # axe's rule id: "label", "landmark-one-main", ...
    impact: str  # "minor", "moderate", "serious" or "critical"
    help: str  # axe's one-line description of the rule
    targets: tuple[str, ...]  # a CSS selector for each element that breaks it

    def __str__(self) -> str:
        return f"{self.impact} {self.rule}: {self.help} ({', '.join(self.targets)})"


@cache
def source() -> str:
    """axe-core's JavaScript, from the installed package."""
    return (files(PACKAGE) / "axe.min.js").read_text(encoding="utf-8")


def version() -> str:
    """The bundled axe-core's version, from the file's banner (`/*! axe v4.12.1`)."""
    return source().split("axe v", 1)[1].split()[0]


def _parse(found: dict[str, Any]) -> list[Violation]:
    return [
        Violation(v["rule"], v["impact"] or "minor", v["help"], tuple(v["targets"]))
        for v in found["violations"]
    ]


async def scan(page: Any) -> list[Violation]:
    """The page's violations now (Playwright's async `Page`)."""
    if not await page.evaluate("typeof window.axe === 'object'"):
        await page.add_script_tag(content=source())
    return _parse(await page.evaluate(RUN))


def scan_sync(page: Any) -> list[Violation]:
    """The page's violations now (Playwright's sync `Page`)."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.add_script_tag(content=source())
    return _parse(page.evaluate(RUN))


def blocking(found: list[Violation]) -> list[Violation]:
    """The serious and critical violations: what a build-it stage fails on (the rest are hints)."""
    return [v for v in found if v.impact in BLOCKING]


def failing(found: list[Violation], allowed: Mapping[str, str]) -> list[Violation]:
    """The violations a page must not have: serious or critical ones, and moderate ones whose
    rule is not a key of `allowed` (rule id -> the reason it is accepted)."""
    return [
        v
        for v in found
        if v.impact in BLOCKING or (v.impact == "moderate" and v.rule not in allowed)
    ]


def report(found: list[Violation]) -> str:
    """One line per violation, for an assertion message or a hint."""
    return "\n".join(str(v) for v in found) or "no violations"
