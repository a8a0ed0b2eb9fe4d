"""``detectbot submit``: upload photos through the HTTP API, follow them, save the annotated images."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import aiohttp

from queue_gateway.public.client import GatewayClient, GatewayDown, GatewayRefused
from queue_gateway.public.contract import DetectParams
from queue_gateway.public.settings import GatewayClientSettings

FINISHED = {"done", "delivered", "failed", "dead"}
WAIT_STEP_S = 20.0


@dataclass
class Options:
    photos: list[Path]
    wait: bool = True
    output: Path | None = None
    as_json: bool = False
    conf: float | None = None
    timeout_s: float = 120.0
    webhook_url: str | None = None  # the gateway POSTs each finished job there (signed)
    details: bool = False  # a line per detection (the demo shows them)


class Reporter:
    """Progress lines for people (stderr when --json owns stdout), one JSON object per photo for programs."""

    def __init__(self, as_json: bool, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> None:
        self.as_json = as_json
        self.out = out
        self.progress_stream = err if as_json else out

    def progress(self, line: str) -> None:
        print(line, file=self.progress_stream, flush=True)

    def result(self, payload: dict[str, Any]) -> None:
        if self.as_json:
            print(json.dumps(payload, ensure_ascii=False), file=self.out, flush=True)


async def submit(settings: GatewayClientSettings, options: Options, reporter: Reporter | None = None) -> int:
    """Return the exit code: 0 when every photo was processed, 1 when some failed, 2 when none could start."""
    reporter = reporter or Reporter(options.as_json)
    key = settings.api_key.get_secret_value() if settings.api_key else None
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT_STEP_S + 30)) as http:
        client = GatewayClient(http, settings.gateway_url, key)
        try:
            outcomes = await asyncio.gather(*(_one(client, photo, options, reporter) for photo in options.photos))
        except GatewayDown:
            reporter.progress(
                f"Cannot reach the gateway at {settings.gateway_url}. Is `detectbot gateway` running there? "
                "(set DETECTBOT_GATEWAY_URL to point elsewhere)"
            )
            return 2
    return 0 if all(outcomes) else 1


async def _one(client: GatewayClient, photo: Path, options: Options, reporter: Reporter) -> bool:
    name = photo.name
    try:
        data = await asyncio.to_thread(photo.read_bytes)
    except OSError as exc:
        reporter.progress(f"{name}: cannot read it ({exc.strerror})")
        reporter.result({"file": str(photo), "status": "error", "error": {"code": "unreadable", "message": str(exc)}})
        return False
    params = DetectParams(conf=options.conf) if options.conf is not None else None
    try:
        submitted = await client.submit(data, filename=name, params=params, webhook_url=options.webhook_url)
    except GatewayRefused as exc:
        reporter.progress(f"{name}: {exc.message}")
        reporter.result({"file": str(photo), "status": "rejected", "error": {"code": exc.code, "message": exc.message}})
        return False
    reporter.progress(f"{name}: {_describe(submitted.status, submitted.position)} (job {submitted.job_id})")
    if submitted.waiting_for_worker:
        reporter.progress(f"{name}: {submitted.status_text}")
    if submitted.status == "received":
        reporter.progress(f"{name}: the gateway has it, but the broker is unreachable; it starts when it is back")
    if not options.wait:
        reporter.result(
            {
                "file": str(photo),
                "job_id": submitted.job_id,
                "status": submitted.status,
                "position": submitted.position,
                "status_url": submitted.status_url,
            }
        )
        return True
    job = await _follow(client, submitted.job_id, name, options.timeout_s, reporter)
    if job["status"] not in FINISHED:
        reporter.progress(
            f"{name}: still {job['status']} after {options.timeout_s:.0f} s; it goes on without us "
            f"(follow it at {submitted.status_url}, or wait longer with --timeout)"
        )
    saved = await _save(client, job, photo, options.output) if job["status"] in ("done", "delivered") else None
    if saved:
        reporter.progress(f"{name}: {job.get('caption') or ''} → {saved}")
    if options.details:
        for detection in job.get("detections") or []:
            box = ", ".join(f"{v:.0f}" for v in detection["box"])
            reporter.progress(f"    {detection['label']:<14} {detection['confidence']:.2f}  [{box}]")
    elif job["status"] in ("failed", "dead"):
        reporter.progress(f"{name}: {job['status']}: {(job.get('error') or {}).get('message') or 'no reason given'}")
    reporter.result(
        {
            "file": str(photo),
            "job_id": job["job_id"],
            "status": job["status"],
            "detections": job.get("detections") or [],
            "caption": job.get("caption"),
            "timings": job.get("timings", {}),
            "error": job.get("error"),
            "output": str(saved) if saved else None,
        }
    )
    return job["status"] in ("done", "delivered")


async def _follow(
    client: GatewayClient, job_id: str, name: str, timeout_s: float, reporter: Reporter
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    last = ""
    while True:
        view = await client.job(job_id, wait=min(WAIT_STEP_S, max(0.0, deadline - loop.time())))
        job = view.model_dump(mode="json")
        state = _describe(job["status"], job["position"])
        if state != last and job["status"] not in FINISHED:
            reporter.progress(f"{name}: {state}")
        last = state
        if job["status"] in FINISHED or loop.time() >= deadline:
            return job


async def _save(client: GatewayClient, job: dict[str, Any], photo: Path, output: Path | None) -> Path | None:
    if output is None:
        return None
    target = output / f"{photo.stem}.detected.jpg"
    image = await client.result_image(job["job_id"])
    await asyncio.to_thread(_write, target, image)
    return target


def _write(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def _describe(status: str, position: int) -> str:
    if status in ("queued", "received") and position:
        return f"queued #{position}"
    return status
