"""Every script the course's pages load parses, in the Chromium the browser tests use.

A check by the browser's own parser and module loader; nothing a script does is run. A
classic script is compiled with ``new Function(text)``. A module is imported behind a first
import that throws when it is evaluated: a module graph is fetched, parsed and linked whole
before any of it runs, and runs in import order, so the throw comes first and stops the rest.
What this catches: a syntax error in any module of the graph, and an import of a file or a name
that does not exist. What it cannot catch, an unused variable or a misspelt global, eslint does
(`make lint`; tests/test_eslint.py checks that eslint sees every script).

The files are served by Playwright's `route` from `server/apps/static/`, with no app.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.browser]

STATIC = Path(__file__).parents[1] / "server" / "apps" / "static"
ORIGIN = "http://static.test"
SCRIPTS = sorted(path.name for path in STATIC.glob("*.js"))
MODULE = re.compile(r"^(import|export)\b", re.MULTILINE)

PARSE = """async ({ url, module }) => {
  if (!module) {
    try {
      new Function(await (await fetch(url)).text());
      return "ok";
    } catch (error) {
      return `${error.name}: ${error.message}`;
    }
  }
  const stop = "data:text/javascript,throw new Error('parsed, not run')";
  const probe = `import ${JSON.stringify(stop)}; import ${JSON.stringify(url)};`;
  try {
    await import(URL.createObjectURL(new Blob([probe], { type: "text/javascript" })));
    return "it ran";
  } catch (error) {
    return error.message === "parsed, not run" ? "ok" : `${error.name}: ${error.message}`;
  }
}"""

BROKEN = {
    "broken.js": "export function f( {\n",
    "imports_a_missing_file.js": 'import { x } from "./no_such_file.js";\nexport const y = x;\n',
    "imports_a_missing_name.js": 'import { noSuchName } from "./sse.js";\nexport { noSuchName };\n',
    "classic_broken.js": "const a = ;\n",
}


@pytest.fixture(scope="module")
def page(browser: Any) -> Iterator[Any]:
    """A page of `ORIGIN`, where `/<name>` is the static file (or a `BROKEN` one)."""

    def serve(route: Any) -> None:
        name = route.request.url.removeprefix(f"{ORIGIN}/")
        if name == "":
            route.fulfill(content_type="text/html", body="<!doctype html><title>parse</title>")
        elif name in BROKEN:
            route.fulfill(content_type="text/javascript", body=BROKEN[name])
        elif name in SCRIPTS:
            route.fulfill(content_type="text/javascript", path=STATIC / name)
        else:
            route.fulfill(status=404, body="not found")

    context = browser.new_context()
    context.route(f"{ORIGIN}/**", serve)
    page = context.new_page()
    page.goto(f"{ORIGIN}/")
    yield page
    context.close()


def parse(page: Any, name: str, text: str) -> str:
    verdict: str = page.evaluate(
        PARSE, {"url": f"{ORIGIN}/{name}", "module": bool(MODULE.search(text))}
    )
    return verdict


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_page_script_parses(page: Any, name: str) -> None:
    assert parse(page, name, (STATIC / name).read_text()) == "ok"


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_the_check_finds_what_it_is_for(page: Any, name: str) -> None:
    verdict = parse(page, name, BROKEN[name])
    assert verdict != "ok" and verdict != "it ran", verdict
    assert verdict.startswith(("SyntaxError", "TypeError")), verdict
