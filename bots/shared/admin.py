"""Admin commands, platform-neutral: stats text + chart, the dead-letter list, requeue, and "forget me".

Admins are the numeric user ids in ``DETECTBOT_ADMIN_IDS``; everyone else gets the ordinary reply to an
unknown command, so nothing is revealed. Gateway errors are raised (``queue_gateway.public.client``) for the bot's one
error handler to put into words.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from bots.shared.settings import BotSettings
from queue_gateway.public import texts
from queue_gateway.public.client import GatewayClient, GatewayRefused

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StatsReply:
    text: str
    chart: bytes | None = None


@dataclass(frozen=True, slots=True)
class DeadJob:
    job_id: str
    platform: str
    reason: str


class AdminService:
    def __init__(self, client: GatewayClient, settings: BotSettings) -> None:
        self._client = client
        self._settings = settings

    def is_admin(self, user_id: int | str | None) -> bool:
        return self._settings.is_admin(user_id)

    async def stats(self, lang: str | None) -> StatsReply:
        body = await self._client.get_json("/v1/stats")
        chart = await self._client.get_bytes("/v1/stats/chart.png")
        return StatsReply(format_stats(body, lang), chart)

    async def dead_jobs(self, limit: int = 10) -> list[DeadJob]:
        body = await self._client.get_json(f"/v1/dead-jobs?limit={limit}")
        return [DeadJob(j["job_id"], j["platform"], j.get("reason") or "?") for j in body["jobs"]]

    async def requeue(self, job_id: str, lang: str | None = None) -> str:
        try:
            await self._client.post_json(f"/v1/jobs/{job_id}/requeue")
        except GatewayRefused as exc:
            return texts.for_error(exc.code, lang)
        return texts.text("requeued", lang, job=job_id[:8])

    async def privacy(self, lang: str | None) -> str:
        """What is kept about a person and for how long, as the gateway (which keeps it) says it."""
        body = await self._client.get_json(f"/v1/privacy?lang={texts.language(lang)}")
        return str(body["text"])

    async def forget(self, platform: str, user_id: int | str, lang: str | None) -> str:
        body = await self._client.post_json("/v1/forget", {"platform": platform, "user_id": str(user_id)})
        count = int(body.get("forgotten", 0))
        return texts.ntext("forgot", count, lang) if count else texts.text("forgot_none", lang)


def format_dead(jobs: list[DeadJob], lang: str | None = None) -> str:
    if not jobs:
        return texts.text("dlq_empty", lang)
    lines = [texts.ntext("dlq_header", len(jobs), lang)]
    lines += [f"• {job.job_id[:8]} ({job.platform}): {job.reason}" for job in jobs]
    return "\n".join(lines)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s" if value < 100 else f"{value / 60:.0f}m"


def format_stats(body: dict[str, Any], lang: str | None = None) -> str:
    """A compact block: counts, latency, queue, workers, failures, top classes."""
    jobs = body["jobs"]
    by_platform = ", ".join(f"{p} {n}" for p, n in sorted(jobs["by_platform"].items(), key=lambda kv: -kv[1]))
    latency = body["latency_s"]
    queue = body.get("queue")
    top = ", ".join(f"{texts.label(t['label'], lang)} {t['count']}" for t in body["top_labels"]) or "-"
    stages = ", ".join(
        f"{texts.text('stage_' + name, lang)} {_seconds(latency[name]['p50'])}/{_seconds(latency[name]['p95'])}"
        for name in ("queue_wait", "processing", "end_to_end")
    )
    lines = [
        texts.text("stats_header", lang),
        texts.text(
            "stats_jobs",
            lang,
            received=jobs["received"],
            done=jobs["done"],
            delivered=jobs["delivered"],
            failed=jobs["failed"],
            dead=jobs["dead"],
        ),
        texts.text("stats_by_platform", lang, platforms=by_platform or "-"),
        texts.text("stats_in_progress", lang, count=sum(jobs.get("waiting_now", {}).values())),
        texts.text("stats_latency", lang, stages=stages),
        texts.text("stats_queue", lang, depth=queue["depth"], consumers=queue["consumers"])
        if queue
        else texts.text("stats_queue_unknown", lang),
        texts.text("stats_workers", lang, count=len(body["workers"])),
        texts.text("stats_dead", lang, dead=_capped(body["dead_waiting"]), hits=body["cache_hits"]),
        texts.text("stats_top", lang, top=top),
    ]
    return "\n".join(lines)


def _capped(count: int, cap: int = 1000) -> str:
    return f"{cap}+" if count > cap else str(count)
