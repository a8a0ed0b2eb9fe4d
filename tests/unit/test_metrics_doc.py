"""docs/metrics.md lists exactly the series the services' metrics classes define, with their types and labels."""

from __future__ import annotations

from tests.metrics_catalogue import comparable, defined, documented


def test_the_doc_lists_every_series_with_its_type_and_labels() -> None:
    ours, doc = comparable(defined()), comparable(documented())
    assert not ours - doc, (
        f"defined but not in docs/metrics.md (or with other labels/type): {sorted(map(str, ours - doc))}"
    )
    assert not doc - ours, (
        f"in docs/metrics.md but not defined (or with other labels/type): {sorted(map(str, doc - ours))}"
    )
    assert len(documented()) == len(doc), "a series is listed twice"


def test_every_service_has_series() -> None:
    assert {series.service for series in defined()} == {"Gateway", "Worker", "Bots (Telegram and Discord)"}
    assert len(defined()) >= 21
