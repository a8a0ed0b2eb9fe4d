"""compose.yaml and the Dockerfiles: valid, and running exactly the CLI the tests exercise.

The file is checked as ``docker compose config`` would: variables interpolated (a required one that is unset
is an error with its message), then validated against the Compose Specification's JSON schema — with no
docker-compose binary needed.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from detectbot.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
SCHEMA = Path(__file__).resolve().parents[1] / "data" / "compose-spec.json"
REQUIRED = {
    "DETECTBOT_TELEGRAM_BOT_KEY": "ci-telegram-bot-key-0123456789",
    "DETECTBOT_DISCORD_BOT_KEY": "ci-discord-bot-key-0123456789",
    "DETECTBOT_SIGNING_SECRET": "ci-secret-0123456789abcdef0123456789",
}
_VARIABLE = re.compile(r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})")


class MissingVariable(Exception):
    pass


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?error}``, ``${VAR?error}``, ``$$``."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match["name"], match["op"], match["arg"] or ""
        current = env.get(name)
        empty = current is None or (op is not None and op.startswith(":") and current == "")
        if op in (":-", "-") and empty:
            return arg
        if op in (":?", "?") and empty:
            raise MissingVariable(f"{name}: {arg}")
        return current or ""

    return _VARIABLE.sub(one, value)


def validate(document: dict[str, Any]) -> None:
    """The Compose Specification's schema (draft 2019-09, as its ``$schema`` says, if not in the usual spelling)."""
    jsonschema.Draft201909Validator(json.loads(SCHEMA.read_text())).validate(document)


def config(env: dict[str, str], profiles: tuple[str, ...] = ()) -> dict[str, Any]:
    raw = yaml.safe_load((ROOT / "compose.yaml").read_text())
    resolved: dict[str, Any] = interpolate(raw, env)
    validate(resolved)
    services = resolved["services"]
    resolved["services"] = {
        name: service for name, service in services.items() if not service.get("profiles") or
        set(service["profiles"]) & set(profiles)
    }  # fmt: skip
    return resolved


def test_compose_file_is_valid() -> None:
    assert {"rabbitmq", "postgres", "migrate", "gateway", "worker"} <= set(config(REQUIRED)["services"])


def test_compose_refuses_to_start_without_secrets() -> None:
    with pytest.raises(MissingVariable, match="set DETECTBOT_SIGNING_SECRET"):
        config({})


def test_the_schema_check_catches_a_mistake() -> None:
    broken = yaml.safe_load((ROOT / "compose.yaml").read_text())
    broken["services"]["gateway"]["depends_on"]["migrate"]["condition"] = "whenever"
    with pytest.raises(jsonschema.ValidationError):
        validate(interpolate(broken, REQUIRED))


def test_services_run_the_cli_and_wait_for_healthy_dependencies() -> None:
    services = config(REQUIRED, profiles=("telegram", "discord"))["services"]
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
    for name in ("rabbitmq", "postgres", "gateway", "worker", "telegram", "discord"):
        assert "healthcheck" in services[name], name
    assert "ports" not in services["worker"]  # so that --scale worker=N never collides on a host port
    assert services["telegram"].get("profiles") == ["telegram"]
    assert services["discord"].get("profiles") == ["discord"]


def test_the_bots_present_a_bot_key_the_gateway_knows() -> None:
    """Following the README's Deploy steps, /stats works: each bot's key is the gateway's key for its platform
    (and for that platform only: a leaked bot key does not reach the other platform's chats)."""
    services = config(REQUIRED, profiles=("telegram", "discord"))["services"]
    gateway_keys = services["gateway"]["environment"]["DETECTBOT_API_KEYS"].split(",")
    for bot in ("telegram", "discord"):
        key = services[bot]["environment"]["DETECTBOT_API_KEY"]
        assert key and f"{bot}:{key}" in gateway_keys and f"bot:{key}" not in gateway_keys


def test_images_are_this_release_not_latest() -> None:
    services = config(REQUIRED, profiles=("telegram", "discord"))["services"]
    ours = {name: service["image"] for name, service in services.items() if service["image"].startswith("detectbot")}
    assert set(ours) == {"migrate", "gateway", "worker", "telegram", "discord"}
    for name, image in ours.items():
        assert image in (f"detectbot:{VERSION}", f"detectbot-worker:{VERSION}"), (name, image)
    for name, service in services.items():
        assert ":" in service["image"] and not service["image"].endswith(":latest"), name
    assert services["worker"]["build"]["dockerfile"] == "Dockerfile.worker"
    assert services["migrate"]["build"] == "."  # builds detectbot:VERSION, which gateway and bots then run


def test_published_ports_listen_on_loopback_only() -> None:
    services = config(REQUIRED, profiles=("telegram", "discord"))["services"]
    published = [(name, port) for name, service in services.items() for port in service.get("ports", [])]
    assert ("gateway", "127.0.0.1:8080:8080") in published
    for name, port in published:
        assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_the_gateway_and_the_migration_share_the_blob_volume() -> None:
    document = config(REQUIRED)
    services = document["services"]
    volumes = set()
    for name in ("migrate", "gateway"):
        blob_dir = services[name]["environment"]["DETECTBOT_BLOB_DIR"]
        mounted = {mount.rsplit(":", 1)[1]: mount.rsplit(":", 1)[0] for mount in services[name]["volumes"]}
        volumes.add(mounted[blob_dir])
    (volume,) = volumes
    assert volume in document["volumes"]  # a named volume: it outlives the containers


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert match and duration, duration
    return int(match.group(1) or 0) * 60 + int(match.group(2) or 0)


def test_a_stopping_worker_has_time_to_finish_its_photos() -> None:
    """On SIGTERM a worker finishes the jobs in hand: two per inference slot, each killed after JOB_TIMEOUT_S."""
    from worker.settings import WorkerSettings

    worker = config(REQUIRED)["services"]["worker"]
    settings = WorkerSettings(cpus=2, job_timeout_s=float(worker["environment"]["DETECTBOT_JOB_TIMEOUT_S"]))
    per_slot = settings.prefetch_count() // settings.slots
    assert _seconds(worker["stop_grace_period"]) >= per_slot * settings.job_timeout_s + 20


def test_dockerfiles_install_only_from_the_hashed_locks() -> None:
    for dockerfile, lock in (("Dockerfile", "gateway.txt"), ("Dockerfile.worker", "worker.txt")):
        text = (ROOT / dockerfile).read_text()
        assert f"COPY requirements/{lock} /tmp/requirements.txt" in text, dockerfile
        assert "pip install --require-hashes --no-deps -r /tmp/requirements.txt" in text, dockerfile
        assert "pip install --require-hashes -r requirements/build.txt" in text, dockerfile
        installs = [line for line in text.splitlines() if "pip install" in line]
        for line in installs:  # every other install is our own wheel (no dependencies), or the opt-in torch build
            assert ("--require-hashes" in line or "--no-deps /tmp/wheels" in line or "pytorch.org" in line
                    or "[ultralytics]" in line), f"{dockerfile}: {line.strip()}"  # fmt: skip
        assert re.search(r"^FROM python:3\.11-slim$", text, re.M), "the locks are made for Python 3.11"
        assert re.search(r"^USER 10001$", text, re.M), "runs as the non-root user the Kubernetes pods expect"
    assert "onnxruntime" not in (ROOT / "requirements" / "gateway.txt").read_text()


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
