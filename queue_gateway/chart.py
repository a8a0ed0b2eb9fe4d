"""The /stats chart: jobs per hour and p95 end-to-end latency over the window, as a PNG.

CPU-bound (matplotlib): call ``render`` from an executor. Uses the object-oriented API (no pyplot global
state), so concurrent renders in threads do not interfere.
"""

from __future__ import annotations

import io
from typing import Any


def render(hourly: list[dict[str, Any]], *, title: str = "detectbot — last 24 h") -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    hours = [-len(hourly) + 1 + i for i in range(len(hourly))]
    jobs = [h["jobs"] for h in hourly]
    p95 = [h["p95_s"] if h["p95_s"] is not None else float("nan") for h in hourly]
    figure = Figure(figsize=(8, 3.6), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    axes.bar(hours, jobs, color="#4C78A8", label="jobs per hour")
    axes.set_xlabel("hours ago")
    axes.set_ylabel("jobs per hour")
    axes.set_title(title)
    latency = axes.twinx()
    latency.plot(hours, p95, color="#E45756", marker="o", markersize=3, label="p95 end-to-end (s)")
    latency.set_ylabel("p95 seconds")
    latency.set_ylim(bottom=0)
    handles = axes.get_legend_handles_labels()[0] + latency.get_legend_handles_labels()[0]
    axes.legend(handles=handles, loc="upper left", fontsize="small")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
