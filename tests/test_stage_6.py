"""Stage 6's check catches the mistakes a learner plausibly makes in their nginx config.

Each test copies the reference project, breaks one thing, and runs the real check: it must stop
at the behaviour that the mistake breaks, saying what it received. Plus the config reader the
check relies on (which location, hence which proxy_read_timeout, nginx picks for /chat).
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.course import ports, project
from server.course.ports import LOOPBACK, free_port
from server.course.stages import check_stage
from server.course.stages.nginx_project import effective, parse_config, seconds
from server.course.stages.run import Missed
from server.course.stages.stage_6 import compressed, read_timeout_for_chat
from tests.stage_checks import broken, reference_and_stubs

pytestmark = [pytest.mark.nginx, pytest.mark.stage]

test_the_reference_passes, test_the_stubs_fail_with_a_hint = reference_and_stubs(6)


def test_buffering_left_on_holds_big_events(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without `proxy_buffering off` the countdown still streams (its events are small, and it
    sends X-Accel-Buffering: no), so only the course's 5 KB events without the header show it."""
    folder = broken(tmp_path, "nginx.conf", ("proxy_buffering off;", ""))
    assert not check_stage(6, folder)
    out = capsys.readouterr().out
    assert "✅ GET /countdown through nginx" in out, out
    assert "❌ your config passes each event on at once" in out, out


@pytest.fixture
def first_port_taken(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[socket.socket]]:
    """The first port anything in this process chooses (`free_port`) is taken at once by
    another listener, as another process can take it between the choice and the bind."""
    held: list[socket.socket] = []

    def chosen_then_taken(host: str = LOOPBACK) -> int:
        port = ports.free_port(host)  # (this module's free_port is this function now)
        if not held:
            thief = socket.socket()
            thief.bind((host, port))
            thief.listen()
            held.append(thief)
        return port

    for module in list(sys.modules.values()):
        if module is not ports and getattr(module, "free_port", None) is free_port:
            monkeypatch.setattr(module, "free_port", chosen_then_taken)
    yield held
    for thief in held:
        thief.close()


def test_http_1_0_upstream_opens_a_connection_per_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], first_port_taken: list[socket.socket]
) -> None:
    """Counting the learner's requests only (not nginx's readiness probe, which goes through
    the wiretap too), with the first port the check chose taken meanwhile by another listener:
    the wiretap's port, chosen before nginx started and bound after the apps, once was in CI."""
    folder = broken(tmp_path, "nginx.conf", ("proxy_http_version 1.1;", ""))
    assert not check_stage(6, folder)
    out = capsys.readouterr().out
    assert first_port_taken, "the check chose no port: the test proves nothing"
    assert "❌ nginx reuses its connections to your app" in out, out
    assert "5 requests took 5 connections to the app (HTTP/1.0)" in out, out


def test_a_read_timeout_below_the_heartbeat_cuts_a_quiet_chat(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """10 s against the app's 15 s heartbeat: run 5 times faster, nginx cuts at 2 s."""
    folder = broken(tmp_path, "nginx.conf", ("proxy_read_timeout 5m;", "proxy_read_timeout 10;"))
    assert not check_stage(6, folder)
    out = capsys.readouterr().out
    assert "❌ a chat stays open through a silence longer than your proxy_read_timeout" in out
    assert "(10 s for /chat)" in out and "the stream was cut after" in out, out


def test_an_app_without_heartbeats_is_cut_however_long_the_timeout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = broken(tmp_path, "chat.py", ('yield comment("ping")', "pass  # no heartbeat"))
    assert not check_stage(6, folder)
    out = capsys.readouterr().out
    assert "❌ a chat stays open through a silence" in out and "was cut after" in out, out


def test_a_typo_is_nginx_s_verdict_at_the_learner_s_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = broken(tmp_path, "nginx.conf", ("proxy_buffering off;", "proxy_bufering off;"))
    line = (
        (folder / "nginx.conf")
        .read_text()
        .splitlines()
        .index(
            "            proxy_bufering off;         # every event at once, whatever its size (§2)"
        )
    )
    assert not check_stage(6, folder)
    out = capsys.readouterr().out
    expected = f'nginx -t: unknown directive "proxy_bufering" (mychat/nginx.conf line {line + 1})'
    assert expected in out, out


CONFIG = """
http {
    proxy_read_timeout 20s;
    server {
        listen 127.0.0.1:1;
        location / { proxy_read_timeout 1h; }
        location ~ ^/(chat|talk)$ { proxy_read_timeout 30; }
        location ^~ /countdown { }
        location = /exact { proxy_read_timeout 1m30s; }
    }
}
"""


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/chat", 30), ("/room/1", 3600), ("/countdown", 20), ("/exact", 90), ("/chatty", 3600)],
)
def test_the_timeout_nginx_applies_to_each_path(path: str, expected: float) -> None:
    found = effective(parse_config(CONFIG), "proxy_read_timeout", path, "127.0.0.1:1")
    assert found is not None and seconds(found.args[0]) == expected


def test_the_race_keeps_the_ratio_of_every_timeout_and_the_default() -> None:
    text = (project.REFERENCE / "nginx.conf").read_text()
    timeout, at_http = read_timeout_for_chat(text)
    assert (timeout, at_http) == (300, False)
    faster = compressed(text, timeout / 2, at_http)
    assert "proxy_read_timeout 2000ms;" in faster and "proxy_read_timeout 5m" not in faster
    assert "{{course_http}} proxy_read_timeout 400ms;" in faster  # nginx's 60 s, shortened
    assert len(faster.splitlines()) == len(text.splitlines())  # nginx's line numbers hold


def test_a_config_the_reader_cannot_follow_is_said_so() -> None:
    with pytest.raises(Missed, match=r"could not read mychat/nginx\.conf"):
        read_timeout_for_chat("http { server { listen {{listen}}; }")
