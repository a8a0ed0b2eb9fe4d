"""The ``detectbot`` command as a user runs it: a real process talking to a real gateway and worker."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from PIL import Image

from tests.clips import decoded, gif, numbered
from tests.images import jpeg
from tests.services import API_KEY, GatewayHandle

FIXED = "py:tests.detectors:fixed"


async def detectbot(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "detectbot.cli",
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def cli_env(gateway_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DETECTBOT_")}
    env.update(
        {
            "DETECTBOT_GATEWAY_URL": gateway_url,
            "DETECTBOT_API_KEY": API_KEY,
            "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        }
    )
    return env


async def test_submit_json_reports_detections_and_saves_the_image(
    gateway: GatewayHandle, start_worker, tmp_path: Path
) -> None:
    await start_worker(gateway, model=FIXED)
    photos = [tmp_path / "street.jpg", tmp_path / "park.jpg"]
    for photo in photos:
        photo.write_bytes(jpeg(400, 300))
    code, out, err = await detectbot(
        "submit", *map(str, photos), "--json", "-o", str(tmp_path / "out"), env=cli_env(gateway.url), cwd=tmp_path
    )
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]  # one per photo, as each finishes
    assert sorted(Path(line["file"]).name for line in lines) == ["park.jpg", "street.jpg"]
    for line in lines:
        assert line["status"] == "done"
        assert {d["label"] for d in line["detections"]} == {"person", "bus"}
        assert line["caption"] == "1 bus, 1 person"
        assert line["timings"]["total_s"] > 0
        with Image.open(line["output"]) as saved:
            assert saved.size == (400, 300)
    assert "queued" in err and "done" not in out.replace('"done"', "")  # progress goes to stderr with --json


async def test_submit_without_json_shows_progress(gateway: GatewayHandle, start_worker, tmp_path: Path) -> None:
    await start_worker(gateway, model=FIXED)
    photo = tmp_path / "one.jpg"
    photo.write_bytes(jpeg())
    code, out, _ = await detectbot("submit", str(photo), "-o", str(tmp_path), env=cli_env(gateway.url), cwd=tmp_path)
    assert code == 0
    assert "one.jpg: queued #1" in out or "one.jpg: processing" in out  # a worker may be quicker than the answer
    assert "1 bus, 1 person" in out and "one.detected.jpg" in out


async def test_submit_a_gif_saves_its_annotated_animation(gateway: GatewayHandle, start_worker, tmp_path: Path) -> None:
    await start_worker(gateway, model=FIXED)
    clip = tmp_path / "wave.gif"
    clip.write_bytes(gif(numbered(20, size=(160, 120)), fps=10))
    code, out, err = await detectbot(
        "submit", str(clip), "--json", "-o", str(tmp_path / "out"), env=cli_env(gateway.url), cwd=tmp_path
    )
    assert code == 0, err
    [line] = [json.loads(line) for line in out.splitlines()]
    assert line["caption"] == "up to 1 bus, 1 person · 2.0 s"
    assert line["output"].endswith("wave.detected.mp4")
    frames, about = decoded(Path(line["output"]).read_bytes())
    assert about["codec"] == "h264" and len(frames) == 20


async def test_submit_says_clearly_when_the_gateway_is_down(tmp_path: Path) -> None:
    photo = tmp_path / "one.jpg"
    photo.write_bytes(jpeg())
    code, out, err = await detectbot("submit", str(photo), env=cli_env("http://127.0.0.1:9"), cwd=tmp_path)
    assert code == 2
    assert "Cannot reach the gateway at http://127.0.0.1:9" in out + err
    assert "Traceback" not in out + err


async def test_submit_says_when_the_broker_is_down(start_gateway, tmp_path: Path) -> None:
    gateway = await start_gateway(amqp_url="amqp://guest:guest@127.0.0.1:1/")
    photo = tmp_path / "one.jpg"
    photo.write_bytes(jpeg())
    code, out, _ = await detectbot("submit", str(photo), "--no-wait", env=cli_env(gateway.url), cwd=tmp_path)
    assert code == 0
    assert "broker is unreachable" in out


async def test_submit_reports_a_refused_photo(gateway: GatewayHandle, tmp_path: Path) -> None:
    photo = tmp_path / "notes.jpg"
    photo.write_text("not a photo at all")
    code, out, _ = await detectbot("submit", str(photo), env=cli_env(gateway.url), cwd=tmp_path)
    assert code == 1
    assert "notes.jpg: That file is not an image." in out


async def test_worker_with_a_model_it_cannot_get_says_what_to_set(gateway: GatewayHandle, tmp_path: Path) -> None:
    env = {
        **cli_env(gateway.url),
        "DETECTBOT_MODEL": "yolo11n.pt",
        "DETECTBOT_DATA_DIR": str(tmp_path),
        "DETECTBOT_QUEUE": gateway.settings.queue,
    }
    code, _, err = await detectbot("worker", env=env, cwd=tmp_path)
    assert code == 3
    lines = [line for line in err.splitlines() if line.startswith("detectbot worker:")]
    assert lines == [
        "detectbot worker: the model is not available: model 'yolo11n.pt' is not on this machine and cannot be "
        "downloaded (offline); set DETECTBOT_MODEL=offline-nanodet or a local .pt/.onnx path"
    ], err
    assert "Traceback" not in err
