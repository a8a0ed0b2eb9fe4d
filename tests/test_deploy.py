"""compose.yaml and the Dockerfiles: valid, and running exactly the CLI the tests exercise."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from detectbot.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = {"DETECTBOT_API_KEYS": "ci-key", "DETECTBOT_SIGNING_SECRET": "ci-secret-0123456789abcdef0123456789"}


def compose(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is not installed (apt-get install docker-compose); .ci/run installs it"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DETECTBOT_", "COMPOSE_"))}
    return subprocess.run(
        [binary, "-f", str(ROOT / "compose.yaml"), *args],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_compose_file_is_valid() -> None:
    result = compose("config", "-q", env=REQUIRED)
    assert result.returncode == 0, result.stderr


def test_compose_refuses_to_start_without_secrets() -> None:
    result = compose("config", "-q")
    assert result.returncode != 0
    assert "set DETECTBOT_API_KEYS" in result.stderr


def test_services_run_the_cli_and_wait_for_healthy_dependencies() -> None:
    result = compose("--profile", "telegram", "--profile", "discord", "config", env=REQUIRED)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert set(services) == {"rabbitmq", "postgres", "migrate", "gateway", "worker", "telegram", "discord"}
    parser = build_parser()
    for name in ("migrate", "gateway", "worker", "telegram", "discord"):
        command = services[name]["command"]
        assert command[0] == "detectbot", name
        parser.parse_args(command[1:])  # exits (fails the test) on a command the CLI does not have
    assert services["gateway"]["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
    assert services["gateway"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["worker"]["depends_on"]["gateway"]["condition"] == "service_healthy"
    for name in ("rabbitmq", "postgres", "gateway", "worker"):
        assert "healthcheck" in services[name], name
    assert "ports" not in services["worker"]  # so that --scale worker=N never collides on a host port
    assert services["telegram"].get("profiles") == ["telegram"]
    assert services["discord"].get("profiles") == ["discord"]


def test_dockerfiles_run_the_cli() -> None:
    parser = build_parser()
    for dockerfile in ("Dockerfile", "Dockerfile.worker"):
        text = (ROOT / dockerfile).read_text()
        match = re.search(r"^CMD \[(.*)\]$", text, re.M)
        assert match, dockerfile
        command = [part.strip().strip('"') for part in match.group(1).split(",")]
        assert command[0] == "detectbot"
        parser.parse_args(command[1:])
    assert "detectbot model offline" in (ROOT / "Dockerfile.worker").read_text()
