"""What can go wrong when the course starts a server, one exception class per thing to do about it.

Each message says what happened and what to do next, in words a learner can act on; the class
lets a notebook or a test catch the one case it expects (`except PortInUseError:`).
"""

from __future__ import annotations


class LauncherError(RuntimeError):
    """A course server could not be started; the message says why and what to do."""


class PortInUseError(LauncherError):
    """Another process listens on the port the server was asked to use."""


class BinaryNotFoundError(LauncherError):
    """nginx or redis-server is not installed (the message says how to install it)."""


class ServerCrashedError(LauncherError):
    """The server exited while starting (the message ends with its log)."""


class ReadinessTimeoutError(LauncherError):
    """The server did not become ready in time (the message ends with its log)."""
