"""The worker's settings: one validated object, built in ``main()`` and passed down."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from pydantic import Field

from queue_gateway.client_settings import GatewayClientSettings


def _default_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class WorkerSettings(GatewayClientSettings):
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    queue: str = Field(default="detectbot.jobs", pattern=r"^[A-Za-z0-9_.:-]{1,200}$")
    delivery_limit: int = 3  # must match the gateway's: the queue is declared with it
    max_queue_length: int = 10_000  # must match the gateway's, for the same reason
    heartbeat_s: int = 30  # AMQP heartbeat; inference runs in another process, so it never starves

    model: str = ""  # empty: yolo11n.pt when it can be had, else the offline COCO model
    conf: float = Field(default=0.25, ge=0.0, le=1.0)
    iou: float = Field(default=0.45, gt=0.0, le=1.0)
    imgsz: int | None = None  # None: the model's own input size
    max_det: int = 300
    slots: int = Field(default=1, ge=1, le=64)  # inference processes = prefetch
    infer_threads: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    auto_export: bool = False  # export .pt models to ONNX at start (cached) for a ~2x faster CPU runtime
    max_pixels: int = 25_000_000

    data_dir: Path = Path(".detectbot")
    name: str = Field(default_factory=_default_name, max_length=120)
    retry_window_s: float = 120.0  # how long to retry the gateway before handing a job back to the queue
    http_host: str = "127.0.0.1"
    http_port: int | None = None  # serve /healthz, /readyz, /metrics here (0: any free port); None: off
