"""The build-it stages: each checks one working step of the learner's chat on real servers.

    from server.course.stages import check_stage
    check_stage(1)                 # in a notebook: the project beside it (notebooks/mychat)

    make check STAGE=1             # the same from a terminal
    make check STAGE=1 PROJECT=solutions/mychat

A stage module `stage_N.py` has a `TITLE`, the `LESSON` that teaches it, a `DEADLINE` in seconds
and `async def check(run)`: behaviours in order, the first miss ends the run (see `run.py`). A
check never raises into the notebook and never hangs: past its deadline it reports the behaviour
it was waiting for. Each run writes its result to `<project>/.progress.json`, which
`server.course.progress` reads to show an instructor the room.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import threading
import time
from pathlib import Path
from types import ModuleType

import httpx2

from server.course.project import LEARNER
from server.course.stages.run import Missed, StageRun

__all__ = ["STAGES", "check_stage", "stage_module"]

STAGES = tuple(range(1, 11))
PROGRESS = ".progress.json"
CHECKER_BUG = "if your code looks right, please report this with the lines above"


def stage_module(stage: int) -> ModuleType:
    if stage not in STAGES:
        raise ValueError(f"there is no stage {stage}: the stages are {STAGES[0]} to {STAGES[-1]}")
    return importlib.import_module(f"server.course.stages.stage_{stage}")


def default_project() -> Path:
    """The `mychat/` beside the running notebook (notebooks/ or solutions/), else the learner's."""
    here = Path.cwd() / "mychat"
    return here if (here / "app.py").is_file() else LEARNER


def check_stage(stage: int, project: Path | str | None = None) -> bool:
    """Check one stage of the project: ✅ per behaviour, or the first miss. Never raises."""
    module = stage_module(stage)
    folder = Path(project).resolve() if project else default_project()
    run = StageRun(folder)
    run.say(f"Stage {stage}: {module.TITLE} ({folder.parent.name}/{folder.name})")
    outcome: list[bool] = []
    worker = threading.Thread(
        target=lambda: outcome.append(asyncio.run(_run(module, run))),
        name=f"stage {stage}",
        daemon=True,
    )
    worker.start()
    worker.join(module.DEADLINE + 30)  # the run's own deadline fires first; this is a backstop
    passed = bool(outcome and outcome[0])
    if passed:
        run.say(f"Stage {stage} passed: all {run.passed} behaviours hold.")
    _record(folder, stage, passed, run.behaviour)
    return passed


async def _run(module: ModuleType, run: StageRun) -> bool:
    try:
        async with asyncio.timeout(module.DEADLINE):
            await module.check(run)
        return True
    except Missed as missed:
        _miss(run, str(missed))
    except TimeoutError:
        _miss(run, f"nothing more came within the stage's {module.DEADLINE} s")
    except httpx2.HTTPError as error:
        _miss(run, f"{type(error).__name__}: {error or 'the connection failed'}")
    except Exception as error:  # a check must never crash the learner's notebook
        _miss(run, f"{type(error).__name__}: {error} (the checker itself failed: {CHECKER_BUG})")
    finally:
        await asyncio.to_thread(run.stop)
    return False


def _miss(run: StageRun, received: str) -> None:
    run.say(f"❌ {run.behaviour}")
    run.say(f"   received: {received}")
    said = run.server_says()
    if said and said not in received:
        run.say(f"   your server's log: {said}")
    if run.hint:
        run.say(f"   hint: {run.hint}")


def _record(folder: Path, stage: int, passed: bool, behaviour: str) -> None:
    """Write this result where an instructor's `server.course.progress` can read it."""
    path = folder / PROGRESS
    try:
        progress = json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        progress = {}
    progress[str(stage)] = {
        "passed": passed,
        "missed": None if passed else behaviour,
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if folder.is_dir():
        path.write_text(json.dumps(progress, indent=1, sort_keys=True) + "\n")
