"""The bots' one use case, platform-neutral: turn a person's photos into jobs and say what happened.

A platform handler downloads the photos, calls ``DetectService``, and sends back the text it gets. All the
wording comes from the shared message catalogue.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from bots.shared.client import GatewayClient, GatewayDown, GatewayError
from bots.shared.settings import BotSettings
from queue_gateway import texts
from queue_gateway.contract import Origin

log = logging.getLogger(__name__)

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Photo:
    data: bytes
    filename: str
    idempotency_key: str
    message_id: str | None = None  # the message the answer should reply to


@dataclass(frozen=True, slots=True)
class Reply:
    """What to tell the person. ``job_ids`` is empty when nothing was queued; ``silent`` for a repeat."""

    text: str
    job_ids: tuple[str, ...] = ()
    silent: bool = False


class DetectService:
    def __init__(self, client: GatewayClient, settings: BotSettings) -> None:
        self.client = client
        self.settings = settings

    def too_big(self, size: int | None, lang: str | None) -> str | None:
        """The polite refusal for a file over the download cap, or None when it is fine."""
        limit = self.settings.max_download_bytes
        if size is None or size <= limit:
            return None
        return texts.text("too_big", lang, size_mb=max(1, round(size / MiB)), limit_mb=limit // MiB)

    async def submit(self, origin: Origin, photos: list[Photo], *, group_key: str | None = None) -> Reply:
        """Queue each photo (one job each; an album as one group) and return the status text."""
        lang = origin.language
        grouped = group_key is not None and len(photos) > 1
        accepted: list[tuple[str, int, bool]] = []
        problems: list[str] = []
        for index, photo in enumerate(photos):
            update: dict[str, Any] = {"message_id": photo.message_id or origin.message_id}
            if grouped:
                update |= {"group_key": group_key, "group_size": len(photos), "group_index": index}
            try:
                answer = await self.client.submit(
                    photo.data,
                    filename=photo.filename,
                    origin=origin.model_copy(update=update),
                    idempotency_key=photo.idempotency_key,
                )
            except GatewayError as exc:
                if exc.code == "busy":
                    return Reply(texts.text("busy", lang, seconds=exc.retry_after or 30))
                problems.append(exc.message)
                continue
            except GatewayDown:
                log.error("gateway unreachable at %s", self.settings.gateway_url)
                return Reply(texts.text("unavailable", lang))
            accepted.append((answer.job_id, answer.position, answer.duplicate))
        return self._reply(accepted, problems, lang)

    def _reply(self, accepted: list[tuple[str, int, bool]], problems: list[str], lang: str | None) -> Reply:
        if not accepted:
            return Reply("\n".join(problems) or texts.text("accepted_hint", lang))
        job_ids = tuple(job_id for job_id, _, _ in accepted)
        if all(duplicate for _, _, duplicate in accepted):
            return Reply("", job_ids, silent=True)  # Telegram/Discord sent the same thing again
        position = min(pos for _, pos, _ in accepted)
        if len(accepted) > 1:
            text = texts.text("queued_album", lang, count=len(accepted), position=max(position, 1))
        elif position > 0:
            text = texts.text("queued", lang, position=position)
        else:
            text = texts.text("queued_now", lang)
        return Reply("\n".join([text, *problems]), job_ids)

    async def status_posted(self, job_ids: tuple[str, ...], message_id: str) -> None:
        """Tell the gateway which message says "queued", so delivery edits it to "Done in 1.4 s"."""
        for job_id in job_ids:
            try:
                await self.client.post_json(f"/v1/jobs/{job_id}/status-message", {"message_id": message_id})
            except (GatewayError, GatewayDown) as exc:
                log.warning("job %s: could not name the status message: %s", job_id, exc)
