"""MCP's HTTP shapes on two workers behind nginx: calls that fail and complete, per shape.

Lesson 12 claims what each revision of MCP's HTTP transport does to a deployment with two
workers: the 2024-11-05 HTTP+SSE transport loses calls to plain round robin; the session era
(2025-11-25) works once nginx routes on the session id, until the session's worker dies; the
sessionless 2026-07-28 revision completes every call through the same SIGKILL. This counts it
with `server.course.mcp_scaling` (Redis, two uvicorn workers of each app, nginx), `--calls`
calls per row:

- the rows without a kill run `--together` calls at a time (20: many clients at once, so which
  worker each request meets is no longer a strict alternation);
- an extra row routes on `hash $http_mcp_session_id consistent`;
- the two kill rows run together, `--per-kill` calls of each (20) at a time: worker A is
  SIGKILLed by pid once every one of them has had its first progress notification (each call
  is held after each step until then), then restarted for the next batch; each call counts to
  `--steps`, one step every `--step-seconds` on the server.

It prints the table and, with `--json PATH`, writes the rows and the settings there. It exits
1 if the sessionless row lost a call or a routed row without a kill did, or if the kill cut
no call at all (then its rows say nothing). Nothing is timed.

Run: `.venv/bin/python bench/bench_mcp_workers.py --calls 200 --json /tmp/mcp_workers.json`
(a minute or two), or `--smoke` (8 calls a row, as lesson 12 runs it live).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from importlib.metadata import version
from pathlib import Path

from server.clients.open_files import raise_open_files_limit
from server.course.mcp_scaling import Tally, scaling_run, scaling_table


def problems(tally: Tally) -> Counter[tuple[str, str]]:
    """How many calls failed for each reason, by the worker of their first progress."""
    return Counter((c.worker or "-", c.problem) for c in tally.calls if c.problem)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200, help="calls per row (even)")
    parser.add_argument("--together", type=int, default=20, help="at once, rows without a kill")
    parser.add_argument("--per-kill", type=int, default=20, help="calls of each kill row per kill")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--step-seconds", type=float, default=0.1)
    parser.add_argument("--json", type=Path, help="write the rows here as JSON")
    parser.add_argument("--smoke", action="store_true", help="8 calls a row, one at a time")
    args = parser.parse_args()
    if args.smoke:
        args.calls, args.together, args.per_kill = 8, 1, 8
    if args.calls % 2 or args.calls % args.together or args.calls % args.per_kill:
        parser.error("--calls must be even and a multiple of --together and of --per-kill")
    raise_open_files_limit()
    tallies = asyncio.run(
        scaling_run(args.calls, args.steps, args.step_seconds, together=args.together, hashed=True)
    )
    print(f"mcp {version('mcp')}, {args.calls} calls a row, {args.steps} steps each\n")
    print(scaling_table(tallies))
    for tally in tallies:
        print(f"\n{tally.shape}, {tally.balancing}, {tally.killed or 'no kill'}:")
        for (worker, problem), count in sorted(problems(tally).items()):
            print(f"  {count:4d}  on {worker}: {problem}")
    if args.json:
        rows = [
            t.row() | {"problems": [[w, p, n] for (w, p), n in problems(t).items()]}
            for t in tallies
        ]
        settings = vars(args) | {"json": str(args.json), "mcp": version("mcp")}
        args.json.write_text(json.dumps({"settings": settings, "rows": rows}, indent=2))
    must_complete = [t for t in tallies if t.balancing == "on session id" and not t.killed]
    must_complete += [t for t in tallies if t.shape.startswith("2026-07-28")]
    lost = [t.row() for t in must_complete if t.row()["failed"]]
    if lost:
        print(f"calls lost where none may be: {lost}", file=sys.stderr)
    missed = [t.row() for t in tallies if t.killed and not t.row()["failed"] + t.row()["re-issued"]]
    if missed:
        print(f"the kill cut no call, so these rows say nothing: {missed}", file=sys.stderr)
    return 1 if lost or missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
