"""A throwaway TLS certificate for 127.0.0.1, so nginx can speak HTTPS (and so HTTP/2) locally.

Browsers speak HTTP/2 only over TLS, so lesson 08's HTTP/2 demo needs a certificate. A real one
names a public host; on loopback, a self-signed certificate for `localhost` and `127.0.0.1`,
valid for two days, is enough, and the browser is told to accept it (Playwright's
`ignore_https_errors=True`). It is made by the `openssl` command line tool, which every
platform that has nginx also has (Debian's `openssl`, macOS, conda-forge), rather than by a
Python package the course would need only for this.

The key is an elliptic-curve (P-256) key: small and fast to make, and every TLS library
accepts it. Both files go to a private folder (`server.course.logs`); never use them for
anything but a local demo.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from server.course.binaries import find_binary
from server.course.errors import LauncherError
from server.course.logs import new_workdir


@dataclass(frozen=True)
class Certificate:
    """The two files nginx's `ssl_certificate` and `ssl_certificate_key` point at."""

    certificate: Path
    key: Path


def self_signed_certificate(folder: Path | None = None) -> Certificate:
    """Make a self-signed certificate for `localhost` and `127.0.0.1` in `folder`."""
    folder = folder or new_workdir("tls")
    made = Certificate(folder / "certificate.pem", folder / "key.pem")
    command = [
        find_binary("openssl"), "req", "-x509", "-days", "2", "-nodes",
        "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-keyout", str(made.key), "-out", str(made.certificate),
        "-subj", "/CN=localhost",
        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise LauncherError(f"openssl could not make a certificate:\n{done.stderr.strip()}")
    return made
