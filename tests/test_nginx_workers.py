"""start_nginx(worker_processes=N): N workers, each with its own share of the descriptors.

bench_100k needs it: one nginx worker holds at most the open-files limit of descriptors, two
per proxied stream, so 100,000 streams need a dozen workers."""

from __future__ import annotations

import psutil
import pytest

from server.course.launcher import start_app, start_nginx

pytestmark = pytest.mark.nginx


def test_nginx_runs_the_worker_processes_asked_for() -> None:
    with start_app("server.apps.http_demo:app") as app:
        with start_nginx([app], worker_processes=3) as proxy:
            workers = psutil.Process(proxy.pid).children()
            assert len(workers) == 3, [w.cmdline() for w in workers]
            assert all("worker process" in " ".join(w.cmdline()) for w in workers)
        with start_nginx([app]) as proxy:  # the default stays one, as lesson 08 prints it
            assert len(psutil.Process(proxy.pid).children()) == 1
