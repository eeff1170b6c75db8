"""server.course.source: the pages' JavaScript, shown from its file."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.course.source import excerpt, js_function

STATIC = Path(__file__).resolve().parent.parent / "server" / "apps" / "static"


def test_a_function_comes_with_the_comment_above_it(tmp_path: Path) -> None:
    script = tmp_path / "x.js"
    body = "function b(x) {\n  if (x) {\n    return 1;\n  }\n}"
    script.write_text(f"const a = 1;\n\n// Why b.\n// More why.\n{body}\n\nfunction c() {{}}\n")
    assert js_function(script, "b") == f"// Why b.\n// More why.\n{body}"


@pytest.mark.parametrize(
    ("script", "name", "opening"),
    [
        ("app.js", "chat", "async function chat(message) {"),
        ("app.js", "connectWithRetry", "function connectWithRetry(url, {"),
        ("sse.js", "readEvents", "export async function* readEvents(response, parser = "),
    ],
)
def test_the_lessons_functions_are_found(script: str, name: str, opening: str) -> None:
    text = js_function(STATIC / script, name)
    assert opening in text
    assert text.endswith("\n}")


def test_an_unknown_function_is_a_clear_error() -> None:
    with pytest.raises(LookupError, match="no top-level function 'nope'"):
        js_function(STATIC / "app.js", "nope")


def test_an_excerpt_runs_from_the_first_match_to_the_next_and_is_dedented() -> None:
    text = "def f():\n    a = 1\n    if a:\n        b = 2\n    return a\n    # a again"
    assert excerpt(text, "if a", "return") == "if a:\n    b = 2\nreturn a"
    assert excerpt(text, "b = 2") == "b = 2"


@pytest.mark.parametrize(("first", "last"), [("nope", None), ("if a", "nope")])
def test_an_excerpt_that_is_not_there_is_a_clear_error(first: str, last: str | None) -> None:
    with pytest.raises(LookupError, match="no line contains 'nope'"):
        excerpt("if a:\n    b", first, last)
