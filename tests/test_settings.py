"""Numbers from the environment: in range, or the app does not start and says which one."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from server.course.launcher import LauncherError, Server
from server.settings import number


def test_a_number_in_range_is_read_as_its_defaults_type() -> None:
    assert number({"N": " 7 "}, "N", 1, low=1) == 7
    assert number({"X": "0.5"}, "X", 15.0, low=0.05, high=60) == 0.5
    assert number({}, "X", 15.0, low=0.05) == 15.0 and number({"X": ""}, "X", 2, low=1) == 2


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("0", "HEARTBEAT must be a number from 0.05 to 3600, got '0'"),
        ("-1", "HEARTBEAT must be a number from 0.05 to 3600, got '-1'"),
        ("nan", "got 'nan'"),
        ("inf", "got 'inf'"),
        ("soon", "got 'soon'"),
        ("7200", "got '7200'"),
    ],
)
def test_a_number_out_of_range_names_the_variable_and_the_range(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        number({"HEARTBEAT": raw}, "HEARTBEAT", 15.0, low=0.05, high=3600)


def test_a_whole_number_refuses_a_fraction() -> None:
    with pytest.raises(ValueError, match="QUEUE_SIZE must be a whole number of at least 1"):
        number({"QUEUE_SIZE": "1.5"}, "QUEUE_SIZE", 64, low=1)


@pytest.mark.parametrize("app", ["server.apps.broadcast:app", "server.apps.ws_chat:app"])
def test_an_app_with_a_zero_heartbeat_refuses_to_start(
    serve: Callable[..., Server], app: str
) -> None:
    """A heartbeat of 0 used to start the app, which then wrote `: ping` in a busy loop."""
    with pytest.raises(LauncherError, match="HEARTBEAT must be a number from"):
        serve(app, env={"BROKER": "memory", "HEARTBEAT": "0"})
