"""The two benches without a test file of their own, run small so that they cannot rot.

Each prints a table; the figures are not checked (a tiny run measures start-up), only that the
bench runs to its end and compares what it says it compares.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.bench
def test_the_decoder_bench_runs() -> None:
    out = run("bench/bench_decoder.py", "--scale", "0.005")
    rows = [line.split()[:2] for line in out.splitlines() if line.startswith(("llm", "json"))]
    decoders = ["server.sse", "httpx-sse", "openai"]
    assert rows == [[stream, decoder] for stream in ("llm", "json") for decoder in decoders]


@pytest.mark.bench
def test_the_relay_bench_runs() -> None:
    out = run("bench/bench_relay.py", "--requests", "20", "--streams", "10", "--tokens", "20")
    assert "direct" in out and "relay" in out, out
    assert "added TTFT median" in out, out
