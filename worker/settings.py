"""The worker's settings: one validated object, built in ``main()`` and passed down."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator

from queue_gateway.public.settings import ClipSettings, GatewayAddress, QueueSettings
from worker.cpus import cpu_budget

AUTO_SLOTS = 4  # each slot holds its own copy of the model (~200 MB for the offline model)


def _default_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class WorkerSettings(GatewayAddress, QueueSettings, ClipSettings):
    heartbeat_s: int = 30  # AMQP heartbeat; inference runs in another process, so it never starves
    broker_retry_s: float = 30.0  # at start: how long to retry a broker that does not answer, then exit

    model: str = ""  # empty: yolo11n.pt when it can be had, else the offline COCO model
    conf: float | None = Field(default=None, ge=0.0, le=1.0)  # None: the model's own (0.35 NanoDet, else 0.25)
    iou: float = Field(default=0.45, gt=0.0, le=1.0)
    imgsz: int | None = None  # None: the model's own input size
    max_det: int = 300
    # the CPUs this worker may use; 0: its CPU affinity capped by its cgroup's quota (a container's CPU limit)
    cpus: int = Field(default=0, ge=0, le=1024)
    # inference processes; 0: one per CPU (at most AUTO_SLOTS), each with one thread. Measured on 2 cores:
    # two 1-thread processes take 37.6 photos/s, one 2-thread process 28.6 (benchmarks/bench_loop.py)
    slots: int = Field(default=0, ge=0, le=64)
    prefetch: int = Field(default=0, ge=0, le=256)  # jobs in hand; 0: two per slot (one fetched while one runs)
    infer_threads: int = Field(default=0, ge=0)  # threads per inference process; 0: the CPUs shared by the slots
    job_timeout_s: float = Field(default=60.0, gt=0)  # a job's model run is killed after this (then retried)
    auto_export: bool = False  # export .pt models to ONNX at start (cached) for a ~2x faster CPU runtime
    max_pixels: int = 25_000_000

    data_dir: Path = Path(".detectbot")
    name: str = Field(default_factory=_default_name, max_length=120)
    retry_window_s: float = 120.0  # how long to retry the gateway before handing a job back to the queue
    http_host: str = "127.0.0.1"
    http_port: int | None = None  # serve /healthz, /readyz, /metrics here (0: any free port); None: off

    @field_validator("cpus")
    @classmethod
    def _auto_cpus(cls, value: int) -> int:
        return value or cpu_budget()

    @field_validator("slots")
    @classmethod
    def _auto_slots(cls, value: int, info: ValidationInfo) -> int:
        return value or min(info.data.get("cpus") or cpu_budget(), AUTO_SLOTS)

    def threads_per_slot(self) -> int:
        if self.infer_threads:
            return self.infer_threads
        return max(1, self.cpus // self.slots)

    def prefetch_count(self) -> int:
        return self.prefetch or 2 * self.slots
