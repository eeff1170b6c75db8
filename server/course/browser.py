"""A real headless Chromium for notebooks and tests, driven by Playwright.

The course never runs `playwright install` (it downloads browsers from the internet): it drives
the Chromium already on the machine (Debian's `/usr/bin/chromium`, or `$CHROMIUM`) through
Playwright's `executable_path`. Playwright gives every launch a fresh temporary profile.

The flags below keep Chromium from phoning home (updates, sync, field trials, QUIC probes): on
a closed network those attempts stall or fail, and on an open one they are noise in a lesson
about what goes over the wire.

    async with async_playwright() as pw:            # notebooks: the async API (Jupyter
        browser = await pw.chromium.launch(**launch_options())   # already runs an event loop)

    with sync_playwright() as pw:                   # tests and scripts: the sync API
        browser = pw.chromium.launch(**launch_options())
"""

from __future__ import annotations

import os
import shutil
from typing import Any

CHROMIUM_ARGS = (
    "--no-sandbox",  # containers and CI often run as root, where the sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class BrowserNotFoundError(RuntimeError):
    """No Chromium on this machine; the message says how to get one."""


def find_chromium() -> str:
    """The Chromium binary: `$CHROMIUM` if set, else the first Chromium/Chrome on PATH."""
    override = os.environ.get("CHROMIUM")
    if override:
        if os.access(override, os.X_OK):
            return override
        raise BrowserNotFoundError(f"CHROMIUM={override} is not an executable file.")
    for name in _CANDIDATES:
        found = shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/bin"]))
        if found:
            return found
    raise BrowserNotFoundError(
        "Chromium was not found. Install it (Debian/Ubuntu: `sudo apt-get install -y chromium`; "
        "`make test` does this), or point $CHROMIUM at a Chromium or Chrome binary."
    )


def launch_options(headless: bool = True) -> dict[str, Any]:
    """Keyword arguments for Playwright's `chromium.launch(...)` (sync or async API)."""
    return {"executable_path": find_chromium(), "headless": headless, "args": list(CHROMIUM_ARGS)}
