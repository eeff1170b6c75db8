"""Find nginx and redis-server, or say in one line how to install them on this machine.

They are not Python packages, so pip cannot bring them: a learner may have them from apt, brew
or conda, in a folder that is not on a notebook kernel's PATH (Debian puts nginx in /usr/sbin).
"""

from __future__ import annotations

import os
import platform
import shutil

from server.course.errors import BinaryNotFoundError

_EXTRA_BIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/opt/homebrew/bin", "/usr/local/bin")
_ENV_OVERRIDE = {"nginx": "NGINX_BIN", "redis-server": "REDIS_SERVER_BIN"}
_APT_PACKAGE = {"nginx": "nginx", "redis-server": "redis-server"}
_BREW_PACKAGE = {"nginx": "nginx", "redis-server": "redis"}


def find_binary(name: str) -> str:
    """The path of `name`: `$NGINX_BIN`/`$REDIS_SERVER_BIN`, PATH, then the usual sbin dirs."""
    override = os.environ.get(_ENV_OVERRIDE.get(name, ""), "")
    if override:
        if os.access(override, os.X_OK):
            return override
        raise BinaryNotFoundError(
            f"{_ENV_OVERRIDE[name]}={override} is not an executable file. "
            f"Unset it, or point it at the {name} binary."
        )
    search_path = os.pathsep.join([os.environ.get("PATH", ""), *_EXTRA_BIN_DIRS])
    found = shutil.which(name, path=search_path)
    if found:
        return found
    raise BinaryNotFoundError(f"{name} was not found on PATH. {install_hint(name)}")


def install_hint(name: str) -> str:
    """How to install `name` on this machine, in one line."""
    if os.environ.get("CONDA_PREFIX"):
        how = "conda env update -f environment.yml (it includes conda-forge's nginx and redis)"
    elif platform.system() == "Darwin":
        how = f"brew install {_BREW_PACKAGE.get(name, name)}"
    elif shutil.which("apt-get"):
        how = f"sudo apt-get install -y {_APT_PACKAGE.get(name, name)}"
    else:
        how = "your package manager, or the conda environment in environment.yml"
    return f"Install it with: {how}. `make lab` does this for you where it can."
