"""README's "What is where" names every module of `server/`, so a reader can find each one."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVER = ROOT / "server"


def _tree() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("\nserver/\n")
    return text[start : text.index("```", start)]


def _names() -> dict[str, str]:
    """What the tree must say for each module: its file name, or its package's folder name
    for a module inside an app package (the app is named, not each of its modules)."""
    names = {}
    for path in sorted(SERVER.rglob("*.py")):
        parts = path.relative_to(SERVER).parts
        if parts[0] == "apps" and len(parts) > 2:
            names[f"apps/{parts[1]}"] = f"{parts[1]}/"
        elif path.name != "__init__.py":
            names["/".join(parts)] = path.name
    return names


def test_every_module_of_the_package_is_named_in_the_readme_tree() -> None:
    tree = _tree()
    missing = sorted(where for where, name in _names().items() if name not in tree)
    assert not missing, f"README.md's tree does not name: {missing}"
