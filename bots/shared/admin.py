"""Admin commands, platform-neutral: stats text + chart, the dead-letter list, requeue, and "forget me".

Admins are the numeric user ids in ``DETECTBOT_ADMIN_IDS``; everyone else gets the ordinary reply to an
unknown command, so nothing is revealed. Gateway errors are raised (``queue_gateway.public.client``) for the bot's one
error handler to put into words.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bots.shared.settings import BotSettings
from queue_gateway.public import texts
from queue_gateway.public.client import GatewayClient, GatewayRefused

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StatsReply:
    text: str
    chart: bytes | None = None


@dataclass(frozen=True, slots=True)
class DeadList:
    """The dead-letter list as the gateway renders it, and the ids of its jobs (for the requeue buttons)."""

    text: str
    job_ids: list[str]


class AdminService:
    def __init__(self, client: GatewayClient, settings: BotSettings) -> None:
        self._client = client
        self._settings = settings

    def is_admin(self, user_id: int | str | None) -> bool:
        return self._settings.is_admin(user_id)

    async def stats(self, lang: str | None) -> StatsReply:
        """The /stats text as the gateway renders it, and its chart."""
        body = await self._client.stats(lang)
        return StatsReply(body.text, await self._client.stats_chart())

    async def dead_jobs(self, lang: str | None, limit: int = 10) -> DeadList:
        body = await self._client.dead_jobs(limit=limit, lang=lang)
        return DeadList(body.text, [job.job_id for job in body.jobs])

    async def requeue(self, job_id: str, lang: str | None = None) -> str:
        try:
            await self._client.requeue(job_id)
        except GatewayRefused as exc:
            return texts.for_error(exc.code, lang)
        return texts.text("requeued", lang, job=job_id[:8])

    async def privacy(self, lang: str | None) -> str:
        """What is kept about a person and for how long, as the gateway (which keeps it) says it."""
        return (await self._client.privacy(lang)).text

    async def forget(self, platform: str, user_id: int | str, lang: str | None) -> str:
        return (await self._client.forget(platform, str(user_id), lang)).text
