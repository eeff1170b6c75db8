"""Every bench in bench/, run small so that none can rot unnoticed.

Each run is a subprocess, as `make bench` runs it, at a size that takes seconds. The figures
are not checked (a tiny run measures start-up); what is checked is that the bench runs to its
end, measures every contender it names, and that every message or reply it checks was right.
"""

from __future__ import annotations

import ast
import re
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.bench


def run(*args: str, timeout: float = 120, preexec_fn: Callable[[], None] | None = None) -> str:
    """Run `python args...` from the repository; its output, after checking it succeeded."""
    done = subprocess.run(
        [sys.executable, *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT, preexec_fn=preexec_fn,
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return done.stdout


def test_the_decoder_bench_runs() -> None:
    out = run("bench/bench_decoder.py", "--scale", "0.005")
    rows = [line.split()[:2] for line in out.splitlines() if line.startswith(("llm", "json"))]
    decoders = ["server.sse", "httpx-sse", "openai"]
    assert rows == [[stream, decoder] for stream in ("llm", "json") for decoder in decoders]


def test_the_relay_bench_runs() -> None:
    out = run("bench/bench_relay.py", "--requests", "20", "--streams", "10", "--tokens", "20")
    assert "direct" in out and "relay" in out, out
    assert "added TTFT median" in out, out


def test_the_held_streams_bench_runs() -> None:
    out = run("bench/bench_streams_held.py", "--smoke", timeout=60)
    for expected in ("Django ASGI", "FastAPI", "50/50", "memory per held stream"):
        assert expected in out, out


@pytest.mark.nginx
def test_the_nginx_bench_runs() -> None:
    out = run("bench/bench_nginx.py", "--smoke", timeout=90)
    for expected in ("first byte", "per event", "added p99", "50/50", "nginx memory per held"):
        assert expected in out, out


def test_the_websocket_vs_sse_bench_runs() -> None:
    out = run("bench/bench_ws_vs_sse.py", "--smoke")
    for expected in ("SSE", "WebSocket", "50/50", "1,020", "memory per idle connection"):
        assert expected in out, out


def capacity_parts() -> list[str]:
    """bench_capacity.py's parts, read from its PARTS: one added there is run here too."""
    source = (ROOT / "bench" / "bench_capacity.py").read_text()
    found = re.search(r"^PARTS = (\(.*\))$", source, re.MULTILINE)
    assert found, "bench_capacity.py no longer names its PARTS on one line"
    parts: list[str] = list(ast.literal_eval(found[1]))
    return parts


# The capacity bench's parts run once between the two tests: its idle part (every contender
# holding its streams) under a low open-files limit, every other part without one.


@pytest.mark.redis
@pytest.mark.nginx
@pytest.mark.timeout(300)  # its own bound is 240 s: about 45 s alone, over 120 s under load
def test_the_capacity_bench_runs() -> None:
    parts = [part for part in capacity_parts() if part != "idle"]
    out = run("bench/bench_capacity.py", "--smoke", "--only", ",".join(parts), timeout=240)
    for part in ("## latency", "## throughput", "## growth"):
        assert part in out, out
    assert out.count("all, in order") == 9 + 4, out  # latency rows, then growth rows
    assert "course, 2 workers + nginx + Redis" in out


@pytest.mark.redis
@pytest.mark.timeout(300)  # its own bound is 240 s
def test_a_low_open_files_limit_scales_the_capacity_bench_down_with_a_note() -> None:
    def low_limit() -> None:  # in the child only: 150 descriptors, 50 of them for streams
        resource.setrlimit(resource.RLIMIT_NOFILE, (150, 150))

    out = run("bench/bench_capacity.py", "--smoke", "--only", "idle", timeout=240,
              preexec_fn=low_limit)  # fmt: skip
    assert "scaled down: open-files limit 150 (hard 150): 100 streams asked, 50 fit" in out
    assert "## idle" in out, out
    assert out.count("50/50") == 9, out  # every contender held every connection it could


@pytest.mark.redis
@pytest.mark.nginx
def test_the_capstone_bench_runs_and_checks_every_reply() -> None:
    out = run("bench/bench_capstone.py", "--smoke")
    assert "killed worker A (pid" in out, out
    table = [line.split() for line in out.splitlines() if "killed" not in line]
    rows = [row for row in table if row[:1] in (["steady"], ["SIGKILL"])]
    assert [(row[-15], row[-14]) for row in rows] == [("10", "10")] * 2, out  # all exact


def test_the_workshop_bench_runs() -> None:
    # Two learners with homes of their own, sharing /tmp, run lesson 00 at once: every cell
    # passes, nothing is left running, and the figures that size a hub are printed.
    out = run("bench/bench_workshop.py", "--smoke", timeout=90)
    for expected in ("2 learners at once", "peak PSS per learner", "host peak", "CPU per learner"):
        assert expected in out, out
    rows = [line.split() for line in out.splitlines() if line.startswith("home ")]
    assert len(rows) == 2 and all(row[-2:] == ["0", "0"] for row in rows), out


@pytest.mark.nginx
@pytest.mark.redis
def test_the_mcp_workers_bench_runs() -> None:
    """It exits 1 if a call is lost where none may be, or a kill cut no call: run() checks that."""
    out = run("bench/bench_mcp_workers.py", "--smoke", timeout=120)
    for expected in ("2024-11-05", "hash of session id", "2026-07-28 sessionless", "A mid-call"):
        assert expected in out, out


@pytest.mark.nginx
@pytest.mark.redis
@pytest.mark.timeout(200)  # its own bound is 150 s: 15 s alone, 35 s at a load average of 16
def test_the_100k_bench_runs_and_loses_nothing() -> None:
    """3,000 streams through 2 nginx workers on 2 ports: it exits 1 if one did not open or a
    broadcast missed one (each listener checks its numbers)."""
    out = run("bench/bench_100k.py", "--smoke", timeout=150)
    for expected in ("## limits", "ephemeral ports", "listen overflows", "3,000 of 3,000; lost: 0"):
        assert expected in out, out
