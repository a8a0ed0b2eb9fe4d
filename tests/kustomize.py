"""Render deploy/kubernetes without a kustomize binary: the small part of Kustomize that our kustomizations use.

No kustomize binary comes from a registry this project can use (no Debian or PyPI package ships one for Python
3.11), so the tests render the base and the overlay themselves, and the kustomization files stay within what this
module understands: ``resources`` (files and directories), ``namespace``, ``images`` (newName/newTag/digest),
``replicas`` and ``patches`` that are JSON 6902 operations on one target (applied with the ``jsonpatch`` library).
Anything else is refused, so a kustomization that grows past this subset fails the tests instead of being
rendered wrongly. ``kubectl kustomize`` renders the same objects (in its own order).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonpatch
import yaml

SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "images", "replicas", "patches"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass",
                  "CustomResourceDefinition", "PriorityClass"}  # fmt: skip
POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}

Object = dict[str, Any]


class Unsupported(Exception):
    """The kustomization uses something this renderer does not implement."""


def render(directory: Path) -> list[Object]:
    """The objects ``kubectl kustomize directory`` would print."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - SUPPORTED
    if unknown:
        raise Unsupported(f"{directory}/kustomization.yaml: {sorted(unknown)} not supported by tests/kustomize.py")
    objects: list[Object] = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        if path.is_dir():
            objects.extend(render(path))
        else:
            objects.extend(document for document in yaml.safe_load_all(path.read_text()) if document)
    for patch in kustomization.get("patches", []):
        objects = _patch(objects, patch)
    for replica in kustomization.get("replicas", []):
        _replicas(objects, replica)
    for image in kustomization.get("images", []):
        _image(objects, image)
    if "namespace" in kustomization:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = kustomization["namespace"]
    _no_duplicates(objects)
    return objects


def find(objects: list[Object], kind: str, name: str) -> Object:
    found = [obj for obj in objects if obj["kind"] == kind and obj["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} objects"
    return found[0]


def pod_spec(obj: Object) -> Object:
    spec: Object = obj["spec"]["template"]["spec"]
    return spec


def containers(obj: Object) -> list[Object]:
    if obj["kind"] not in POD_TEMPLATE_KINDS:
        return []
    spec = pod_spec(obj)
    return [*spec.get("initContainers", []), *spec["containers"]]


def _patch(objects: list[Object], patch: Object) -> list[Object]:
    if set(patch) != {"target", "patch"} or set(patch["target"]) - {"kind", "name"}:
        raise Unsupported(f"a patch needs exactly a target (kind, name) and an inline patch: {patch}")
    operations = yaml.safe_load(patch["patch"])
    if not isinstance(operations, list):
        raise Unsupported("only JSON 6902 patches (a list of operations) are supported")
    target = find(objects, patch["target"]["kind"], patch["target"]["name"])
    patched = jsonpatch.apply_patch(target, operations)
    return [patched if obj is target else obj for obj in objects]


def _replicas(objects: list[Object], replica: Object) -> None:
    matches = [obj for obj in objects if obj["metadata"]["name"] == replica["name"] and obj["kind"] in
               {"Deployment", "StatefulSet", "ReplicaSet"}]  # fmt: skip
    if len(matches) != 1:
        raise Unsupported(f"replicas: {replica['name']} matches {len(matches)} workloads")
    matches[0]["spec"]["replicas"] = int(replica["count"])


def _image(objects: list[Object], image: Object) -> None:
    if set(image) - {"name", "newName", "newTag", "digest"}:
        raise Unsupported(f"images: {image}")
    for obj in objects:
        for container in containers(obj):
            name, tag = _split_image(container["image"])
            if name != image["name"]:
                continue
            name = image.get("newName", name)
            if "digest" in image:
                container["image"] = f"{name}@{image['digest']}"
            else:
                new_tag = image.get("newTag", tag)
                container["image"] = f"{name}:{new_tag}" if new_tag else name


def _split_image(reference: str) -> tuple[str, str | None]:
    if "@" in reference:
        return reference.split("@", 1)[0], None
    last = reference.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = reference.rsplit(":", 1)
        return name, tag
    return reference, None


def _no_duplicates(objects: list[Object]) -> None:
    seen: set[tuple[str, str]] = set()
    for obj in objects:
        key = (obj["kind"], obj["metadata"]["name"])
        if key in seen:
            raise Unsupported(f"{key[0]}/{key[1]} is defined twice")
        seen.add(key)
