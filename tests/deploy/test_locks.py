"""The images' lock files: pinned and hashed, in step with pyproject.toml, and a gateway image without inference.

The gateway + bot image installs requirements/gateway.txt only. So every third-party module that the gateway, the
bots, the migrations and the CLI import (all but the worker's own modules) must come from it, and nothing of the
inference stack may be in it. Checked twice: statically (the imports in the source, followed through our own
modules) and by importing those entry points in a fresh interpreter where the inference packages cannot load.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "requirements"
OURS = ("db", "queue_gateway", "worker", "bots", "detectbot")
INFERENCE = {"onnx", "onnxruntime", "opencv-python-headless", "opencv-python", "torch", "torchvision",
             "ultralytics", "ultralytics-opencv-headless", "onnxslim", "openvino"}  # fmt: skip
INFERENCE_MODULES = ("onnx", "onnxruntime", "cv2", "torch", "torchvision", "ultralytics", "onnxslim", "openvino")
# what only a worker runs: the detectors, the model builders, the consumer, and the demo (gateway + worker in one)
WORKER_ONLY = {"worker.consumer", "worker.inference", "worker.darknet", "worker.onnx_detector",
               "worker.ultra_detector", "worker.export", "worker.offline", "worker.model_loader", "worker.annotate",
               "worker.detections", "worker.gateway", "detectbot.demo"}  # fmt: skip
# the entry points of the gateway image: gateway, migrate, both bots, and the CLI that starts them
GATEWAY_IMAGE_ENTRIES = ["queue_gateway.main", "queue_gateway.service", "queue_gateway.app", "db.migrate",
                         "bots.telegram.main", "bots.telegram.bot", "bots.discord.main", "bots.discord.bot",
                         "detectbot.cli", "detectbot.submit", "detectbot.doctor"]  # fmt: skip


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(line: str) -> str:
    return normalise(re.split(r"[<>=!~\[ ;]", line.strip(), maxsplit=1)[0])


def locked(lock: str) -> dict[str, str]:
    """``{name: version}`` of a lock file; every entry pinned with ``==`` and carrying at least one sha256."""
    text = (REQUIREMENTS / lock).read_text()
    pins: dict[str, str] = {}
    for entry in re.split(r"\n(?=[A-Za-z0-9])", text.strip()):
        if entry.startswith("#"):
            continue
        head = entry.split("\\", 1)[0].strip()
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==([^ ;]+)(?: ;.*)?", head)
        assert match, f"{lock}: not an exact pin: {head}"
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", entry), f"{lock}: {head} has no hash"
        pins[normalise(match.group(1))] = match.group(2)
    return pins


def project_dependencies() -> list[str]:
    dependencies: list[str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return dependencies


def test_every_lock_entry_is_pinned_and_hashed() -> None:
    for lock in ("gateway.txt", "worker.txt", "build.txt"):
        assert locked(lock), lock


def test_gateway_input_is_the_project_less_the_inference_stack() -> None:
    lines = (REQUIREMENTS / "gateway.in").read_text().splitlines()
    gateway = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    expected = [dep for dep in project_dependencies() if requirement_name(dep) not in INFERENCE]
    assert gateway == expected
    assert len(expected) < len(project_dependencies())  # the inference stack really is a dependency of the worker


def test_locks_hold_what_pyproject_asks_and_agree_with_each_other() -> None:
    gateway, worker = locked("gateway.txt"), locked("worker.txt")
    for dependency in project_dependencies():
        assert requirement_name(dependency) in worker, dependency
    assert not set(gateway) & INFERENCE, set(gateway) & INFERENCE
    assert set(gateway) < set(worker)
    assert {name: worker[name] for name in gateway} == gateway, "the two images must run the same versions"
    assert {"onnxruntime", "onnx", "opencv-python-headless"} <= set(worker)
    assert "setuptools" in locked("build.txt")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _module_file(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def static_third_party_imports() -> dict[str, set[str]]:
    """Third-party top-level modules imported by the gateway image's code: ``{module: {importing file, …}}``."""
    files = [
        path for package in ("db", "queue_gateway", "bots", "detectbot") for path in (ROOT / package).rglob("*.py")
    ]
    todo = [str(path.relative_to(ROOT).with_suffix("")).replace("/", ".").removesuffix(".__init__") for path in files]
    seen: set[str] = set()
    found: dict[str, set[str]] = {}
    while todo:
        module = todo.pop()
        if module in seen or module in WORKER_ONLY:
            continue
        seen.add(module)
        path = _module_file(module)
        if path is None:
            continue  # "from package import name" where name is not a module
        for name in _imports(path):
            top = name.split(".")[0]
            if top in OURS:
                todo.append(name)
            elif top not in sys.stdlib_module_names and top != "__future__":
                found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    assert "worker.settings" in seen  # reached through detectbot (doctor), and light
    return found


def distribution(module: str) -> str:
    names = packages_distributions().get(module)
    assert names, f"no installed distribution provides {module!r}"
    return normalise(names[0])


def test_the_gateway_lock_holds_every_module_the_gateway_and_bots_import() -> None:
    gateway = locked("gateway.txt")
    imports = static_third_party_imports()
    assert {"aiohttp", "sqlalchemy", "telegram", "discord", "matplotlib"} <= set(imports)
    # optional, imported only where the tracing extra is installed and DETECTBOT_TRACING is on
    optional = {"opentelemetry"}
    missing = {module: sorted(files)[:3] for module, files in imports.items()
               if module not in optional and distribution(module) not in gateway}  # fmt: skip
    assert not missing, f"imported by the gateway image's code but not in requirements/gateway.txt: {missing}"
    assert not set(imports) & set(INFERENCE_MODULES), set(imports) & set(INFERENCE_MODULES)


_PROBE = """
import importlib, importlib.abc, json, re, sys
from importlib.metadata import packages_distributions
allowed = set(json.loads(sys.argv[1]))  # the distributions in the gateway's lock
ours = set(json.loads(sys.argv[2]))
providers = packages_distributions()
def in_image(top):
    if top in sys.stdlib_module_names or top in ours or top not in providers:
        return True
    return any(re.sub(r"[-_.]+", "-", name).lower() in allowed for name in providers[top])
class OnlyTheLock(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if not in_image(name.split(".")[0]):
            raise ModuleNotFoundError(f"{name} is not in the gateway image", name=name)
sys.meta_path.insert(0, OnlyTheLock())
for module in json.loads(sys.argv[3]):
    importlib.import_module(module)
from detectbot.cli import build_parser
build_parser().parse_args(["gateway"])
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_the_gateway_and_bots_start_with_only_the_gateway_lock() -> None:
    """Import every entry point of the gateway image in a fresh interpreter where only what the gateway's lock
    installs can load (so onnx, onnxruntime, cv2 and torch cannot): the image has all it needs."""
    gateway = locked("gateway.txt")
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(sorted(gateway)), json.dumps(OURS),
         json.dumps(GATEWAY_IMAGE_ENTRIES)],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = set(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert {"aiohttp", "telegram", "discord", "sqlalchemy", "alembic"} <= loaded
    assert not loaded & set(INFERENCE_MODULES)
