"""A workshop on one host: N learners run the busiest lessons at once, each in a kernel of its own.

On a shared JupyterHub every learner has a home of their own, a kernel of their own and the
course's servers as that kernel's children, and they all share one machine and one `/tmp`.
This runs that: N learner processes at once, each with its own `HOME` (so its own Jupyter
runtime files, IPython history and matplotlib cache) and its own `JUPYTERHUB_SERVICE_PREFIX`
(so the lessons build their links as on a hub), all sharing `/tmp`, each executing the
lessons in a fresh kernel with nbclient, as `tools/run_solutions.py` does (nothing is written
back). With `--users` (as root), each learner is also a Unix user of its own, created with
`useradd` for the run and removed after it.

What it checks, for every learner: every cell ran without an error (a port clash, a log folder
another learner holds, a file two kernels write would each fail a cell); and once the kernel has
ended, no process of that learner is left (checked in /proc: the learner's processes carry a
marker in their environment, and with `--users` they are that user's). What it measures, per
learner, sampled from /proc every `--interval` seconds:

- peak memory of the kernel and its servers, as RSS (each process counted whole: an upper
  bound) and as PSS (shared pages split between the processes that share them: what N learners
  really add up to); the learner process itself, which stands in for the Jupyter server, is
  shown apart;
- CPU seconds of the kernel and its servers (their rusage: the learner process waits for each
  kernel, and each kernel for its servers), and the wall time of each notebook.

The sum of every learner's memory at the same instant, at its peak, is the host's figure.
Linux only. Numbers are reported; only errors and leftovers fail the run (exit status 1).

    .venv/bin/python bench/bench_workshop.py                  # 10 learners, lesson 04
    .venv/bin/python bench/bench_workshop.py --learners 10 --users \\
        --notebooks solutions/04_fastapi_streaming.ipynb solutions/08_nginx.ipynb
    .venv/bin/python bench/bench_workshop.py --learners 1 --notebooks solutions/*.ipynb
    .venv/bin/python bench/bench_workshop.py --smoke          # 2 learners, lesson 00 (CI)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pwd
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.clients.measure import format_table

ROOT = Path(__file__).resolve().parent.parent
MARKER = "COURSE_WORKSHOP_LEARNER"  # in every learner process's environment
USER_PREFIX = "ssebench"
USER_COMMENT = "sse-course workshop bench"  # only users with this comment are ever removed
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
CELL_TIMEOUT = 300


# --- one learner: run the notebooks in a fresh kernel (this script, with --as-learner) -------


def children_cpu() -> float:
    """CPU seconds of every child this process has waited for (kernels, and their servers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def failed_cell(cell: Any) -> bool:
    return any(output.get("output_type") == "error" for output in cell.get("outputs", []))


def run_as_learner(notebooks: list[Path]) -> None:
    """Execute each notebook in a fresh kernel. Print `start NAME` as each begins, then one
    JSON line: per notebook, its wall time, the CPU of its kernel and servers, its error."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    results: dict[str, dict[str, Any]] = {}
    for path in notebooks:
        print(f"start {path.name}", flush=True)
        notebook = nbformat.read(path, as_version=4)
        started, cpu, error = time.perf_counter(), children_cpu(), None
        client = NotebookClient(
            notebook,
            timeout=CELL_TIMEOUT,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        )
        try:
            client.execute()  # shuts the kernel down and waits for it: its CPU is counted
        except CellExecutionError as failure:
            failed = [c for c in notebook.cells if c.cell_type == "code" and failed_cell(c)]
            lines = failed[0].source.splitlines() if failed else []
            source = next((line for line in lines if not line.startswith("#")), "?")
            error = f"{failure.ename}: {failure.evalue} (in the cell `{source[:60]}`)"
            print(failure, file=sys.stderr)  # the whole traceback in the learner's log
        results[path.name] = {
            "seconds": time.perf_counter() - started,
            "cpu": children_cpu() - cpu,
            "error": error,
        }
    print(json.dumps(results), flush=True)


# --- /proc ---------------------------------------------------------------------------------


def parents() -> dict[int, int]:
    """Every process's parent: {pid: ppid}."""
    table: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue  # it ended while we looked
            table[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    return table


def learner_of(pid: int) -> str | None:
    """The learner marker in the environment of `pid`, if any (None if it has none or is gone)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    prefix = f"{MARKER}=".encode()
    return next((v[len(prefix) :].decode() for v in environ if v.startswith(prefix)), None)


class Census:
    """One look at every process: its parent, and which learner's marker it carries.

    A process's environment is read once (it is fixed at exec, and a forked child carries its
    parent's): one read per new process, not one per sample.
    """

    def __init__(self) -> None:
        self.parents: dict[int, int] = {}
        self._markers: dict[int, str | None] = {}

    def refresh(self) -> None:
        self.parents = parents()
        self._markers = {pid: self.marker(pid) for pid in self.parents}

    def marker(self, pid: int) -> str | None:
        if pid not in self._markers:
            self._markers[pid] = learner_of(pid)
        return self._markers[pid]


def memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of `pid` in KiB; (0, 0) if it is gone."""
    try:
        rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KIB
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return rss, int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0, 0


def descendants(root: int, table: dict[int, int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, ppid in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


# --- the learners ----------------------------------------------------------------------------


@dataclass
class Peak:
    """The highest memory seen, in KiB: RSS and PSS of a kernel and its servers."""

    rss: int = 0
    pss: int = 0

    def add(self, rss: int, pss: int) -> None:
        self.rss, self.pss = max(self.rss, rss), max(self.pss, pss)


@dataclass
class Learner:
    index: int
    home: Path
    uid: int | None = None  # a Unix user of its own (--users)
    process: subprocess.Popen[bytes] | None = None
    marker: str = ""
    started: float = 0.0
    # measured
    peaks: dict[str, Peak] = field(default_factory=dict)  # per notebook
    peak_driver_rss: int = 0  # KiB: the learner process, standing in for the Jupyter server
    peak_processes: int = 0
    wall: float = 0.0
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # per notebook
    leftovers: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.process is not None and self.process.returncode is not None

    @property
    def peak(self) -> Peak:
        return Peak(max((p.rss for p in self.peaks.values()), default=0),
                    max((p.pss for p in self.peaks.values()), default=0))  # fmt: skip

    @property
    def cpu(self) -> float:
        return sum(float(r["cpu"]) for r in self.results.values())

    def start(self, notebooks: list[Path], run_id: str) -> None:
        self.marker = f"{run_id}-{self.index}"
        env = {**os.environ, "HOME": str(self.home), "JUPYTER_PLATFORM_DIRS": "1"}
        env["JUPYTERHUB_SERVICE_PREFIX"] = f"/user/{USER_PREFIX}{self.index}/"  # as a hub sets
        env[MARKER] = self.marker
        for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "TMPDIR"):
            env.pop(name, None)  # theirs, under HOME; and the one shared /tmp
        command = [sys.executable, __file__, "--as-learner", *map(str, notebooks)]
        self.started = time.monotonic()
        # Files, not pipes: the kernel inherits them too, and a full pipe would block it.
        with (
            open(self.home / "learner.out", "wb") as out,
            open(self.home / "learner.log", "wb") as log,
        ):
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=log,
                user=self.uid,
                group=self.uid,
                extra_groups=[] if self.uid is not None else None,
            )

    def output(self) -> list[str]:
        return (self.home / "learner.out").read_text().splitlines()

    def sample(self, census: Census) -> int:
        """Add one /proc sample; return this learner's kernel-and-servers PSS now (KiB)."""
        assert self.process is not None
        driver = self.process.pid
        pids = descendants(driver, census.parents) | {
            pid for pid in census.parents if pid != driver and census.marker(pid) == self.marker
        }
        rss = pss = 0
        for pid in pids:
            r, p = memory_kib(pid)
            rss, pss = rss + r, pss + p
        notebook = next((line[6:] for line in reversed(self.output()) if line[:6] == "start "), "")
        self.peaks.setdefault(notebook, Peak()).add(rss, pss)
        self.peak_driver_rss = max(self.peak_driver_rss, memory_kib(driver)[0])
        self.peak_processes = max(self.peak_processes, len(pids))
        return pss

    def reap(self) -> None:
        """If the learner has ended, collect its results."""
        assert self.process is not None
        if self.process.poll() is None:
            return
        self.wall = time.monotonic() - self.started
        last = self.output()[-1:] or ["{}"]
        self.results = json.loads(last[0]) if last[0].startswith("{") else {}

    def find_leftovers(self, deadline: float) -> None:
        """Processes of this learner still alive at `deadline` (its kernel has ended)."""
        while True:
            left = [pid for pid in parents() if self.owns(pid)]
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        for pid in left:
            with_args = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            self.leftovers.append(f"{pid} {with_args.strip()}")

    def owns(self, pid: int) -> bool:
        if self.uid is not None:
            try:
                return os.stat(f"/proc/{pid}").st_uid == self.uid
            except OSError:
                return False
        return learner_of(pid) == self.marker


def closed_to_others(path: Path) -> Path | None:
    """The first folder on the way to `path` that other users cannot enter (None if none is)."""
    real = path.resolve()
    for folder in reversed(real.parents):
        if not folder.stat().st_mode & 0o001:
            return folder
    return None


def create_user(index: int, home: Path) -> int:
    name = f"{USER_PREFIX}{index}"
    remove_user(name)
    subprocess.run(
        ["useradd", "--create-home", "--home-dir", str(home), "--user-group",
         "--shell", "/usr/sbin/nologin", "--comment", USER_COMMENT, name],
        check=True,
    )  # fmt: skip
    return pwd.getpwnam(name).pw_uid


def remove_user(name: str) -> None:
    """Remove a bench user left by an earlier run; never a user the bench did not create."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return
    if entry.pw_gecos != USER_COMMENT:
        raise SystemExit(f"user {name} exists and is not the bench's: choose another prefix")
    subprocess.run(["userdel", "--remove", name], check=True, stderr=subprocess.DEVNULL)


def run(learners: list[Learner], notebooks: list[Path], interval: float) -> int:
    """Start every learner at once, sample until all have ended; return the host's peak PSS."""
    run_id = f"{os.getpid()}-{time.time_ns()}"
    for learner in learners:
        learner.start(notebooks, run_id)
    host_peak, census = 0, Census()
    while not all(learner.done for learner in learners):
        census.refresh()
        host_peak = max(host_peak, sum(x.sample(census) for x in learners if not x.done))
        for learner in learners:
            if not learner.done:
                learner.reap()
        time.sleep(interval)
    deadline = time.monotonic() + 15.0  # for the last servers to go: the reaper's grace is 3 s
    for learner in learners:
        learner.find_leftovers(deadline)
    return host_peak


def report(
    learners: list[Learner], notebooks: list[Path], host_peak: int, users: bool, load: float
) -> int:
    """Print the tables and the summary; return 1 if a cell failed or a process was left."""
    mib, n, failed = 1024, len(learners), False
    rows = []
    for x in learners:
        problems = [f"{name}: {r['error']}" for name, r in x.results.items() if r["error"]]
        if x.process is None or x.process.returncode != 0 or len(x.results) != len(notebooks):
            problems.append(f"the learner process failed, see {x.home / 'learner.log'}")
        problems += [f"left running: {p}" for p in x.leftovers]
        for problem in problems:
            print(f"learner {x.index}: {problem}", file=sys.stderr)
        failed = failed or bool(problems)
        rows.append({
            "learner": f"{USER_PREFIX}{x.index}" if users else f"home {x.index}",
            "wall s": x.wall,
            "CPU s": x.cpu,
            "peak RSS MiB": x.peak.rss / mib,
            "peak PSS MiB": x.peak.pss / mib,
            "processes": x.peak_processes,
            "driver MiB": x.peak_driver_rss / mib,
            "errors": sum(1 for r in x.results.values() if r["error"]),
            "leftovers": len(x.leftovers),
        })  # fmt: skip
    print(format_table(rows))

    def median(values: list[float]) -> float:
        return sorted(values)[len(values) // 2]

    lessons = []
    for path in notebooks:
        runs = [x.results[path.name] for x in learners if path.name in x.results]
        peaks = [x.peaks[path.name] for x in learners if path.name in x.peaks]
        lessons.append({
            "notebook": path.name,
            "wall s (median)": median([r["seconds"] for r in runs] or [math.nan]),
            "wall s (max)": max([r["seconds"] for r in runs] or [math.nan]),
            "CPU s (median)": median([r["cpu"] for r in runs] or [math.nan]),
            "peak RSS MiB": max((p.rss for p in peaks), default=0) / mib,
            "peak PSS MiB": max((p.pss for p in peaks), default=0) / mib,
        })  # fmt: skip
    print("\nPer notebook (kernel and its servers; peaks are the highest over the learners):")
    print(format_table(lessons))
    pss = [x.peak.pss / mib for x in learners]
    cpu = [x.cpu for x in learners]
    wall = max(x.wall for x in learners)
    print(
        f"\n{n} learner{'s' * (n > 1)} at once "
        f"({'separate Unix users' if users else 'separate homes'}, one /tmp), "
        f"{', '.join(p.name for p in notebooks)}, on {os.cpu_count()} CPUs "
        f"(load average {load:.1f} before the start):\n"
        f"  peak PSS per learner (kernel + servers): median {median(pss):.0f} MiB, "
        f"max {max(pss):.0f} MiB\n"
        f"  host peak, all learners at the same instant: {host_peak / mib:.0f} MiB PSS\n"
        f"  CPU per learner: median {median(cpu):.1f} s, max {max(cpu):.1f} s; "
        f"{sum(cpu) / wall:.2f} cores busy on average over {wall:.0f} s"
    )
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=10)
    parser.add_argument(
        "--notebooks", nargs="+", type=Path, default=[ROOT / "solutions/04_fastapi_streaming.ipynb"]
    )
    parser.add_argument("--users", action="store_true", help="a Unix user per learner (root)")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between samples")
    parser.add_argument("--smoke", action="store_true", help="2 learners, lesson 00 (CI)")
    parser.add_argument("--as-learner", nargs="+", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.as_learner:
        run_as_learner(args.as_learner)
        return 0
    if args.smoke:
        args.learners, args.notebooks = 2, [ROOT / "solutions/00_setup.ipynb"]
    if args.users and (os.geteuid() != 0 or not shutil.which("useradd")):
        parser.error("--users needs root and useradd")
    for needed in (Path(sys.executable), ROOT) if args.users else ():
        if (closed := closed_to_others(needed)) is not None:
            parser.error(f"--users: other users cannot reach {needed}: {closed} is closed to them")
    notebooks = [path.resolve() for path in args.notebooks]
    base = Path(tempfile.mkdtemp(prefix="workshop-"))
    base.chmod(0o755)  # the learners' homes are inside
    learners: list[Learner] = []
    try:
        for index in range(args.learners):
            home = base / f"learner-{index}"
            uid = create_user(index, home) if args.users else None
            home.mkdir(exist_ok=True)
            learners.append(Learner(index, home, uid))
        load = os.getloadavg()[0]  # other work on the host slows the learners down
        host_peak = run(learners, notebooks, args.interval)
        return report(learners, notebooks, host_peak, args.users, load)
    finally:
        for learner in learners:
            if learner.process is not None and learner.process.returncode is None:
                learner.process.kill()
                learner.process.wait()
            if learner.uid is not None:
                remove_user(f"{USER_PREFIX}{learner.index}")
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
