"""Accepting jobs: store job + image durably, publish with a confirm, answer with the place in line.

Each request first puts its photo in the blob store (written and synced, in a thread, while other requests'
batches are being written); the batch's transaction then only records which file it is. Requests do not each
open a transaction: ``submit`` hands the job to one batcher, which, in ONE transaction
(group commit) for everything that arrived meanwhile, checks each person's limits, answers repeats (the same
idempotency key) and repeated photos (the result cache), and writes the rest; then it publishes the batch with
concurrent confirms, marks it queued in one statement and answers every waiting request. Under load the
batches grow by themselves; a lone request is written at once.

Fairness: a person who already has ``fair_share`` photos in the broker's queue gets the next ones stored but
*held*; the relay publishes them as the earlier ones move on, so one album of ten cannot hold back everyone else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from db import blobs, chats, jobs, operations, outbox
from db.common import Outcome, now
from queue_gateway.database import Database
from queue_gateway.errors import GatewayError, TooManyInLine, Unavailable, Unstorable
from queue_gateway.public import texts
from queue_gateway.public.contract import DetectParams, ErrorCode
from queue_gateway.publisher import BrokerUnavailable, Publisher, QueueFull, clip_return

log = logging.getLogger(__name__)

MAX_BATCH = 256  # jobs per transaction; more wait for the next one
PUBLISHING = 4  # stored batches waiting for their publisher confirms while the next one is written


@dataclass(frozen=True, slots=True)
class Rates:
    """What one sender may have in line and send."""

    max_in_line: int = 3  # submissions (a photo, or an album) in line or in progress
    per_minute: int = 30  # photos received (or refused) in the last minute
    per_day: int = 0  # photos received today (UTC); 0: no daily quota
    fair_share: int = 2  # photos of one sender in the broker's queue at a time; the rest are held


@dataclass(frozen=True, slots=True)
class Limits:
    """The rates of each kind of sender, named by its ``user_ref``: a person (``telegram:42``, a chat's stand-in
    sender ``telegram:-100…``, a web visitor ``web:@…``) or an HTTP client key (``key:<fingerprint>``)."""

    person: Rates = Rates()
    key: Rates = Rates(max_in_line=500, per_minute=600, fair_share=8)

    def of(self, user_ref: str) -> Rates:
        return self.key if user_ref.startswith("key:") else self.person

    def fair_share(self, user_ref: str) -> int:
        return self.of(user_ref).fair_share


@dataclass(slots=True)
class Seen:
    """What the senders of a batch have now, by ``user_ref``: in line, received in the last minute, today."""

    in_line: dict[str, jobs.InLine]
    last_minute: dict[str, int]
    today: dict[str, int]


@dataclass(slots=True)
class Admission:
    """The batch's verdict: the requests refused (and why), and those stored but held back for fairness."""

    refused: dict[str, GatewayError]
    held: set[str]


def admit(batch: Sequence[jobs.NewJob], seen: Seen, limits: Limits, at: float) -> Admission:
    """The intake policy, with no I/O: in arrival order, each sender's photos in line (an album counts once), a
    minute, a day; and a fair share of the broker's queue, beyond which photos are stored but held.

    ``seen`` is updated as the batch's own requests count (two in one batch count as two).
    """
    refused: dict[str, GatewayError] = {}
    held: set[str] = set()
    for new in batch:
        user = new.user_ref
        if not user:
            continue
        rates = limits.of(user)
        line = seen.in_line.setdefault(user, jobs.InLine())
        joins_album = new.group_key is not None and new.group_key in line.groups
        if not joins_album and line.submissions >= rates.max_in_line:
            refused[new.id] = TooManyInLine(
                f"You already have {line.submissions} photos in line. Please wait for them first.",
                retry_after=10,
                limit=rates.max_in_line,
            )
            continue
        if seen.last_minute.get(user, 0) >= rates.per_minute:
            refused[new.id] = TooManyInLine(
                "That is a lot of photos at once. Please wait a minute.", retry_after=60, code=ErrorCode.RATE_LIMITED
            )
            continue
        if rates.per_day and seen.today.get(user, 0) >= rates.per_day:
            refused[new.id] = TooManyInLine(
                f"You have sent today's {rates.per_day} photos. Please come back tomorrow.",
                retry_after=int(86400 - at % 86400),
                code=ErrorCode.QUOTA,
                limit=rates.per_day,
            )
            continue
        if not joins_album:
            line.submissions += 1
        if new.group_key:
            line.groups.add(new.group_key)
        if line.queued >= rates.fair_share:
            held.add(new.id)
        line.queued += 1
        seen.last_minute[user] = seen.last_minute.get(user, 0) + 1
        seen.today[user] = seen.today.get(user, 0) + 1
    return Admission(refused, held)


