"""URLs for the learner's browser, which is not always on the machine running the kernel.

A server started from a notebook listens on the kernel's loopback address. On a laptop the
browser shares that address, so `http://127.0.0.1:PORT/` works. On a JupyterHub (a workshop,
a university hub) the browser is elsewhere, and the only way in is through the hub itself:
`jupyter-server-proxy` forwards `/user/NAME/proxy/PORT/...` to the kernel's `127.0.0.1:PORT`.
"""

from __future__ import annotations

import os


def browser_url(port: int, path: str = "/") -> str:
    """The URL a learner's browser should open to reach a course server on `port`.

    Under JupyterHub (`JUPYTERHUB_SERVICE_PREFIX` is set) this is a path relative to the hub's
    own origin, which an IFrame or a link in the notebook resolves correctly. Set
    `COURSE_PROXY_PREFIX` (e.g. `/proxy/`) to use jupyter-server-proxy without a hub.
    """
    if not path.startswith("/"):
        path = "/" + path
    prefix = os.environ.get("COURSE_PROXY_PREFIX")
    hub_prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX")
    if prefix is None and hub_prefix:
        prefix = hub_prefix.rstrip("/") + "/proxy/"
    if prefix:
        return f"{prefix.rstrip('/')}/{port}{path}"
    return f"http://127.0.0.1:{port}{path}"
