"""deploy/grafana/detectbot.json: every query is valid PromQL (promtool) and names series the services expose."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from tests.metrics_catalogue import sample_names
from tests.promtool import run

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "detectbot.json"
SERIES = re.compile(r"\bdetectbot_[a-z_]+\b")


def expressions() -> dict[str, list[str]]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return {p["title"]: [t["expr"] for t in p["targets"]] for p in panels if p["type"] != "row"}


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each query as the expression of a recording rule."""
    exprs = [expr for queries in expressions().values() for expr in queries]
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:q{i}", "expr": e}
                                                         for i, e in enumerate(exprs)]}]}  # fmt: skip
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    proc = run("check", "rules", tmp_path / "rules.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    broken = {"groups": [{"name": "d", "rules": [{"record": "d:q", "expr": "sum(rate(detectbot_x[5m])"}]}]}
    (tmp_path / "broken.yml").write_text(yaml.safe_dump(broken))
    assert run("check", "rules", tmp_path / "broken.yml").returncode != 0  # the check does catch a mistake


def test_every_query_names_series_that_exist() -> None:
    known = sample_names()
    for title, queries in expressions().items():
        for expr in queries:
            used = set(SERIES.findall(expr))
            assert used, (title, expr)
            assert used <= known, f"{title}: {used - known} is not exposed by any service"


def test_the_dashboard_shows_what_an_operator_opens_it_for() -> None:
    everything = " ".join(expr for queries in expressions().values() for expr in queries)
    for series in ("detectbot_queue_depth", "detectbot_queue_consumers", "detectbot_stage_seconds_bucket",
                   "detectbot_jobs_finished_total", "detectbot_deliveries_total", "detectbot_jobs_received_total",
                   "detectbot_worker_jobs_total", "detectbot_database_up", "detectbot_broker_up"):  # fmt: skip
        assert series in everything, series
    assert 'status="dead"' in everything


def test_panels_use_the_datasource_variable_and_do_not_overlap() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "detectbot"
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["datasource"]
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & mine, f"{panel['title']} overlaps another panel"
        cells |= mine
