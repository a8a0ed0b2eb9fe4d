"""deploy/kubernetes: rendered (tests/kustomize.py), valid against the Kubernetes schemas, and wired like compose.

Every object of the base and the production overlay is validated offline with ``kubernetes-validate`` (its bundled
schemas, strict: unknown fields are errors) for the oldest and the newest Kubernetes it knows. KEDA's ScaledObject
is a custom resource that it skips, so its shape is checked here. The wiring tests read the rendered objects: the
settings each container gets (the same as compose gives that service, each one a field of the service's settings
class), probes on the paths and ports the services serve, real ``detectbot`` subcommands, the images of this
release.
"""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic_settings import BaseSettings

from bots.discord.settings import DiscordSettings
from bots.telegram.settings import TelegramSettings
from detectbot.cli import build_parser
from queue_gateway.settings import GatewaySettings
from tests import tools
from tests.deploy.test_deploy import REQUIRED, config
from tests.kustomize import Unsupported, containers, find, pod_spec, render
from worker.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
KUBERNETES_VERSIONS = ("1.29.0", "1.37.0")  # the oldest supported release we target, and the newest schema bundled

# each workload: its container, the compose service it mirrors, and the settings class its process builds
WORKLOADS: dict[str, tuple[str, str, str, type[BaseSettings]]] = {
    "gateway": ("StatefulSet", "detectbot-gateway", "gateway", GatewaySettings),
    "worker": ("Deployment", "detectbot-worker", "worker", WorkerSettings),
    "telegram": ("Deployment", "detectbot-telegram", "telegram", TelegramSettings),
    "discord": ("Deployment", "detectbot-discord", "discord", DiscordSettings),
    "migrate": ("Job", f"detectbot-migrate-{VERSION}", "migrate", GatewaySettings),
}


@pytest.fixture(scope="module")
def base() -> list[dict[str, Any]]:
    return render(KUBE / "base")


@pytest.fixture(scope="module")
def production() -> list[dict[str, Any]]:
    return render(KUBE / "production")


def workload(objects: list[dict[str, Any]], service: str) -> dict[str, Any]:
    kind, name, _, _ = WORKLOADS[service]
    return find(objects, kind, name)


def container(objects: list[dict[str, Any]], service: str) -> dict[str, Any]:
    (only,) = containers(workload(objects, service))
    return only