class Refusals:
    """Uploads refused before they reached the database (not a photo, too slow to decode, …) per sender and
    minute, so that they count against the sender's per-minute limit too (fixed windows; memory stays bounded)."""

    def __init__(self) -> None:
        self._minute = 0
        self._counts: dict[str, int] = {}

    def add(self, user_ref: str, at: float) -> None:
        self._roll(at)
        self._counts[user_ref] = self._counts.get(user_ref, 0) + 1

    def count(self, user_ref: str, at: float) -> int:
        self._roll(at)
        return self._counts.get(user_ref, 0)

    def _roll(self, at: float) -> None:
        minute = int(at // 60)
        if minute != self._minute:
            self._minute, self._counts = minute, {}


@dataclass(frozen=True, slots=True)
class Accepted:
    job_id: str
    status: str
    position: int
    duplicate: bool = False
    cache_hit: bool = False
    language: str | None = None  # the language of a chat job's answers (see :func:`answer_language`)


@dataclass(slots=True)
class _Pending:
    new: jobs.NewJob
    answer: asyncio.Future[Accepted]


@dataclass(slots=True)
class _Stored:
    """What the batch's transaction decided for each request."""

    written: list[_Pending]
    answered: dict[str, Accepted]  # by job id of the request: repeats and cache hits
    refused: dict[str, GatewayError]  # by job id of the request: over a limit
    ahead: int  # jobs in line before this batch


class Intake:
    def __init__(
        self,
        database: Database,
        publisher: Publisher,
        *,
        busy_retry_after_s: int,
        result_cache: bool = True,
        limits: Limits | None = None,
        refusals: Refusals | None = None,
        on_changed: Callable[[str], None] = lambda job_id: None,
        on_unpublished: Callable[[], None] = lambda: None,
        on_held: Callable[[], None] = lambda: None,
        publishing: set[str] | None = None,
    ) -> None:
        self._db = database
        # the jobs this intake is publishing and has not marked published yet (the relay leaves them alone)
        self.publishing: set[str] = publishing if publishing is not None else set()
        self._publisher = publisher
        self._busy_retry_after_s = busy_retry_after_s
        self._result_cache = result_cache
        self.limits = limits or Limits()
        self.refusals = refusals or Refusals()
        self._on_changed = on_changed
        self._on_unpublished = on_unpublished
        self._on_held = on_held
        self._pending: list[_Pending] = []
        self._current: list[_Pending] = []
        self._wake = asyncio.Event()

    async def submit(self, new: jobs.NewJob) -> Accepted:
        """Store the job durably, then publish it; a repeated idempotency key returns the first job."""
        try:
            stored = await self._db.blobs.store(new.image)
        except OSError:
            log.exception("job %s: the photo could not be stored", new.id)
            raise Unavailable(retry_after=5) from None
        new.digest, new.seen_before = stored.digest, stored.existed
        answer: asyncio.Future[Accepted] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(new, answer))
        self._wake.set()
        return await answer

    async def run(self) -> None:
        """The batcher: one group commit at a time, for whatever has arrived since the last one.

        Publishing a stored batch (and waiting for its confirms) overlaps with storing the next one, so the
        database and the broker work at the same time; at most ``PUBLISHING`` batches wait for confirms.
        """
        publishing: set[asyncio.Task[None]] = set()
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._pending:
                    self._current, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                    stored = await self._store_batch(self._current)
                    self._current = []
                    if stored is None or not stored.written:
                        continue
                    while len(publishing) >= PUBLISHING:
                        await asyncio.wait(publishing, return_when=asyncio.FIRST_COMPLETED)
                    task = asyncio.create_task(self._publish_and_answer(stored.written, stored.ahead))
                    publishing.add(task)
                    task.add_done_callback(publishing.discard)
        finally:  # shutting down (or crashed: the supervisor starts a new batcher): nobody will write these
            for pending in self._current:
                _fail(pending, Unavailable(retry_after=2))
            self._current = []
            if publishing:  # stored already: let their confirms come in and their requests hear so
                await asyncio.gather(*publishing, return_exceptions=True)

    async def _store_batch(self, batch: list[_Pending]) -> _Stored | None:
        """Write the batch; answer at once the requests that need no publishing (refused, repeats, cache hits)."""
        try:
            stored, unstorable = await self._write(batch)
        except Exception as exc:  # the database stayed away: every request of the batch hears about it
            error = exc if isinstance(exc, GatewayError) else Unavailable(retry_after=5)
            if not isinstance(exc, GatewayError):
                log.exception("a batch of %d could not be stored", len(batch))
            for pending in batch:
                _fail(pending, error)
            return None
        if unstorable:  # their photos were stored for nothing: let them go now
            await self._db.collect({p.new.digest for p in batch if p.new.id in unstorable})
        for pending in batch:
            job_id = pending.new.id
            if job_id in unstorable:
                _fail(pending, Unstorable())
            elif job_id in stored.refused:
                _fail(pending, stored.refused[job_id])
            elif job_id in stored.answered:
                _answer(pending, stored.answered[job_id])
        return stored

    async def _write(self, batch: list[_Pending]) -> tuple[_Stored, set[str]]:
        """The batch's transaction. When the database refuses it for what a request holds (not an outage: those
        raise ``Unavailable``), the halves are written apart until the one request at fault is found; only it
        is refused. Each try is a whole transaction, so a refused one leaves nothing behind."""
        try:
            return await self._db.write(lambda session: self._store(session, batch)), set()
        except GatewayError:
            raise
        except Exception as exc:
            if len(batch) == 1:
                log.warning("job %s: the database refused its row (%s)", batch[0].new.id, type(exc).__name__)
                return _Stored([], {}, {}, 0), {batch[0].new.id}
        half = len(batch) // 2
        first, bad_first = await self._write(batch[:half])
        second, bad_second = await self._write(batch[half:])
        merged = _Stored(
            first.written + second.written,
            first.answered | second.answered,
            first.refused | second.refused,
            first.ahead if first.written or not second.written else second.ahead,
        )
        return merged, bad_first | bad_second

    async def _store(self, session: AsyncSession, batch: list[_Pending]) -> _Stored:
        """The batch's one transaction: limits, repeats, the cache, then the rows. Safe to run again."""
        at = now()
        keys = [p.new.idempotency_key for p in batch if p.new.idempotency_key]
        seen = await jobs.before_intake(session, keys, sorted({p.new.user_ref for p in batch if p.new.user_ref}), at=at)
        answered: dict[str, Accepted] = {}
        fresh: list[_Pending] = []
        for pending in batch:
            holder = seen.holders.get(pending.new.idempotency_key or "")
            if holder is not None and holder.id != pending.new.id:
                position = await jobs.queue_position(session, holder)
                answered[pending.new.id] = Accepted(holder.id, holder.status, position, True)
            else:
                fresh.append(pending)
        refused = await self._check_limits(session, fresh, seen, at)
        fresh = [p for p in fresh if p.new.id not in refused]
        await _apply_chat_settings(session, fresh)
        cached: set[str] = set()
        if self._result_cache:
            for pending, accepted in await self._from_cache(session, fresh):
                answered[pending.new.id] = accepted
                cached.add(pending.new.id)
            fresh = [p for p in fresh if p.new.id not in answered]
        written = await jobs.add_jobs(session, self._db.blobs, [p.new for p in fresh], at=at)
        # photos stored for requests that made no job (refused, repeats): collected once this commits
        blobs.release(session, {p.new.digest for p in batch if p.new.id not in written and p.new.id not in cached})
        for pending in fresh:
            if pending.new.id not in written:  # a duplicate within the batch, or a retry after a lost commit
                holder_job = (await jobs.by_idempotency_keys(session, [pending.new.idempotency_key or ""])).get(
                    pending.new.idempotency_key or ""
                )
                if holder_job is not None and holder_job.id != pending.new.id:
                    answered[pending.new.id] = Accepted(holder_job.id, holder_job.status, 0, True)
        # the jobs written here arrived at ``at``, so what waited before them is what waited before this began
        return _Stored([p for p in fresh if p.new.id not in answered], answered, refused, seen.ahead)

    async def _check_limits(
        self, session: AsyncSession, batch: Sequence[_Pending], seen: jobs.BeforeIntake, at: float
    ) -> dict[str, GatewayError]:
        """Each sender's limits, from what the database says they have in line and sent lately (plus the uploads
        refused before they were stored); the decision itself is :func:`admit`. Refused requests store nothing."""
        users = sorted({p.new.user_ref for p in batch if p.new.user_ref})
        if not users:
            return {}
        last_minute = {sender: seen.last_minute.get(sender, 0) + self.refusals.count(sender, at) for sender in users}
        daily = [sender for sender in users if self.limits.of(sender).per_day]
        today = await jobs.received_since(session, daily, at - at % 86400) if daily else {}
        admission = admit([p.new for p in batch], Seen(seen.in_line, last_minute, today), self.limits, at)
        for pending in batch:
            pending.new.held = pending.new.id in admission.held
        return admission.refused

    async def _from_cache(self, session: AsyncSession, batch: Sequence[_Pending]) -> list[tuple[_Pending, Accepted]]:
        """The same photo with the same parameters was done before: answer at once, no model run. A photo new to
        the blob store cannot have been (no read for it)."""
        batch = [p for p in batch if p.new.seen_before]
        if not batch:
            return []
        found = await jobs.cached_results(
            session,
            sorted({p.new.image_sha256 for p in batch}),
            user_refs=sorted({p.new.user_ref for p in batch if p.new.user_ref}),
            owners=sorted({p.new.owner for p in batch if p.new.user_ref is None and p.new.owner}),
        )
        hits = []
        for pending in batch:
            source = next(
                (j for j in found.get(pending.new.image_sha256, []) if j.params == pending.new.params
                 and _same_sender(j, pending.new)),
                None,
            )  # fmt: skip
            if source is not None and await jobs.add_cached_job(session, self._db.blobs, pending.new, source.id):
                log.info("job %s answered from the result of job %s", pending.new.id, source.id)
                accepted = Accepted(pending.new.id, "done", 0, cache_hit=True, language=answer_language(pending.new))
                hits.append((pending, accepted))
        return hits

    async def _publish_and_answer(self, batch: list[_Pending], ahead: int) -> None:
        try:
            await self._publish(batch, ahead)
        finally:  # stored, whatever happened here: the relay publishes it, and a resend returns the same job
            for pending in batch:
                _fail(pending, Unavailable(retry_after=2))

    async def _publish(self, batch: list[_Pending], ahead: int) -> None:
        to_publish = [p for p in batch if not p.new.held]
        if len(to_publish) < len(batch):
            self._on_held()
        in_flight = {p.new.id for p in to_publish}
        self.publishing.update(in_flight)
        try:
            await self._publish_these(batch, to_publish, ahead)
        finally:
            self.publishing.difference_update(in_flight)

    async def _publish_these(self, batch: list[_Pending], to_publish: list[_Pending], ahead: int) -> None:
        outcomes = await asyncio.gather(
            *(
                self._publisher.publish(
                    p.new.id,
                    DetectParams.model_validate(p.new.params),
                    traceparent=p.new.traceparent,
                    clip=clip_return(p.new.media, p.new.platform),
                )
                for p in to_publish
            ),
            return_exceptions=True,
        )
        confirmed = [p.new.id for p, outcome in zip(to_publish, outcomes, strict=True) if outcome is None]
        refused = [p.new.id for p, outcome in zip(to_publish, outcomes, strict=True) if isinstance(outcome, QueueFull)]
        unpublished = [p.new.id for p, o in zip(to_publish, outcomes, strict=True) if isinstance(o, BaseException)
                       and not isinstance(o, QueueFull)]  # fmt: skip
        for p, outcome in zip(to_publish, outcomes, strict=True):
            if isinstance(outcome, BaseException) and not isinstance(outcome, QueueFull | BrokerUnavailable):
                log.error("job %s: publishing failed (%r); the relay tries again", p.new.id, outcome)
            elif isinstance(outcome, BrokerUnavailable):
                log.warning("job %s kept for the relay: %s", p.new.id, outcome)
        if unpublished:
            self._on_unpublished()
        withdrawn = await self._settle(confirmed, refused)
        position = ahead
        for pending in batch:
            job_id = pending.new.id
            if job_id in withdrawn:
                log.warning("job %s refused: queue full", job_id)
                _fail(pending, Unavailable(
                    f"We're busy right now. Please try again in about {self._busy_retry_after_s} s.",
                    retry_after=self._busy_retry_after_s, code=ErrorCode.BUSY,
                ))  # fmt: skip
                continue
            position += 1
            status = "queued" if job_id in confirmed else "received"
            new = pending.new
            log.info("job %s %s (%s, %dx%d)", job_id, status, new.platform, new.width, new.height)
            _answer(pending, Accepted(job_id, status, position, language=answer_language(pending.new)))

    async def _settle(self, confirmed: list[str], refused: list[str]) -> set[str]:
        """Mark the confirmed jobs queued and withdraw the refused ones; return those withdrawn.

        If the database is away now, the answers stand all the same: every job is stored, and the relay
        publishes (again) whatever is still ``received`` later — a repeated message costs nothing but a 410.
        """
        if not confirmed and not refused:
            return set()

        async def settle(session: AsyncSession) -> set[str]:
            await outbox.mark_published(session, confirmed)
            return await outbox.withdraw(session, refused)

        try:
            return await self._db.write(settle, retry_s=2.0)
        except Exception:
            log.warning("could not mark %d published job(s) queued; the relay will", len(confirmed), exc_info=True)
            return set()

    async def requeue(self, job_id: str) -> Outcome:
        """An admin gives a dead or failed job another go: it is ``received`` again, and the relay publishes it.

        Only the relay publishes it: published here too, a relay pass in between (the job's ``received_at`` is
        long past its grace) would queue it twice, and the second copy would count as another attempt.
        """
        outcome = await self._db.write(lambda session: operations.requeue(session, job_id))
        if outcome is Outcome.APPLIED:
            log.info("job %s requeued by an admin", job_id)
            self._on_unpublished()
        return outcome


