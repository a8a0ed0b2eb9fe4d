"""Admins hear, in their private chat with the bot, when no worker has run for ``alert_s`` and when one is back.

Every gateway replica checks; the one whose guarded UPDATE claims the notice (:mod:`db.notices`) tells, the one that
clears it tells that it is over. The message is in the admin's own language (their /settings).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from db import chats, jobs, notices
from queue_gateway.database import Database
from queue_gateway.notify.base import Notifier, RetryLater, Undeliverable
from queue_gateway.public import texts
from queue_gateway.worker_watch import WorkerWatch

log = logging.getLogger(__name__)

TELL_TRIES = 3  # an admin's message, tried again after a passing failure


class AdminAlerts:
    """Tell the admins once when no worker has run for ``alert_s``, and once when one is back."""

    def __init__(
        self,
        database: Database,
        watch: WorkerWatch,
        notifiers: Mapping[str, Notifier],
        admins: Sequence[str],
        *,
        alert_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = database
        self._watch = watch
        self._notifiers = notifiers
        self._admins = [tuple(ref.split(":", 1)) for ref in admins]
        self._alert_s = alert_s
        self._clock = clock

    async def check(self) -> None:
        """After each count: claim and tell "gone" once it has lasted ``alert_s``; clear and tell "back"."""
        watch = self._watch
        if watch.online is None:
            return
        if watch.gone_since is not None:
            if watch.gone_for() < self._alert_s or await self._db.read(_told):
                return
            waiting = await self._db.read(_waiting)
            gone_since = watch.gone_since
            claimed = await self._db.write(
                lambda s: notices.claim(s, notices.NO_WORKERS, since=gone_since, waiting=waiting, at=self._clock())
            )
            if claimed:
                log.warning("no worker has consumed the job queue for %.0f s; %d photos wait; telling the admins",
                            watch.gone_for(), waiting)  # fmt: skip
                await self._tell_all(lambda lang: texts.ntext(
                    "alert_no_worker", waiting, lang, duration=texts.eta(watch.gone_for(), lang)))  # fmt: skip
            return
        told = await self._db.write(lambda s: notices.clear(s, notices.NO_WORKERS))
        if told is not None:
            away = max(0.0, self._clock() - told.since)
            log.info("workers are back after %.0f s; telling the admins", away)
            await self._tell_all(lambda lang: texts.text("workers_back", lang, duration=texts.eta(away, lang)))

    async def _tell_all(self, render: Callable[[str | None], str]) -> None:
        languages = await self._db.read(lambda s: chats.settings_of(s, self._scopes()))
        for platform, user_id in self._admins:
            notifier = self._notifiers.get(platform)
            if notifier is None:
                continue
            chosen = languages.get((platform, chats.person_scope(user_id))) or languages.get((platform, user_id))
            await _tell(notifier, user_id, render((chosen or {}).get("language")))

    def _scopes(self) -> list[tuple[str, str]]:
        return [scope for platform, user_id in self._admins
                for scope in ((platform, chats.person_scope(user_id)), (platform, user_id))]  # fmt: skip


async def _told(session: AsyncSession) -> bool:
    return await notices.told(session, notices.NO_WORKERS) is not None


async def _waiting(session: AsyncSession) -> int:
    counts = await jobs.count_by_status(session)
    return sum(counts.get(status, 0) for status in ("received", "queued"))


async def _tell(notifier: Notifier, user_id: str, text: str) -> None:
    for attempt in range(TELL_TRIES):
        try:
            await notifier.tell(user_id, text)
            return
        except Undeliverable as exc:  # never started a chat with the bot, or blocked it
            log.warning("admin %s:%s not told (%s); they must start a private chat with the bot",
                        notifier.platform, user_id, exc)  # fmt: skip
            return
        except RetryLater as exc:
            if attempt == TELL_TRIES - 1:
                log.warning("admin %s:%s not told (%s)", notifier.platform, user_id, exc)
                return
            await asyncio.sleep(min(exc.after or 2.0 * (attempt + 1), 30.0))  # the platform's pause, not a wait