def environment(objects: list[dict[str, Any]], service: str) -> dict[str, Any]:
    """The DETECTBOT_* variables the container gets: its ConfigMaps' keys (envFrom), then its own ``env``."""
    spec = container(objects, service)
    values: dict[str, Any] = {}
    for source in spec.get("envFrom", []):
        assert set(source) == {"configMapRef"}, "secrets are passed one key at a time (secretKeyRef)"
        values.update(find(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
    for variable in spec.get("env", []):
        values[variable["name"]] = variable.get("value", variable.get("valueFrom"))
    return values


def secret_keys() -> set[str]:
    lines = (KUBE / "production" / "secrets.example.env").read_text().splitlines()
    return {line.split("=", 1)[0] for line in lines if line.strip() and not line.startswith("#")}


# --- rendering and schemas ------------------------------------------------------------------------------------


def test_the_overlay_renders_and_changes_what_production_needs(base, production) -> None:
    assert {obj["metadata"].get("namespace") for obj in base} == {None}
    assert {obj["metadata"].get("namespace") for obj in production if obj["kind"] != "Namespace"} == {"detectbot"}
    assert workload(base, "gateway")["spec"]["replicas"] == 1
    assert workload(production, "gateway")["spec"]["replicas"] >= 2
    assert "replicas" not in workload(production, "worker")["spec"]  # KEDA's autoscaler owns it
    assert container(production, "worker")["image"] == f"registry.example.com/detectbot-worker:{VERSION}"
    assert {kind for kind in (obj["kind"] for obj in production)} >= {"Namespace", "ScaledObject"}


def test_the_renderer_refuses_what_it_does_not_implement(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\ncommonLabels: {a: b}\n")
    with pytest.raises(Unsupported, match="commonLabels"):
        render(tmp_path)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", ["base", "production"])
def test_every_object_is_valid_against_the_kubernetes_schemas(overlay: str, version: str) -> None:
    validated = 0
    for obj in render(KUBE / overlay):
        if obj["apiVersion"].startswith("keda.sh/"):
            continue  # a custom resource: no schema bundled (see the ScaledObject test)
        kubernetes_validate.validate(obj, version, strict=True)  # raises ValidationError
        validated += 1
    assert validated >= 15


def test_the_schema_check_catches_a_mistake(base) -> None:
    broken = workload(base, "worker")
    broken = {**broken, "spec": {**broken["spec"], "replica": 2}}  # a typo of "replicas"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


# KEDA 2.x's ScaledObject (keda.sh/v1alpha1) and its RabbitMQ trigger, as documented by KEDA
_SCALED_OBJECT_SPEC = {"scaleTargetRef", "pollingInterval", "cooldownPeriod", "initialCooldownPeriod", "fallback",
                       "idleReplicaCount", "minReplicaCount", "maxReplicaCount", "advanced", "triggers"}  # fmt: skip
_TRIGGER = {"type", "name", "metadata", "authenticationRef", "metricType", "useCachedMetrics"}
_RABBITMQ_METADATA = {"host", "hostFromEnv", "protocol", "queueName", "mode", "value", "activationValue", "vhostName",
                      "useRegex", "excludeUnacknowledged", "pageSize", "operation", "timeout", "unsafeSsl"}  # fmt: skip


def test_keda_scales_workers_on_the_job_queue_and_to_zero(production) -> None:
    scaled = find(production, "ScaledObject", "detectbot-worker")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    assert set(spec) <= _SCALED_OBJECT_SPEC, set(spec) - _SCALED_OBJECT_SPEC
    target = spec["scaleTargetRef"]
    assert target.get("kind", "Deployment") == "Deployment"
    assert target["name"] == workload(production, "worker")["metadata"]["name"]
    assert spec["minReplicaCount"] == 0 < spec["maxReplicaCount"]
    assert all(isinstance(spec[key], int) and spec[key] > 0 for key in ("pollingInterval", "cooldownPeriod"))
    (trigger,) = spec["triggers"]
    assert set(trigger) <= _TRIGGER and trigger["type"] == "rabbitmq"
    metadata = trigger["metadata"]
    assert set(metadata) <= _RABBITMQ_METADATA, set(metadata) - _RABBITMQ_METADATA
    assert all(isinstance(value, str) for value in metadata.values()), "KEDA's trigger metadata is strings"
    assert metadata["protocol"] == "amqp" and metadata["mode"] == "QueueLength"
    assert int(metadata["value"]) >= 1 and int(metadata["activationValue"]) == 0
    # the queue the workers consume, and a broker URL the worker container really has
    assert metadata["queueName"] == environment(production, "worker")["DETECTBOT_QUEUE"]
    assert metadata["hostFromEnv"] in environment(production, "worker")


# --- wiring -------------------------------------------------------------------------------------------------------


def test_every_container_runs_a_real_detectbot_command(production) -> None:
    parser = build_parser()
    for service in WORKLOADS:
        command = container(production, service)["command"]
        assert command[0] == "detectbot", service
        args = parser.parse_args(command[1:])  # exits (fails the test) on a command the CLI does not have
        assert hasattr(args, "run"), service
    assert container(production, "migrate")["command"] == ["detectbot", "migrate"]
    assert workload(production, "migrate")["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_each_service_gets_the_settings_compose_gives_it(production) -> None:
    compose = config(REQUIRED, profiles=("telegram", "discord"))["services"]
    for service, (_, _, compose_name, _) in WORKLOADS.items():
        ours = {name for name in environment(production, service) if name.startswith("DETECTBOT_")}
        theirs = {name for name in compose[compose_name]["environment"] if name.startswith("DETECTBOT_")}
        assert ours == theirs, f"{service}: only in Kubernetes {ours - theirs}, only in compose {theirs - ours}"


def test_every_setting_is_one_the_service_reads(production) -> None:
    """The settings classes ignore unknown variables, so a misspelt one would silently change nothing."""
    compose = config(REQUIRED, profiles=("telegram", "discord"))["services"]
    for service, (_, _, compose_name, settings) in WORKLOADS.items():
        known = {f"DETECTBOT_{field.upper()}" for field in settings.model_fields}
        for source, names in (("kubernetes", environment(production, service)),
                              ("compose", compose[compose_name]["environment"])):  # fmt: skip
            unknown = {name for name in names if name.startswith("DETECTBOT_")} - known
            assert not unknown, f"{source} {service}: {unknown} is not a setting of {settings.__name__}"


def test_secrets_come_from_the_documented_secret(production) -> None:
    documented = secret_keys()
    used: set[str] = set()
    for service in WORKLOADS:
        for variable in container(production, service).get("env", []):
            ref = variable.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["name"] == "detectbot-secrets"
                # the Secret's keys are the variables' names, but for each bot's own key (one per platform)
                expected = {"telegram": "DETECTBOT_TELEGRAM_BOT_KEY", "discord": "DETECTBOT_DISCORD_BOT_KEY"}
                if variable["name"] == "DETECTBOT_API_KEY" and service in expected:
                    assert ref["key"] == expected[service], service
                else:
                    assert ref["key"] == variable["name"], "the Secret's keys are the variables' names"
                used.add(ref["key"])
    assert used == documented
    for obj in production:
        if obj["kind"] == "ConfigMap":
            for key in obj["data"]:
                assert not any(word in key for word in ("TOKEN", "SECRET", "KEY", "DATABASE_URL", "AMQP_URL")), key


def test_the_gateway_probes_its_real_paths_on_its_port(production) -> None:
    spec = container(production, "gateway")
    command = spec["command"]
    port = int(command[command.index("--port") + 1])
    assert command[command.index("--host") + 1] == "0.0.0.0"
    (declared,) = spec["ports"]
    assert declared["containerPort"] == port
    assert spec["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": declared["name"]}
    assert spec["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": declared["name"]}
    assert spec["startupProbe"]["httpGet"]["path"] == "/healthz"
    service = find(production, "Service", "detectbot-gateway")
    assert service["spec"]["ports"][0]["targetPort"] == declared["name"]
    assert (
        service["spec"]["selector"].items()
        <= workload(production, "gateway")["spec"]["template"]["metadata"]["labels"].items()
    )
    assert environment(production, "worker")["DETECTBOT_GATEWAY_URL"] == f"http://detectbot-gateway:{port}"
    assert environment(production, "telegram")["DETECTBOT_GATEWAY_URL"] == f"http://detectbot-gateway:{port}"


@pytest.mark.parametrize("service", ["worker", "telegram", "discord"])
def test_workers_and_bots_probe_their_health_port(production, service: str) -> None:
    spec = container(production, service)
    env = environment(production, service)
    assert env["DETECTBOT_HTTP_HOST"] == "0.0.0.0"
    (declared,) = spec["ports"]
    assert declared["containerPort"] == int(env["DETECTBOT_HTTP_PORT"])
    assert spec["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": declared["name"]}
    assert spec["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": declared["name"]}
    annotations = workload(production, service)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == env["DETECTBOT_HTTP_PORT"]
    assert annotations["prometheus.io/path"] == "/metrics"


def test_gateway_replicas_have_stable_names(production) -> None:
    gateway = workload(production, "gateway")
    assert gateway["kind"] == "StatefulSet"  # pod names survive rescheduling and rollouts
    (name,) = [v for v in container(production, "gateway")["env"] if v["name"] == "DETECTBOT_NAME"]
    assert name["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert find(production, "Service", gateway["spec"]["serviceName"])["spec"]["clusterIP"] == "None"
    assert environment(production, "gateway")["DETECTBOT_AUTO_MIGRATE"] == "false"  # the Job migrates


def test_one_bot_replica_each_never_two_at_once(production) -> None:
    for service in ("telegram", "discord"):
        deployment = workload(production, service)
        assert deployment["spec"]["replicas"] == 1
        assert deployment["spec"]["strategy"]["type"] == "Recreate"
    volumes = {v["name"]: v for v in pod_spec(workload(production, "discord"))["volumes"]}
    claim = volumes["inbox"]["persistentVolumeClaim"]["claimName"]
    find(production, "PersistentVolumeClaim", claim)
    mounts = {m["name"]: m["mountPath"] for m in container(production, "discord")["volumeMounts"]}
    assert mounts["inbox"] == environment(production, "discord")["DETECTBOT_DATA_DIR"]


def test_gateway_replicas_and_the_migration_share_one_blob_store(production) -> None:
    """Every replica reads the photos the others stored, and the migration moves old ones to the same place."""
    claims = set()
    for service in ("gateway", "migrate"):
        blob_dir = environment(production, service)["DETECTBOT_BLOB_DIR"]
        mounts = {m["mountPath"]: m["name"] for m in container(production, service)["volumeMounts"]}
        volumes = {v["name"]: v for v in pod_spec(workload(production, service))["volumes"]}
        claims.add(volumes[mounts[blob_dir]]["persistentVolumeClaim"]["claimName"])
    (claim,) = claims
    assert find(production, "PersistentVolumeClaim", claim)["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pod_spec(workload(production, "migrate"))["securityContext"]["fsGroup"] == 10001


def test_a_worker_has_time_to_finish_its_photos(production) -> None:
    env = environment(production, "worker")
    grace = pod_spec(workload(production, "worker"))["terminationGracePeriodSeconds"]
    settings = WorkerSettings(cpus=2, job_timeout_s=float(env["DETECTBOT_JOB_TIMEOUT_S"]))
    jobs_per_slot = settings.prefetch_count() // settings.slots
    assert grace >= jobs_per_slot * settings.job_timeout_s + 20


def test_disruption_budgets_cover_gateway_and_workers(production) -> None:
    budgets = [obj for obj in production if obj["kind"] == "PodDisruptionBudget"]
    for service in ("gateway", "worker"):
        labels = workload(production, service)["spec"]["template"]["metadata"]["labels"]
        matching = [b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()]
        assert len(matching) == 1, service
        assert matching[0]["spec"].get("maxUnavailable") == 1  # never blocks a drain, even at one replica


def test_every_pod_is_locked_down_and_sized(production) -> None:
    for service in WORKLOADS:
        pod = pod_spec(workload(production, service))
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] >= 10000
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert pod["automountServiceAccountToken"] is False
        spec = container(production, service)
        security = spec["securityContext"]
        assert security["allowPrivilegeEscalation"] is False and security["capabilities"]["drop"] == ["ALL"]
        assert security["readOnlyRootFilesystem"] is True, service
        mounts = {m["mountPath"] for m in spec.get("volumeMounts", [])}
        assert "/tmp" in mounts, service  # Python's tempfile, matplotlib's cache
        for bound in ("requests", "limits"):
            assert set(spec["resources"][bound]) == {"cpu", "memory"}, service


def test_the_worker_cpu_limit_is_what_it_sizes_itself_from(production) -> None:
    resources = container(production, "worker")["resources"]
    assert resources["limits"]["cpu"] == resources["requests"]["cpu"]  # a whole-CPU quota, guaranteed
    cpus = int(resources["limits"]["cpu"])
    assert WorkerSettings(cpus=cpus).slots == cpus


def test_images_are_this_release(base, production) -> None:
    for objects, registry in ((base, ""), (production, "registry.example.com/")):
        for service in WORKLOADS:
            image = container(objects, service)["image"]
            assert image in (f"{registry}detectbot:{VERSION}", f"{registry}detectbot-worker:{VERSION}"), image
    assert container(base, "worker")["image"] == f"detectbot-worker:{VERSION}"
    assert workload(base, "migrate")["metadata"]["name"].endswith(VERSION)


# --- the static checker -------------------------------------------------------------------------------------------


def checkov() -> str:
    """checkov from a virtualenv of its own (it pins packages older than our dev tools'): found, or installed once
    for the machine (``tests.tools``)."""
    return tools.checkov()


def test_checkov_finds_nothing_in_what_production_applies(tmp_path: Path) -> None:
    """The overlay, not the base: the base leaves the namespace to the overlay (CKV_K8S_21 flags that)."""
    rendered = tmp_path / "rendered"
    rendered.mkdir()
    for index, obj in enumerate(render(KUBE / "production")):
        (rendered / f"{index:02d}-{obj['kind']}-{obj['metadata']['name']}.yaml").write_text(yaml.safe_dump(obj))
    proc = subprocess.run(
        [checkov(), "--quiet", "--compact", "--framework", "kubernetes", "--config-file",
         str(KUBE / ".checkov.yaml"), "--directory", str(rendered)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