async def _apply_chat_settings(session: AsyncSession, batch: Sequence[_Pending]) -> None:
    """The chat's /settings, then the sender's own (which win), become the job's parameters (what the caller set
    itself wins over both); the person's language too, so that the worker draws the labels in it."""
    keyed = [(p, _scopes_of(p.new)) for p in batch]
    found = await chats.settings_of(session, sorted({scope for _, scopes in keyed for scope in scopes}))
    for pending, scopes in keyed:
        if not scopes:
            continue
        chosen: dict[str, Any] = {}
        for scope in scopes:  # the chat's first, then the person's own
            chosen.update(found.get(scope, {}))
        params = pending.new.params
        for name in ("conf", "classes", "output"):
            if name in chosen and params.get(name) is None:
                params[name] = chosen[name]
        origin_language = (pending.new.origin or {}).get("language")
        # stored even when it is the default: a job without one speaks its origin's (the app's) language
        params["language"] = texts.language(chosen.get("language") or params.get("language") or origin_language)


def answer_language(new: jobs.NewJob) -> str | None:
    """The language a chat job is answered in, as :func:`_apply_chat_settings` chose it (so that a bot need not
    ask for the chat's settings first); an API client's job: the one it asked for, if any."""
    chosen = new.params.get("language")
    return str(chosen) if chosen else None


def _scopes_of(new: jobs.NewJob) -> list[tuple[str, str]]:
    """The settings that apply to a chat job: its chat's, then its sender's own (``user:<id>``)."""
    if new.platform not in ("telegram", "discord"):
        return []
    origin = new.origin or {}
    chat = origin.get("chat_id") if new.platform == "telegram" else origin.get("channel_id")
    scopes = [(new.platform, str(chat))] if chat else []
    if origin.get("user_id"):
        scopes.append((new.platform, chats.person_scope(str(origin["user_id"]))))
    return scopes


def _same_sender(earlier: jobs.Cached, new: jobs.NewJob) -> bool:
    """The cache answers a sender only from their own earlier photos: a hit must never tell a stranger that
    someone else sent the same photo."""
    if new.user_ref is not None:
        return earlier.user_ref == new.user_ref
    return earlier.user_ref is None and earlier.owner == new.owner


def _answer(pending: _Pending, accepted: Accepted) -> None:
    if not pending.answer.done():
        pending.answer.set_result(accepted)


def _fail(pending: _Pending, exc: BaseException) -> None:
    if not pending.answer.done():
        pending.answer.set_exception(exc)
