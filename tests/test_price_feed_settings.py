"""price_feed's settings are checked at start, like every app's (server.settings.number).

`EVENT_RATE=inf` used to start a publisher with no gap between events, a busy loop that
filled the log as fast as the CPU allowed; `nan` and `EVENT_HISTORY=lots` failed, or not,
with messages that did not name the variable. Each is now refused at start, naming it.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx2
import pytest

from server.course.launcher import LauncherError, Server


@pytest.mark.parametrize(
    ("variable", "raw"),
    [("EVENT_RATE", "inf"), ("EVENT_RATE", "nan"), ("EVENT_RATE", "-1"), ("EVENT_HISTORY", "lots")],
)
def test_a_bad_setting_stops_the_feed_at_start_naming_it(
    serve: Callable[..., Server], variable: str, raw: str
) -> None:
    with pytest.raises(LauncherError, match=f"{variable} must be a (whole )?number"):
        serve("server.apps.price_feed:app", env={variable: raw})


def test_the_status_says_the_settings_it_runs_with(serve: Callable[..., Server]) -> None:
    server = serve("server.apps.price_feed:app", env={"EVENT_RATE": "0", "EVENT_SEED": "7"})
    status = httpx2.get(server.url, timeout=10).json()
    assert status == {"last_id": 0, "rate": 0.0, "seed": 7, "history": 10_000}, status
