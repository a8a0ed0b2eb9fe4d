"""Every Prometheus series the services define, read from the registries their metrics classes build."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from bots.shared.metrics import BotMetrics
from queue_gateway.metrics import GatewayMetrics
from worker.metrics import WorkerMetrics

DOC = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
            "gauge": ("",), "info": ("_info",)}  # fmt: skip


@dataclass(frozen=True)
class Series:
    service: str
    name: str  # as people query it: with _total for a counter, _info for an info
    type: str
    labels: tuple[str, ...]

    def sample_names(self) -> set[str]:
        base = self.name.removesuffix("_total").removesuffix("_info")
        return {base + suffix for suffix in SUFFIXES[self.type]}


def _series(service: str, owner: object, registry: CollectorRegistry) -> list[Series]:
    found = []
    for metric in vars(owner).values():
        if not isinstance(metric, MetricWrapperBase):
            continue
        (family,) = metric.describe()
        kind = family.type
        name = {"counter": f"{family.name}_total", "info": f"{family.name}_info"}.get(kind, family.name)
        # the label names a metric was declared with (prometheus_client keeps them on the metric)
        labels = tuple(metric._labelnames)
        found.append(Series(service, name, kind, labels))
    declared = {family.name for family in registry.collect()}
    assert {s.name.removesuffix("_total").removesuffix("_info") for s in found} == declared, "metric outside vars"
    return found


def defined() -> list[Series]:
    """Every series of the gateway, a worker and a bot."""
    gateway, worker, bot = GatewayMetrics(), WorkerMetrics(), BotMetrics("telegram")
    return [
        *_series("Gateway", gateway, gateway.registry),
        *_series("Worker", worker, worker.registry),
        *_series("Bots (Telegram and Discord)", bot, bot.registry),
    ]


def sample_names() -> set[str]:
    """Every name a sample of a detectbot series can have on a scrape."""
    return {name for series in defined() for name in series.sample_names()}


def documented() -> list[Series]:
    """The rows of docs/metrics.md's tables, by section."""
    series = []
    section = ""
    for line in DOC.read_text().splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
            continue
        match = re.match(r"^\| `([a-z_]+)` \| (\w+) \|([^|]*)\|", line)
        if match:
            labels = tuple(re.findall(r"`([a-z_]+)`(?: \([^)]*\))?", match.group(3)))
            series.append(Series(section, match.group(1), match.group(2), labels))
    return series


def documented_labels() -> dict[str, set[str]]:
    """Each documented series' label names, as a scrape shows them (an info's come from its value)."""
    return {series.name: set(series.labels) for series in documented()}


def comparable(series: list[Series]) -> set[Series]:
    """For comparing declarations with the doc: an info's labels are not declared, only its values carry them."""
    return {Series(s.service, s.name, s.type, () if s.type == "info" else s.labels) for s in series}
