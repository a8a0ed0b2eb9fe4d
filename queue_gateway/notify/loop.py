"""The delivery loop: finished chat jobs go back to their chat, in order per chat, paced, retried, never twice.

A job is due when ``next_delivery_at`` has passed. The loop leases due jobs in one statement (so gateway replicas do
not collide; the lease is renewed while it works and given back at once when this replica restarts); a chat's single
photo is leased by the statement that records its result instead, and its delivery starts on the replica that took
the result (:meth:`DeliveryLoop.offer`), with no pass of the loop. A delivery edits the bot's status message
(harmless to repeat) while it sends the result through the platform's notifier, and records the receipt in the
same statement that marks the job delivered. That last step is the only place a duplicate can come from: a crash
after the platform took the message and before the record. Its width is measured
(``detectbot_delivery_record_seconds``). An album is delivered when its last photo finishes, as one message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from db import deliveries, jobs
from db.blobstore import BlobMissing, BlobStore
from db.common import now
from db.models import ACTIVE, Job, JobStatus
from db.transitions import Handoff
from queue_gateway.blobs import RecentResults
from queue_gateway.database import Database
from queue_gateway.metrics import GatewayMetrics
from queue_gateway.notify.base import ChatClock, Delivery, Item, Notifier, RetryLater, Undeliverable, result_type
from queue_gateway.public.contract import parse_origin
from queue_gateway.runtime import tracing
from queue_gateway.runtime.supervise import Backoff, woken
from queue_gateway.typed_job import TypedJob
from queue_gateway.wakeups import Wakeups
from queue_gateway.words import caption, status_text

log = logging.getLogger(__name__)

BATCH = 50


class Pacer:
    """At most one delivery per ``interval`` seconds to the same chat, and one at a time; with a ``clock``, also
    ``interval`` after anything else the bot wrote there (the progress updater's edits)."""

    def __init__(
        self,
        interval: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._interval = interval
        self._clock = clock
        self._sleep = sleep
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._last: dict[str, float] = {}

    @contextlib.asynccontextmanager
    async def slot(self, chat: str, clock: ChatClock | None = None) -> AsyncIterator[None]:
        async with self._locks[chat]:
            wait = self._last_write(chat, clock) + self._interval - self._clock()
            if clock is not None:  # taken from now on: nothing else writes there meanwhile
                clock.mark(chat, at=self._clock() + max(wait, 0.0))
            if wait > 0:
                await self._sleep(wait)  # pacing a chat, not waiting for work
            try:
                yield
            finally:
                self._last[chat] = self._clock()
                if clock is not None:
                    clock.mark(chat, at=self._clock())

    def _last_write(self, chat: str, clock: ChatClock | None) -> float:
        last = self._last.get(chat, 0.0)
        return max(last, clock.last(chat)) if clock is not None else last


class DeliveryLoop:
    def __init__(
        self,
        database: Database,
        notifiers: Mapping[str, Notifier],
        wakeups: Wakeups,
        *,
        owner: str,
        lease_s: float = 15.0,
        concurrency: int = 8,
        max_attempts: int = 12,
        pacer: Pacer | None = None,
        poll_s: float = 1.0,
        metrics: GatewayMetrics | None = None,
        recent: RecentResults | None = None,
    ) -> None:
        self._db = database
        self._notifiers = notifiers
        self._wakeups = wakeups
        self._owner = owner
        self._lease_s = lease_s
        self._limit = asyncio.Semaphore(concurrency)
        self._concurrency = concurrency
        self._max_attempts = max_attempts
        self._pacer = pacer or Pacer(1.0)
        self._poll_s = poll_s
        self._metrics = metrics or GatewayMetrics()
        self._recent = recent or RecentResults()
        self._in_hand: set[str] = set()
        self._turns: dict[str, _Turn] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._offered = 0  # hand-offs promised to results being recorded (see offer)

    async def run(self) -> None:
        """Deliver whatever is due, for ever; an unreachable database only delays it.

        A pass leases what is due and starts its deliveries without waiting for them: a chat held back by
        pacing (or a slow upload) never delays the next pass for the other chats.
        """
        released = await self._db.write(lambda session: deliveries.release_leases(session, self._owner))
        if released:
            log.info("took back %d deliveries this gateway had in hand before it restarted", released)
        backoff = Backoff()
        changed = True  # the first pass leases at once
        try:
            while True:
                self._wakeups.delivery.clear()
                try:
                    # a pass that only the clock woke (another replica's work, a retry falling due) first reads
                    # when the next delivery falls due, and leases only if one is due now: an idle gateway reads
                    # once a second instead of writing a lease that finds nothing
                    pause = 0.0 if changed else await self._db.read(self._pause, retry_s=0)
                    if pause <= 0:
                        leased = await self._lease_due()
                        self._start(leased)
                        # something was due: the next pass comes when a job changes (or after poll_s); only a pass
                        # that found nothing asks when the next retry falls due (a statement fewer a delivery)
                        pause = self._poll_s if leased else await self._db.read(self._pause, retry_s=0)
                    backoff.reset()
                except Exception as exc:
                    log.warning("delivery pass failed (%s: %s); retrying", type(exc).__name__, exc)
                    await backoff.wait()
                    continue
                changed = await woken(self._wakeups.delivery, pause)
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def keep_leases(self) -> None:
        """Renew the leases on the deliveries in hand, so that no other replica takes them over meanwhile."""
        while True:
            await asyncio.sleep(self._lease_s / 3)  # a periodic renewal, not a wait for work
            if self._in_hand:
                try:
                    await self._db.write(self._renew, retry_s=1)
                except Exception as exc:
                    log.warning("could not renew %d delivery leases (%s)", len(self._in_hand), type(exc).__name__)

    @contextlib.contextmanager
    def offer(self) -> Iterator[Handoff | None]:
        """The lease a worker's result may take for its delivery as it is recorded (None when this replica has its
        hands full): the delivery then starts here at once, with no lease of its own and no pass of the loop.
        Within the block, the recorded job is given to :meth:`take` (or not at all, if its statement did not lease
        it: an album, an HTTP job); a hand-off never taken holds its room only until the block ends."""
        if self._room() <= 0:
            yield None
            return
        self._offered += 1
        try:
            yield Handoff(owner=self._owner, seconds=self._lease_s)
        finally:
            self._offered -= 1

    def take(self, job: Job) -> None:
        """Deliver a job whose lease this replica took as its result was recorded (:meth:`offer`)."""
        self._start([job])

    def _room(self) -> int:
        """How many more deliveries this replica may have in hand (a bounded number)."""
        return 4 * self._concurrency - len(self._tasks) - self._offered

    async def _renew(self, session: AsyncSession) -> None:
        await deliveries.renew(session, sorted(self._in_hand), owner=self._owner, seconds=self._lease_s)

    async def _pause(self, session: AsyncSession) -> float:
        due = await deliveries.next_delivery_time(session)
        return self._poll_s if due is None else min(self._poll_s, max(0.0, due - now()))

    async def run_once(self) -> int:
        """Deliver everything due now and wait for it; return how many deliveries were attempted."""
        units = await self._lease_due()
        await asyncio.gather(*(self._guarded(job) for job in units))
        return len(units)

    async def _lease_due(self) -> list[Job]:
        """Lease what is due (one unit per album: its other photos are given back until it is delivered)."""
        room = min(BATCH, self._room())
        if room <= 0:
            return []
        leased = await self._db.write(
            lambda s: deliveries.lease_due(s, owner=self._owner, seconds=self._lease_s, limit=room), retry_s=0
        )
        units: dict[str, Job] = {}
        for job in leased:
            if (job.group_key or job.id) in units:
                await self._release([job.id])
            else:
                units[job.group_key or job.id] = job
        return list(units.values())

    def _start(self, units: Sequence[Job]) -> None:
        for job in units:
            self._in_hand.add(job.id)  # renewed from now on, before its task runs
            task = asyncio.create_task(self._guarded(job), name=f"deliver-{job.id}")
            self._tasks.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if len(self._tasks) == 4 * self._concurrency - 1:  # there is room again: lease what waited for it
            self._wakeups.delivery.set()

    async def _guarded(self, job: Job) -> None:
        self._in_hand.add(job.id)
        try:
            with tracing.span("gateway deliver", parent=job.traceparent, job_id=job.id, platform=job.platform):
                # taken before anything awaits: a chat's results in order (a job with no chat waits for no one)
                async with self._turn(TypedJob.of(job).chat or job.id):
                    await self._deliver(job)
        except Exception:
            log.exception("job %s: delivery crashed; retrying later", job.id)
            with contextlib.suppress(Exception):
                if job.delivery_attempts + 1 >= self._max_attempts:  # the same crash each time: not for ever
                    await self._abandon([job], f"gave up after {job.delivery_attempts + 1} tries: internal error")
                else:
                    await self._db.write(
                        lambda s: deliveries.delivery_retry(s, [job.id], after=30.0, error="internal error")
                    )
        finally:
            self._in_hand.discard(job.id)

    @contextlib.asynccontextmanager
    async def _turn(self, chat: str) -> AsyncIterator[None]:
        """One delivery at a time per chat, in the order they were started (they were leased oldest first): the
        reads before a send (the album, the result) must not let a later result overtake an earlier one."""
        turn = self._turns.get(chat)
        if turn is None:
            turn = self._turns[chat] = _Turn()
        turn.users += 1
        try:
            async with turn.lock:
                yield
        finally:
            turn.users -= 1
            if not turn.users:
                del self._turns[chat]

    async def _deliver(self, job: Job) -> None:
        members = await self._members(job)
        if members is None:
            return
        notifier = self._notifiers.get(job.platform)
        if notifier is None:
            await self._abandon(members, f"no {job.platform} notifier is configured (set its token)")
            return
        delivery = await self._build(members)
        self._in_hand.update(delivery.job_ids)
        chat = delivery.origin.chat_ref
        sent_at: float | None = None
        try:
            async with self._pacer.slot(chat, notifier.clock), self._limit:  # paced first: a wait holds no slot
                receipt = dict(job.delivery_receipt or {})
                if "sent" not in receipt and delivery.items:
                    edited, receipt = await self._edit_and_send(notifier, delivery)
                    sent_at = time.monotonic()
                else:  # sent before: the status message is what is left
                    edited = await self._edit_status(notifier, delivery)
        except RetryLater as exc:
            if exc.after is not None:
                self._metrics.rate_limited.labels(platform=job.platform).inc()
            await self._retry(members, exc)
            return
        except Undeliverable as exc:
            await self._abandon(members, str(exc))
            return
        finally:
            self._in_hand.difference_update(delivery.job_ids)
        await self._db.write(lambda s: deliveries.delivered(s, members, receipt, status_edited=edited))
        if sent_at is not None:
            self._metrics.record_seconds.observe(time.monotonic() - sent_at)
            log.info("job %s delivered to %s", ", ".join(delivery.job_ids), chat)
            self._metrics.deliveries.labels(platform=job.platform, outcome="delivered").inc()

    async def _edit_and_send(self, notifier: Notifier, delivery: Delivery) -> tuple[str | None, dict[str, Any]]:
        """The status edit and the result at once (the person has the result a round trip sooner); the id of the
        status message edited, and the receipt.

        The result decides: when it fails, the delivery fails as before (retried or abandoned; the edit is harmless
        to repeat). When only the edit fails, the result still counts as sent (no second copy of it) and the status
        message as not edited, which makes it due again: the loop comes back to edit it alone."""
        edit = asyncio.ensure_future(self._edit_status(notifier, delivery))
        try:
            sent = await notifier.send(delivery)
        except asyncio.CancelledError:
            edit.cancel()
            raise
        except BaseException:
            await asyncio.gather(edit, return_exceptions=True)  # settled either way; a retry edits again
            raise
        try:
            edited = await edit
        except Undeliverable:  # the chat refuses the bot: nothing more can be done for that message
            edited = delivery.status_message_id
        except Exception as exc:
            log.warning("job %s: status message not edited (%s); edited again later", delivery.job_ids[0], exc)
            edited = None
        return edited, sent.receipt()

    async def _edit_status(self, notifier: Notifier, delivery: Delivery) -> str | None:
        """Edit the bot's "queued" message to the final word; return the id of the message it was about.

        A message that is gone, or can no longer be edited, counts as handled: there is nothing more to do for it.
        """
        if not delivery.status_message_id:
            return None
        await notifier.edit_status(delivery, delivery.status_text)
        return delivery.status_message_id

    async def _members(self, job: Job) -> list[Job] | None:
        """The jobs to deliver together (leased); None while an album still has photos in progress."""
        if not job.group_key or job.group_size <= 1:
            return [job]
        group_key = job.group_key

        async def gather_group(session: AsyncSession) -> list[Job] | None:
            members = await jobs.jobs_in_group(session, group_key)
            if len(members) < job.group_size or any(m.status in ACTIVE for m in members):
                await deliveries.park(session, [m.id for m in members if m.status not in ACTIVE])
                return None
            ids = [m.id for m in members]
            if not await deliveries.lease(session, ids, owner=self._owner, seconds=self._lease_s):
                return None
            return members

        return await self._db.write(gather_group)

    async def _build(self, members: Sequence[Job]) -> Delivery:
        first = TypedJob.of(members[0])
        origin = first.origin or parse_origin({"platform": first.row.platform})
        language = first.language
        ids = [m.id for m in members]
        kept = self._recent.take(ids)  # taken from a worker here; not for a photo deleted since (another replica's)
        images = {m.id: kept[m.id].data for m in members if m.id in kept and m.purged_at is None}
        if unread := [job_id for job_id in ids if job_id not in images]:
            digests = await self._db.read(lambda s: deliveries.result_digests(s, unread))
            images |= await _read_images(self._db.blobs, digests)
        items = [
            Item(
                job_id=m.id,
                ok=m.id in images and m.detections is not None,
                caption=caption(m, language),
                image=images.get(m.id),
                message_id=(m.origin or {}).get("message_id"),
                detections=list(m.detections or []),
                content_type=result_type(images[m.id]) if m.id in images else "image/jpeg",
                clip=m.clip if m.media == "clip" else None,
            )
            for m in members
            if m.status != JobStatus.CANCELLED
        ]
        return Delivery(
            origin=origin,
            items=items,
            status_text=status_text(members, language),
            status_message_id=first.row.status_message_id,
            output=first.output,
            language=language,
        )

    async def _retry(self, members: Sequence[Job], exc: RetryLater) -> None:
        attempts = max(m.delivery_attempts for m in members) + 1
        job_ids = [m.id for m in members]
        if attempts >= self._max_attempts:
            await self._abandon(members, f"gave up after {attempts} tries: {exc.reason}")
            return
        after = exc.after if exc.after is not None else min(2.0**attempts, 300.0)
        log.warning("job %s: delivery failed (%s); retrying in %.1f s", ", ".join(job_ids), exc.reason, after)
        self._metrics.deliveries.labels(platform=members[0].platform, outcome="retry").inc()
        await self._db.write(lambda s: deliveries.delivery_retry(s, job_ids, after=after, error=exc.reason))

    async def _abandon(self, members: Sequence[Job], reason: str) -> None:
        job_ids = [m.id for m in members]
        log.error("job %s: not delivered: %s", ", ".join(job_ids), reason)
        self._metrics.deliveries.labels(platform=members[0].platform, outcome="abandoned").inc()
        await self._db.write(lambda s: deliveries.delivery_abandoned(s, job_ids, error=reason))

    async def _release(self, job_ids: list[str]) -> None:
        await self._db.write(lambda s: deliveries.park(s, job_ids))


class _Turn:
    """A chat's place in line for deliveries, kept while a delivery for it is started or running."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


async def _read_images(store: BlobStore, digests: Mapping[str, str]) -> dict[str, bytes]:
    """The annotated images, by job; one deleted since its row was read (/forget meanwhile) is left out."""
    images = {}
    for job_id, digest in digests.items():
        with contextlib.suppress(BlobMissing):
            images[job_id] = await store.get(digest)
    return images
