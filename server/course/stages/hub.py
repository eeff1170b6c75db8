"""A Jupyter server with jupyter-server-proxy under /user/learner/, as a JupyterHub runs one.

Stages 3 and 4 check the learner's pages through it: behind jupyter-server-proxy a page must use
relative URLs, and a `fetch` that reads a stream must ask for `text/event-stream` (the proxy
buffers anything else). The real proxy, not a stand-in: it starts in a few seconds here.
"""

from __future__ import annotations

import asyncio
import secrets
import sys

from server.course.errors import LauncherError
from server.course.launcher import Server, start_command
from server.course.logs import new_workdir

PREFIX = "/user/learner/"  # what a JupyterHub gives a user called "learner"
# The hub's other server extensions (the JupyterLab UI, language servers, terminals) add nothing
# to the proxy and seconds to the start; jupyter-server-proxy stays as this environment set it.
ONLY_THE_PROXY = {
    name: False
    for name in (
        "jupyterlab",
        "notebook",
        "notebook_shim",
        "jupyter_lsp",
        "jupyter_server_terminals",
    )
}


def start_hub() -> tuple[Server, str]:
    """A Jupyter server with jupyter-server-proxy under /user/learner/, as a hub runs one."""
    home, token = new_workdir("jupyter"), secrets.token_hex(16)
    command = (
        sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root",
        "--ServerApp.ip=127.0.0.1", "--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--ServerApp.base_url={PREFIX}", f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={home}", f"--ServerApp.jpserver_extensions={ONLY_THE_PROXY}",
    )  # fmt: skip
    folders = {  # its config and runtime files in a folder of its own
        "JUPYTER_PLATFORM_DIRS": "1",
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
    }
    server = start_command(
        command,
        listening=rf"http://127\.0\.0\.1:(\d+){PREFIX}",
        env=folders,
        ready_path=f"{PREFIX}api/status",
        timeout=30,
        name="jupyter-server",
    )
    return server, token


async def stop_hub(starting: asyncio.Future[tuple[Server, str]]) -> None:
    """Stop the hub's Jupyter server, once it has started (a failed start left nothing)."""
    try:
        server, _ = await starting
    except LauncherError:
        return
    await asyncio.to_thread(server.kill)  # it holds nothing to save
