"""Throughput and replicas over time, drawn with matplotlib (``pip install 'knray[notebook]'``)."""

from __future__ import annotations

from typing import Any

from knray.interactive.history import History

__all__ = ["plot_history"]


def plot_history(history: History, *, title: str = "knray") -> Any:
    """A matplotlib Figure: events delivered per second per trigger (top) and running
    replicas per service (bottom), against seconds since the session started."""
    try:
        from matplotlib import pyplot  # noqa: PLC0415 - optional, for notebooks
    except ImportError as error:
        raise ImportError("plots need matplotlib: pip install 'knray[notebook]'") from error
    figure, (throughput, replicas) = pyplot.subplots(
        2, 1, sharex=True, figsize=(9, 5.5), constrained_layout=True
    )
    for name, (times, values) in sorted(history.series("delivered_per_s").items()):
        throughput.plot(times, values, label=name)
    throughput.set_ylabel("delivered / s")
    throughput.set_title(title)
    for name, (times, values) in sorted(history.series("replicas").items()):
        replicas.step(times, values, where="post", label=name)
    replicas.set_ylabel("replicas")
    replicas.set_xlabel("seconds")
    replicas.yaxis.get_major_locator().set_params(integer=True)
    for axes in (throughput, replicas):
        if axes.lines:
            axes.legend(loc="upper left", fontsize="small")
        axes.grid(alpha=0.3)
    # Returned, not shown: a notebook displays the returned figure once; scripts save it.
    pyplot.close(figure)
    return figure
