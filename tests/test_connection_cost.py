"""HTTP/1.0 against keep-alive, timed and counted against a real uvicorn (lesson 01)."""

from __future__ import annotations

import statistics

import pytest

from server.clients import connection_cost

APP = "server.apps.http_demo:app"


def test_the_server_log_shows_one_connection_per_http10_request(serve) -> None:
    app = serve(APP)
    log_start = len(app.log_path.read_text().splitlines())
    new, reused = connection_cost.compare("127.0.0.1", app.port, n=30, rounds=3)
    assert len(new) == len(reused) == 30
    lines = app.log_path.read_text().splitlines()[log_start:]
    assert connection_cost.connections_seen(lines) == {"HTTP/1.0": 30, "HTTP/1.1": 3}


def test_a_new_connection_per_request_is_not_cheaper(serve) -> None:
    app = serve(APP)
    new, reused = connection_cost.compare("127.0.0.1", app.port, n=300, rounds=3)
    assert connection_cost.fast_end(new) > connection_cost.fast_end(reused), (new, reused)


def test_fast_end_is_the_10th_percentile() -> None:
    durations = [float(n) for n in range(1, 101)]
    assert 10 <= connection_cost.fast_end(durations) <= 11
    assert connection_cost.fast_end(durations) < statistics.median(durations)


def test_connections_seen_counts_ports_per_version_and_path() -> None:
    lines = [
        'INFO:     127.0.0.1:5001 - "GET /hello HTTP/1.0" 200 OK',
        'INFO:     127.0.0.1:5002 - "GET /hello HTTP/1.0" 200 OK',
        'INFO:     127.0.0.1:5003 - "GET /hello HTTP/1.1" 200 OK',
        'INFO:     127.0.0.1:5003 - "GET /hello HTTP/1.1" 200 OK',
        'INFO:     127.0.0.1:5004 - "GET /other HTTP/1.1" 200 OK',
        "INFO:     Uvicorn running on http://127.0.0.1:8000",
    ]
    assert connection_cost.connections_seen(lines) == {"HTTP/1.0": 2, "HTTP/1.1": 1}
    assert connection_cost.connections_seen(lines, "/other") == {"HTTP/1.0": 0, "HTTP/1.1": 1}


def test_rounds_must_divide_the_requests() -> None:
    with pytest.raises(ValueError, match="multiple of rounds"):
        connection_cost.compare("127.0.0.1", 1, n=10, rounds=3)
