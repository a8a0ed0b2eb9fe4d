"""The integration tier needs RabbitMQ and Postgres: each test first checks they answer (a failure, never a skip)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _services(services_answer: None) -> None:
    """Every integration test runs against the real services."""
