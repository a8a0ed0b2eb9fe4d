"""Admin commands, platform-neutral: stats text + chart, the dead-letter list, requeue, and "forget me".

Admins are the numeric user ids in ``DETECTBOT_ADMIN_IDS``; everyone else gets the ordinary reply to an
unknown command, so nothing is revealed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from bots.shared.client import GatewayClient, GatewayDown, GatewayError
from bots.shared.settings import BotSettings
from queue_gateway import texts

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
    def __init__(self, client: GatewayClient, admin_client: GatewayClient, settings: BotSettings) -> None:
        self._client = client
        self._admin = admin_client  # presents DETECTBOT_ADMIN_API_KEY (or the bot's own key)
        self._settings = settings

    def is_admin(self, user_id: int | str | None) -> bool:
        return self._settings.is_admin(user_id)

    async def stats(self, lang: str | None) -> StatsReply:
        try:
            body = await self._admin.get_json("/v1/stats")
            chart = await self._admin.get_bytes("/v1/stats/chart.png")
        except GatewayError as exc:
            return StatsReply(_admin_problem(exc))
        except GatewayDown:
            return StatsReply(texts.text("unavailable", lang))
        return StatsReply(format_stats(body, lang), chart)

    async def dead_jobs(self, limit: int = 10) -> list[DeadJob] | str:
        try:
            body = await self._admin.get_json(f"/v1/dead-jobs?limit={limit}")
        except GatewayError as exc:
            return _admin_problem(exc)
        except GatewayDown:
            return texts.text("unavailable")
        return [DeadJob(j["job_id"], j["platform"], j.get("reason") or "?") for j in body["jobs"]]

    async def requeue(self, job_id: str) -> str:
        try:
            await self._admin.post_json(f"/v1/jobs/{job_id}/requeue")
        except GatewayError as exc:
            return exc.message
        except GatewayDown:
            return texts.text("unavailable")
        return texts.text("requeued", job=job_id[:8])

    async def forget(self, platform: str, user_id: int | str, lang: str | None) -> str:
        try:
            body = await self._client.post_json("/v1/forget", {"platform": platform, "user_id": str(user_id)})
        except (GatewayError, GatewayDown):
            return texts.text("unavailable", lang)
        count = int(body.get("forgotten", 0))
        return texts.text("forgot", lang, count=count) if count else texts.text("forgot_none", lang)


def format_dead(jobs: list[DeadJob]) -> str:
    if not jobs:
        return texts.text("dlq_empty")
    lines = [texts.text("dlq_header", count=len(jobs))]
    lines += [f"• {job.job_id[:8]} ({job.platform}): {job.reason}" for job in jobs]
    return "\n".join(lines)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s" if value < 100 else f"{value / 60:.0f}m"


def format_stats(body: dict[str, Any], lang: str | None = None) -> str:
    """A compact block: counts, latency, queue, workers, failures, top classes."""
    jobs = body["jobs"]
    by_platform = ", ".join(f"{p} {n}" for p, n in sorted(jobs["by_platform"].items(), key=lambda kv: -kv[1]))
    waiting = jobs.get("waiting_now", {})
    latency = body["latency_s"]
    queue = body.get("queue")
    queue_line = f"{queue['depth']} waiting, {queue['consumers']} consumers" if queue else "broker unreachable"
    top = ", ".join(f"{t['label']} {t['count']}" for t in body["top_labels"]) or "-"
    lines = [
        texts.text("stats_header", lang),
        f"Jobs: {jobs['received']} received, {jobs['done']} done ({jobs['delivered']} delivered), "
        f"{jobs['failed']} failed, {jobs['dead']} dead",
        f"By platform: {by_platform or '-'}",
        f"In progress now: {sum(waiting.values())}",
        "Latency p50/p95: "
        + ", ".join(
            f"{name.replace('_', ' ')} {_seconds(latency[name]['p50'])}/{_seconds(latency[name]['p95'])}"
            for name in ("queue_wait", "processing", "end_to_end")
        ),
        f"Queue: {queue_line}",
        f"Workers seen (1 min): {len(body['workers'])}",
        f"Dead, waiting in /dlq: {_capped(body['dead_waiting'])}; cache hits: {body['cache_hits']}",
        f"Top classes: {top}",
    ]
    return "\n".join(lines)


def _capped(count: int, cap: int = 1000) -> str:
    return f"{cap}+" if count > cap else str(count)


def _admin_problem(exc: GatewayError) -> str:
    if exc.status == 401:
        log.error("the gateway refused the bot's admin key; set DETECTBOT_ADMIN_API_KEY to one of its admin keys")
        return texts.text("admin_key_missing")
    return exc.message
