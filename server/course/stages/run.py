"""One stage check: start the learner's code, report each behaviour, stop at the first miss.

A stage module (`stage_1.py`, ...) is a list of behaviours, each checked against the learner's
code running on real servers:

    async def check(run: StageRun) -> None:
        app = run.app()
        with run.step("GET /countdown answers 200 text/event-stream", hint="..."):
            response = await client.get(app.url + "/countdown")
            if response.status_code != 200:
                raise Missed(f"{response.status_code} {response.text[:80]!r}")

Each behaviour that holds prints `✅ what`. The first that does not prints `❌ what`, what was
received, the hint, and the learner's own traceback when their server logged one (file and line
in their project, never the course's internals). An error in the network (the learner's server
closed the connection, or is not there) is reported the same way: it is their server's doing.
Everything a run starts is stopped when it ends, passed or not.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from server.course.errors import LauncherError, ServerCrashedError
from server.course.launcher import Server, start_app

# A frame of a logged traceback: `File ".../mychat/countdown.py", line 12, in ticks`.
FRAME = re.compile(r'File "(?P<path>[^"]+)", line (?P<line>\d+)')


class Missed(Exception):
    """A behaviour did not hold: the message says what was received instead."""


@dataclass
class StageRun:
    """The state of one check: the learner's folder, what it started, what it printed."""

    project: Path
    report: list[str] = field(default_factory=list)
    servers: list[Server] = field(default_factory=list)
    behaviour: str = "the app starts: uvicorn mychat.app:app"
    hint: str = ""
    passed: int = 0

    def say(self, line: str) -> None:
        print(line, flush=True)
        self.report.append(line)

    @contextmanager
    def step(self, behaviour: str, *, hint: str) -> Iterator[None]:
        """Check one behaviour: the block raises `Missed` (or fails on the network) if not."""
        self.behaviour, self.hint = behaviour, hint
        yield
        self.passed += 1
        self.say(f"✅ {behaviour}")

    def app(
        self,
        target: str = "mychat.app:app",
        *,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        args: tuple[str, ...] = (),
    ) -> Server:
        """The learner's ASGI app under uvicorn, imported from their project folder."""
        try:
            server = start_app(
                target,
                port=port,
                env=env,
                args=("--app-dir", str(self.project.parent), *args),
                name=target.split(":")[0],
            )
        except ServerCrashedError as error:
            said = self.learner_traceback(str(error)) or str(error).splitlines()[0]
            raise Missed(f"the app did not start: {said}") from None
        except LauncherError as error:
            raise Missed(f"the app did not start: {error}") from None
        self.servers.append(server)
        return server

    def started(self, server: Server) -> Server:
        """Remember a server this check started some other way, so the run stops it."""
        self.servers.append(server)
        return server

    def learner_traceback(self, log: str) -> str:
        """The exception at the end of the last traceback in `log`, at the learner's own line."""
        start = max(log.rfind("Traceback (most recent call last)"), 0)
        frames = list(FRAME.finditer(log, start))
        if not frames:
            return ""
        mine = [m for m in frames if Path(m["path"]).resolve().is_relative_to(self.project)]
        # The exception is the first line after the last frame that is not indented.
        after = log[frames[-1].end() :].splitlines()[1:]
        error = next((line for line in after if line and not line[0].isspace()), "")
        if not mine:
            return f"your code raised {error.strip()}"
        where = mine[-1]
        place = Path(where["path"]).resolve().relative_to(self.project.parent)
        return f"your code raised {error.strip()} ({place} line {where['line']})"

    def server_says(self, within: float = 1.0) -> str:
        """The learner's traceback from their servers' logs, if one appears within `within` s.

        A server writes the traceback of a 500 just after sending it, so it is waited for."""
        deadline = time.monotonic() + within
        while True:
            for server in reversed(self.servers):
                said = self.learner_traceback(server.log_tail(80))
                if said:
                    return said
            if time.monotonic() > deadline:
                return ""
            time.sleep(0.02)

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()
        self.servers.clear()
