"""A clip job as the consumer runs it: the slot's request from the job message, the result meta from what the slot
gave (or why it refused the clip), and the progress the gateway shows in the chat ("frame 40 of 120").

The consumer's photo path stays as it is; it hands a job whose message says ``media: clip`` to :func:`run_clip`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from typing import Any

from queue_gateway.public.contract import ClipResult, JobMessage, ResultMeta
from worker.errors import BadClip
from worker.gateway import GatewayLink
from worker.inference import ClipInference, ClipJob, InferencePool
from worker.settings import WorkerSettings

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 1.0  # at most one progress report a second per clip: the chat shows it at most that often


def clip_request(job: JobMessage, data: bytes, settings: WorkerSettings) -> ClipJob:
    """The slot's request: this worker's limits and sampling, the animation the job message asks for."""
    options = settings.clip_options()
    if job.clip is not None:
        options = dataclasses.replace(
            options, prefer=job.clip.prefer, max_output_bytes=min(job.clip.max_bytes, options.max_output_bytes)
        )
    params = job.params
    return ClipJob(
        data,
        conf=params.conf,
        max_det=params.max_det,
        classes=tuple(params.classes) if params.classes is not None else None,
        language=params.language,
        options=options,
    )


def clip_meta(result: ClipInference, base: dict[str, Any]) -> ResultMeta:
    """The result of a clip: its animation's type and the summary (the frames' detections stay in the worker)."""
    summary = ClipResult(
        duration_s=result.duration_s,
        frames=len(result.frames),
        frames_detected=result.frames_detected,
        fps=result.fps,
        width=result.width,
        height=result.height,
        most=result.summary,
    )
    content_type = "image/gif" if result.content_type == "image/gif" else "video/mp4"
    return ResultMeta(
        ok=True,
        inference_ms=result.inference_ms,
        conf=result.conf,
        content_type=content_type,
        clip=summary,
        **{**base, "model": result.model},
    )


def refusal_meta(exc: BadClip, base: dict[str, Any]) -> ResultMeta:
    """A clip the worker would not take (too long, corrupt, too slow …): final, with its limit and value."""
    return ResultMeta(
        ok=False, error_code=exc.code, error=str(exc)[:500], limit=exc.limit, value=exc.value, **base
    )  # fmt: skip


async def run_clip(
    pool: InferencePool, gateway: GatewayLink, job: JobMessage, data: bytes, settings: WorkerSettings
) -> ClipInference:
    """The clip in the next free slot, its progress sent to the gateway meanwhile (best effort, at most once a
    second); raises as ``InferencePool.detect_clip`` does."""
    reporter = ProgressReporter(gateway, job.progress_url) if job.progress_url else None
    task = asyncio.create_task(reporter.run(), name=f"progress-{job.job_id}") if reporter else None
    try:
        return await pool.detect_clip(clip_request(job, data, settings), on_progress=reporter)
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class ProgressReporter:
    """Hears every frame the slot finishes (called on the event loop) and sends the latest to the gateway at most
    once every ``every_s``; a report that fails is dropped (the next one says more)."""

    def __init__(self, gateway: GatewayLink, url: str, *, every_s: float = PROGRESS_EVERY_S) -> None:
        self._gateway = gateway
        self._url = url
        self._every_s = every_s
        self._latest: tuple[int, int] | None = None
        self._sent: tuple[int, int] | None = None
        self._changed = asyncio.Event()
        self.reports = 0

    def __call__(self, done: int, total: int) -> None:
        if done > 0:  # "frame 0 of 120" says nothing the status does not
            self._latest = (done, total)
            self._changed.set()

    async def run(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            latest = self._latest
            if latest is None or latest == self._sent:
                continue
            if await self._gateway.post_progress(self._url, *latest):
                self.reports += 1
            self._sent = latest
            await asyncio.sleep(self._every_s)  # pacing the reports, not waiting for work
