"""Lesson 02's pictures draw what the experiment measured, against a real price feed."""

from __future__ import annotations

import asyncio

import matplotlib
import pytest

from server.clients.polling import long_poll_loop, short_poll_loop, sse_loop
from server.clients.polling_experiment import Experiment, Method, simulate
from server.course import polling_plots
from server.course.launcher import start_app

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def experiment(request) -> Experiment:
    source = start_app("server.apps.price_feed:app", env={"EVENT_RATE": "6", "EVENT_SEED": "3"})
    request.addfinalizer(source.stop)
    methods = {
        "poll": Method(short_poll_loop, "/poll", {"interval": 0.3}, stagger=0.3),
        "long poll": Method(long_poll_loop, "/long-poll"),
        "SSE": Method(sse_loop, "/sse"),
    }
    result = asyncio.run(simulate(source.url, methods, users=3, window=1.5, settle=0.5))
    result.raise_errors()
    assert result.events, "the source published nothing"
    return result


def test_the_timeline_has_a_dot_per_delivery_and_a_line_per_event(experiment) -> None:
    figure = polling_plots.arrival_timeline(experiment, show=False)
    ax = figure.axes[0]
    dots = sum(len(line.get_xdata()) for line in ax.lines if line.get_marker() == ".")
    deliveries = sum(len(u.deliveries) for users in experiment.runs.values() for u in users)
    assert dots == deliveries > 0
    dashed = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert len(dashed) == len(experiment.events)
    assert [t.get_text() for t in ax.get_yticklabels()] == list(experiment.runs)


def test_the_cdf_ends_at_one_for_every_method(experiment) -> None:
    figure = polling_plots.delay_cdf(experiment, show=False)
    curves = figure.axes[0].lines
    assert [line.get_label() for line in curves] == list(experiment.runs)
    for line, method in zip(curves, experiment.runs, strict=True):
        assert len(line.get_xdata()) == len(experiment.delays(method))
        assert line.get_ydata()[-1] == 1.0


def test_the_bursts_count_every_request_but_each_users_first(experiment) -> None:
    figure = polling_plots.request_bursts(experiment, ["poll", "long poll"], show=False)
    ax = figure.axes[0]
    heights = sum(bar.get_height() for bar in ax.patches)
    expected = sum(len(experiment.request_times(m, skip_first=True)) for m in ("poll", "long poll"))
    assert heights == expected > 0


def test_show_draws_into_the_current_backend(experiment, monkeypatch) -> None:
    shown = []
    monkeypatch.setattr(polling_plots.plt, "show", lambda: shown.append(True))
    polling_plots.delay_cdf(experiment)
    assert shown == [True]
