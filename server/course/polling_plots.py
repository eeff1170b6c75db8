"""The pictures of lesson 02's experiment: when events arrived, how late, when users asked.

The experiment (`server.clients.polling_experiment.simulate`) runs short polling, long polling
and SSE against the same events; its table says *how much* each costs, these say *how*:

- `arrival_timeline`: one dot per event per user, one row per method, with the publish
  moments as dashed lines. Pushed arrivals (SSE, long polling) sit on the lines; polled ones
  smear to the right, up to one interval.
- `delay_cdf`: the share of deliveries that arrived within x of being published, log scale.
- `request_bursts`: requests sent per 50 ms. A polling timer spreads them out; long polling
  answers every held request at one event, and every user asks again at once.

Each draws one small figure (lesson style: 7 x 3 inches), shows it unless `show=False`, and
returns it, so a test can count what was drawn.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from server.clients.polling_experiment import Experiment

BIN = 0.05  # seconds per bar of `request_bursts`


def arrival_timeline(experiment: Experiment, show: bool = True) -> Figure:
    """One row per method; a dot for each event arriving at each user (users spread in the row)."""
    figure, ax = plt.subplots(figsize=(7, 3))
    _publish_lines(ax, experiment)
    for row, users in enumerate(experiment.runs.values()):
        for index, user in enumerate(users):
            x = [d.arrived - experiment.started for d in user.deliveries]
            y = [row + 0.6 * index / len(users) - 0.3] * len(x)
            ax.plot(x, y, ".", markersize=2, color=f"C{row}")
    ax.set_yticks(range(len(experiment.runs)), list(experiment.runs))
    ax.set_xlabel("seconds since the users started")
    ax.set_xlim(0, experiment.seconds)
    ax.set_title("when each user received each event")
    return _finish(figure, show)


def delay_cdf(experiment: Experiment, show: bool = True) -> Figure:
    """One step curve per method: the share of deliveries within x seconds of publication."""
    figure, ax = plt.subplots(figsize=(7, 3))
    for method in experiment.runs:
        delays = sorted(max(d, 1e-4) for d in experiment.delays(method))  # log scale: no zero
        ax.step(delays, [(i + 1) / len(delays) for i in range(len(delays))], label=method)
    ax.set_xscale("log")
    ax.set_xlabel("delivery delay (s, log scale)")
    ax.set_ylabel("share of deliveries")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    return _finish(figure, show)


def request_bursts(experiment: Experiment, methods: Sequence[str], show: bool = True) -> Figure:
    """Requests per 50 ms for `methods`, each user's first request left out."""
    figure, ax = plt.subplots(figsize=(7, 3))
    bins = [i * BIN for i in range(int(experiment.seconds / BIN) + 1)]
    for method in methods:
        times = experiment.request_times(method, skip_first=True)
        ax.hist(times, bins=bins, label=method, alpha=0.7)
    _publish_lines(ax, experiment)
    ax.set_xlim(0, experiment.seconds)
    ax.set_xlabel("seconds since the users started")
    ax.set_ylabel("requests per 50 ms")
    ax.legend()
    return _finish(figure, show)


def _publish_lines(ax: Axes, experiment: Experiment) -> None:
    for t in experiment.publish_times():
        ax.axvline(t, color="grey", linestyle="--", linewidth=0.8)


def _finish(figure: Figure, show: bool) -> Figure:
    figure.tight_layout()
    if show:
        plt.show()
    return figure
