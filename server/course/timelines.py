"""Arrival timelines: when the app sent each event, when it arrived, one row per run.

A table of delays says that events were late; a timeline shows how: one burst at the end
(a buffer held everything), a burst every few events (a buffer filled), or each event one step
behind (it waited for the next one). Lesson 08 reads nginx's behaviour off these rows. Each
event is drawn twice, a tick when the app sent it and a dot when it arrived, joined by a line;
a dot is red when the event waited longer than `held` seconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from server.clients.delivery_times import Delivery


def plot_timelines(
    results: Mapping[str, Sequence[Delivery]], title: str, held: float, show: bool = True
) -> Figure:
    """One row per run (top to bottom in `results`' order); returns the figure."""
    figure, ax = plt.subplots(figsize=(7, 0.7 + 0.45 * len(results)))
    for row, found in enumerate(results.values()):
        y = len(results) - 1 - row
        for d in found:
            ax.plot([d.sent, d.received], [y + 0.2, y - 0.15], color="lightgrey", lw=0.8)
        ax.scatter([d.sent for d in found], [y + 0.2] * len(found), marker="|", color="grey")
        for late, color in [(False, "tab:green"), (True, "tab:red")]:  # red drawn on top
            dots = [d.received for d in found if (d.late > held) == late]
            ax.scatter(dots, [y - 0.15] * len(dots), s=14, color=color)
    ax.set_yticks(range(len(results)), list(reversed(list(results))), fontsize=8)
    ax.set_xlabel("seconds since the request  (| sent by the app, • received: red if held back)")
    ax.set_title(title, fontsize=10)
    if show:
        plt.show()
    return figure
