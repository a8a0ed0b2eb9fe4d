"""Live progress in the chat: each waiting photo's "queued" message shows its place in line and an estimate.

The updater looks at the chat jobs that have a status message and are not finished, whenever a job moves (and
at least every ``every_s``), and edits a message when its text changed meaningfully: the photo moved up by a
fifth of its place (or to #1), or a worker has been at it for ``WORKING_AFTER_S`` ("Working on it…"; Telegram's
"sending photo…" action as soon as a worker took it).
Edits are throttled: a message at most every ``message_interval_s``, a chat at most every ``chat_interval_s``
(Telegram allows about one message a second per chat, twenty a minute in a group). Delivery writes the last
word ("Done in 1.4 s.").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from db import deliveries
from db.models import JobStatus
from queue_gateway import words
from queue_gateway.database import Database
from queue_gateway.notify.base import Notifier, RetryLater, StatusUpdate, Undeliverable
from queue_gateway.pace import Pace
from queue_gateway.runtime.supervise import woken
from queue_gateway.typed_job import TypedJob
from queue_gateway.worker_watch import WorkerWatch

log = logging.getLogger(__name__)

GROUP_INTERVAL_S = 3.0  # twenty messages a minute in a Telegram group
# "Working on it…" only for a photo that takes a while: most are done within a second, and an edit just before
# the result would take the chat's one message a second from the result itself (it would wait a second more)
WORKING_AFTER_S = 2.0


@dataclass(slots=True)
class _Shown:
    text: str
    position: int
    at: float
    no_worker: bool = False  # it says that no worker is running (a change either way is always shown)


class ProgressUpdater:
    def __init__(
        self,
        database: Database,
        notifiers: Mapping[str, Notifier],
        pace: Pace,
        *,
        every_s: float = 2.0,
        message_interval_s: float = 2.0,
        chat_interval_s: float = 1.0,
        settle_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        watch: WorkerWatch | None = None,
    ) -> None:
        self._db = database
        self._notifiers = notifiers
        self._pace = pace
        self._every_s = every_s
        self._message_interval_s = message_interval_s
        self._chat_interval_s = chat_interval_s
        self._settle_s = settle_s
        self._clock = clock
        self._watch = watch
        self._shown: dict[str, _Shown] = {}
        self._chat_last: dict[str, float] = {}
        self._activity: dict[str, float] = {}
        self._wake = asyncio.Event()

    def job_changed(self, _job_id: str) -> None:
        """A job moved: look again (``create_app`` subscribes this to the gateway's wake-ups)."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.update_once()
            except Exception as exc:  # the database is away: the next pass catches up
                log.warning("progress pass failed (%s)", type(exc).__name__)
            await woken(self._wake, self._every_s)
            # a burst of changes settles into one pass (not a wait for work): each pass reads every job in line,
            # and no status message changes more often than once a second anyway
            await asyncio.sleep(self._settle_s)

    async def update_once(self) -> int:
        """Edit the status messages whose text is due for a change; return how many were edited."""
        found = await self._db.read(lambda session: deliveries.in_line_with_status(session), retry_s=0)
        live = {job.id for job, _ in found}
        for gone in set(self._shown) - live:
            del self._shown[gone]
        edited = 0
        now = self._clock()
        no_worker = self._watch is not None and self._watch.waiting_for_worker()
        noticed_since = self._watch.noticed_since() if self._watch is not None else None
        for row, position in found:
            notifier = self._notifiers.get(row.platform)
            if notifier is None or not row.status_message_id:
                continue
            job = TypedJob.of(row)
            if job.origin is None or job.chat is None:
                continue
            processing = row.status == JobStatus.PROCESSING
            says_no_worker = no_worker and not processing
            text = words.waiting(position, self._pace.eta_s(position), job.language, processing=processing,
                                 no_worker=says_no_worker)  # fmt: skip
            chat = job.chat
            if row.status == JobStatus.PROCESSING:
                await self._activity_once(notifier, job, chat, now)  # "sending photo…": not a message
                if time.time() - (row.processing_at or 0.0) < WORKING_AFTER_S:
                    continue
            if row.id not in self._shown and row.status != JobStatus.PROCESSING:
                # the bot showed this place itself, and said "no worker" if that was so when the photo came
                told = noticed_since is not None and row.received_at >= noticed_since
                self._shown[row.id] = _Shown("", position, now, told)
                continue
            if not self._due(notifier, job, position, text, chat, now, says_no_worker):
                continue
            notifier.clock.mark(chat)
            if await self._edit(notifier, job, position, text):
                self._shown[row.id] = _Shown(text, position, now, says_no_worker)
                self._chat_last[chat] = now
                edited += 1
        return edited

    def _due(
        self, notifier: Notifier, job: TypedJob, position: int, text: str, chat: str, now: float, no_worker: bool
    ) -> bool:
        shown = self._shown.get(job.id)
        if shown is not None and shown.text == text:
            return False
        gap = GROUP_INTERVAL_S if job.is_group else self._chat_interval_s
        if now - max(self._chat_last.get(chat, float("-inf")), notifier.clock.last(chat)) < gap:
            return False  # this chat heard from the bot (progress, or a delivery) too recently
        if shown is None:
            return True
        if now - shown.at < self._message_interval_s:
            return False
        if job.row.status == JobStatus.PROCESSING or shown.no_worker != no_worker:
            return True
        moved = shown.position - position
        return position <= 1 or moved >= max(1, round(shown.position * 0.2))

    async def _edit(self, notifier: Notifier, job: TypedJob, position: int, text: str) -> bool:
        assert job.origin is not None
        waiting = job.row.status != JobStatus.PROCESSING and position > 0
        update = StatusUpdate(
            origin=job.origin,
            status_message_id=job.row.status_message_id or "",
            text=text,
            cancel_job_id=job.id if waiting else None,
            language=job.language,
        )
        try:
            moved_to = await notifier.update_status(update)
        except (RetryLater, Undeliverable) as exc:
            log.info("job %s: status not updated (%s)", job.id, exc)
            return False
        if moved_to is not None:
            job_id = job.id
            await self._db.write(lambda session: deliveries.set_status_message(session, job_id, moved_to))
        return True

    async def _activity_once(self, notifier: Notifier, job: TypedJob, chat: str, now: float) -> None:
        if now - self._activity.get(chat, float("-inf")) < 4.0:  # an action shows for about five seconds
            return
        self._activity[chat] = now
        assert job.origin is not None
        with contextlib.suppress(RetryLater, Undeliverable):
            await notifier.show_activity(job.origin)
