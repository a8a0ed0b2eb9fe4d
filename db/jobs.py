"""Jobs as the gateway accepts and reads them: bulk intake (group commit), lookups, queue positions, the cache.

Each function runs inside the caller's session and transaction; the caller commits.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    BindParameter,
    Float,
    and_,
    bindparam,
    cast,
    func,
    insert,
    literal,
    literal_column,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from db import blobs, rollup, webhooks
from db.blobstore import BlobStore
from db.common import CHAT_PLATFORMS, dialect_insert, label_counts, now
from db.models import ACTIVE, BLOBS, JOBS, WAITING, Blob, Job, JobStatus


@dataclass(slots=True)
class NewJob:
    """Everything the gateway knows about a job when it accepts it."""

    id: str
    platform: str
    image: bytes
    image_sha256: str
    image_format: str
    content_type: str
    width: int
    height: int
    params: dict[str, Any] = field(default_factory=dict)
    origin: dict[str, Any] | None = None
    idempotency_key: str | None = None
    owner: str | None = None
    user_ref: str | None = None
    group_key: str | None = None
    group_size: int = 1
    group_index: int = 0
    held: bool = False  # stored, published when its sender's earlier photos have moved on (fairness)
    traceparent: str | None = None  # the trace of the request that brought it (tracing on)
    webhook: webhooks.Target | None = None  # POSTed to when the job finishes
    rerun_of: str | None = None  # the earlier job whose stored photo this runs again
    rerun_mode: str | None = None
    digest: str = ""  # the image's name in the blob store, once it is there (the gateway puts it before intake)
    # the store had these bytes already: only then can an earlier job have the same photo (a job's photo is kept as
    # long as its result), so only then is the result cache asked
    seen_before: bool = True
    media: str = "photo"  # photo | clip
    clip: dict[str, Any] | None = None  # a clip: what the probe found (length, frames, container, codec)


async def add_jobs(
    session: AsyncSession, store: BlobStore, batch: Sequence[NewJob], *, at: float | None = None
) -> set[str]:
    """Stage many jobs in the caller's transaction (group commit), each naming its image, which is in the blob store
    already (``NewJob.digest``); return the ids written.

    A job whose idempotency key is already taken (by an earlier job, or by another in this batch), or whose id is
    (an earlier try of this same transaction that did commit), is skipped, not an error: the caller answers it
    with the job that holds the key, or as written.
    """
    if not batch:
        return set()
    at = now() if at is None else at
    rows = await session.execute(_insert_jobs(session.get_bind().dialect.name), [_job_row(new, at) for new in batch])
    written = {str(job_id) for job_id in rows.scalars()}
    fresh = [new for new in batch if new.id in written]
    if not fresh:
        return written
    await blobs.hold(session, store, {_digest(n): n.image for n in fresh}, at=at)
    await session.execute(
        insert(BLOBS), [blobs.blob_row(n.id, "input", n.digest, n.content_type, len(n.image), at) for n in fresh]
    )
    await webhooks.add(session, {n.id: n.webhook for n in fresh if n.webhook is not None}, at=at)
    per_platform: dict[str, int] = {}
    for new in fresh:
        per_platform[new.platform] = per_platform.get(new.platform, 0) + 1
    for platform, count in per_platform.items():
        await rollup.count_event(session, at, platform, "received", count)
    return written


@functools.cache
def _insert_jobs(dialect: str) -> Any:
    """The INSERT of new jobs (one that is there already is skipped), built once per database dialect."""
    return dialect_insert(dialect, JOBS).on_conflict_do_nothing().returning(JOBS.c.id)


def _digest(new: NewJob) -> str:
    if not new.digest:
        raise ValueError(f"job {new.id}: its image is not in the blob store yet")
    return new.digest


def _job_row(new: NewJob, at: float) -> dict[str, Any]:
    return {
        "id": new.id,
        "status": JobStatus.RECEIVED,
        "platform": new.platform,
        "idempotency_key": new.idempotency_key,
        "owner": new.owner,
        "user_ref": new.user_ref,
        "origin": new.origin,
        "params": new.params,
        "group_key": new.group_key,
        "group_size": new.group_size,
        "group_index": new.group_index,
        "image_sha256": new.image_sha256,
        "image_format": new.image_format,
        "width": new.width,
        "height": new.height,
        "attempts": 0,
        "link_gen": 0,
        "delivery_attempts": 0,
        "cache_hit": False,
        "held": new.held,
        "traceparent": new.traceparent,
        "rerun_of": new.rerun_of,
        "rerun_mode": new.rerun_mode,
        "media": new.media,
        "clip": new.clip,
        "received_at": at,
    }


# The reads intake runs for every batch are built once, with their values as parameters (as in db.transitions)
_BY_KEYS = select(Job).where(Job.idempotency_key.in_(bindparam("p_keys", expanding=True)))
_WAITING_BEFORE = (
    select(func.count()).select_from(Job).where(Job.status.in_(WAITING), Job.received_at < bindparam("p_at"))
)
_USERS: BindParameter[str] = bindparam("p_users", expanding=True)
_RECEIVED_SINCE = (
    select(Job.user_ref, func.count())
    .where(Job.user_ref.in_(_USERS), Job.received_at >= bindparam("p_since"))
    .group_by(Job.user_ref)
)
_ROW = (JOBS.c.id, JOBS.c.idempotency_key, JOBS.c.user_ref, JOBS.c.group_key, JOBS.c.status, JOBS.c.received_at)
_BEFORE_INTAKE = union_all(  # counts ride in the received_at column
    # the jobs that hold the batch's idempotency keys (repeats are answered with them)
    select(literal_column("'key'"), *_ROW).where(JOBS.c.idempotency_key.in_(bindparam("p_keys", expanding=True))),
    # each sender's jobs in line or in progress (an album counts once: the rows, not a count)
    select(literal_column("'in line'"), *_ROW).where(JOBS.c.user_ref.in_(_USERS), JOBS.c.status.in_(ACTIVE)),
    # how many photos each sender sent in the last minute
    select(literal_column("'last minute'"), null(), null(), JOBS.c.user_ref, null(), null(), cast(func.count(), Float))
    .where(JOBS.c.user_ref.in_(_USERS), JOBS.c.received_at >= bindparam("p_since"))
    .group_by(JOBS.c.user_ref),
    # how many wait in line before the batch: its place in line
    select(literal_column("'ahead'"), null(), null(), null(), null(), null(), cast(func.count(), Float)).where(
        JOBS.c.status.in_(WAITING), JOBS.c.received_at < bindparam("p_at")
    ),
)


@dataclass(frozen=True, slots=True)
class Holder:
    """The job that holds an idempotency key: a repeated request is answered with it."""

    id: str
    status: str
    received_at: float


@dataclass(slots=True)
class BeforeIntake:
    """What intake reads before it writes a batch, as of ``at``."""

    holders: dict[str, Holder]  # by idempotency key
    in_line: dict[str, InLine]  # by sender: in line or in progress now
    last_minute: dict[str, int]  # by sender: photos received since a minute before ``at``
    ahead: int  # jobs waiting in line that arrived before ``at``


async def before_intake(
    session: AsyncSession, keys: Sequence[str], user_refs: Sequence[str], *, at: float
) -> BeforeIntake:
    """The repeats, the senders' limits and the batch's place in line, in one statement (four UNION ALL parts):
    intake runs this for every batch, and a statement's round trip costs more than its rows."""
    found = BeforeIntake({}, {user: InLine() for user in user_refs}, {}, 0)
    rows = await session.execute(
        _BEFORE_INTAKE, {"p_keys": list(keys), "p_users": list(user_refs), "p_since": at - 60, "p_at": at}
    )
    for kind, job_id, key, user, group, status, received_at in rows:
        if kind == "key":
            found.holders[str(key)] = Holder(str(job_id), str(status), float(received_at))
        elif kind == "in line":
            _count_in_line(found.in_line[str(user)], group, status)
        elif kind == "last minute":
            found.last_minute[str(user)] = int(received_at)
        else:
            found.ahead = int(received_at or 0)
    return found


@functools.lru_cache(maxsize=64)  # one per batch size
def _cached_results(hashes: int) -> Any:
    return (
        select(JOBS.c.id, JOBS.c.image_sha256, JOBS.c.params, JOBS.c.user_ref, JOBS.c.owner)
        .join(BLOBS, (BLOBS.c.job_id == JOBS.c.id) & (BLOBS.c.kind == "result"))
        .where(
            JOBS.c.image_sha256.in_(bindparam("p_hashes", expanding=True)),
            JOBS.c.status.in_([JobStatus.DONE, JobStatus.DELIVERED]),
            # only the senders' own earlier photos can answer them (the caller checks each pair)
            or_(
                JOBS.c.user_ref.in_(bindparam("p_users", expanding=True)),
                and_(JOBS.c.user_ref.is_(None), JOBS.c.owner.in_(bindparam("p_owners", expanding=True))),
            ),
        )
        .order_by(JOBS.c.done_at.desc())
        .limit(5 * hashes)
    )


async def by_idempotency_keys(session: AsyncSession, keys: Sequence[str]) -> dict[str, Job]:
    """The jobs that hold these idempotency keys, by key."""
    if not keys:
        return {}
    rows = await session.execute(_BY_KEYS, {"p_keys": list(keys)})
    return {str(job.idempotency_key): job for job in rows.scalars()}


async def get_job(session: AsyncSession, job_id: str) -> Job | None:
    return await session.get(Job, job_id)


async def get_blob(session: AsyncSession, job_id: str, kind: str) -> Blob | None:
    return await session.get(Blob, (job_id, kind))


async def waiting_before(session: AsyncSession, at: float) -> int:
    """How many jobs that arrived before ``at`` still wait in line."""
    count = await session.scalar(_WAITING_BEFORE, {"p_at": at})
    return int(count or 0)


async def queue_position(session: AsyncSession, job: Job | Holder) -> int:
    """1 + the number of jobs still waiting in line that arrived before this one; 0 once it is not waiting."""
    if job.status not in WAITING:
        return 0
    return await waiting_before(session, job.received_at) + 1


@dataclass(slots=True)
class InLine:
    """What one person has in line or in progress right now."""

    submissions: int = 0  # single photos, plus albums counted once
    groups: set[str] = field(default_factory=set)  # the albums among them
    queued: int = 0  # of their photos, how many wait in the broker's queue


def _count_in_line(entry: InLine, group: str | None, status: str) -> None:
    if group is None:
        entry.submissions += 1
    elif group not in entry.groups:
        entry.groups.add(group)
        entry.submissions += 1
    entry.queued += status == JobStatus.QUEUED


async def received_since(session: AsyncSession, user_refs: Sequence[str], since: float) -> dict[str, int]:
    """How many photos each of these people sent since ``since`` (rate limits and daily quotas)."""
    if not user_refs:
        return {}
    rows = await session.execute(_RECEIVED_SINCE, {"p_users": list(user_refs), "p_since": since})
    return {str(user): int(n) for user, n in rows}


@dataclass(frozen=True, slots=True)
class Cached:
    """A finished job with a stored result that may answer a new one: what decides whether it does."""

    id: str
    params: dict[str, Any]
    user_ref: str | None
    owner: str | None


async def cached_results(
    session: AsyncSession, hashes: Sequence[str], *, user_refs: Sequence[str], owners: Sequence[str]
) -> dict[str, list[Cached]]:
    """Finished jobs with a stored result for any of these image hashes (newest first), by hash: those sent by
    these people (``user_refs``), or by these API clients without a person (``owners``)."""
    if not hashes:
        return {}
    params = {"p_hashes": list(hashes), "p_users": list(user_refs), "p_owners": list(owners)}
    rows = await session.execute(_cached_results(len(hashes)), params)
    found: dict[str, list[Cached]] = {}
    for job_id, image_sha256, job_params, user_ref, owner in rows:
        found.setdefault(str(image_sha256), []).append(Cached(job_id, job_params or {}, user_ref, owner))
    return found


async def add_cached_job(session: AsyncSession, store: BlobStore, new: NewJob, source_id: str) -> bool:
    """Record a job answered from an earlier identical one: done at once, no queue, no model; it names the earlier
    job's result file (no copy).

    False when its idempotency key is already taken (the caller answers with the job that holds it), or when the
    earlier result is gone after all (the caller stores the job as a new one).
    """
    at = now()
    source = await session.get(Job, source_id)
    result = await session.get(Blob, (source_id, "result"))
    if source is None or result is None:
        return False
    if await blobs.hold(session, store, {_digest(new): new.image, result.digest: None}, at=at):
        return False
    row = _job_row(new, at) | {
        "status": JobStatus.DONE,
        "cache_hit": True,
        "queued_at": at,
        "processing_at": at,
        "done_at": at,
        "detections": source.detections,
        "clip": source.clip or new.clip,
        "model": source.model,
        "worker": "cache",
        "inference_ms": 0.0,
        "next_delivery_at": at if new.platform in CHAT_PLATFORMS else None,
    }
    insert_job = dialect_insert(session, Job).on_conflict_do_nothing()
    if (await session.execute(insert_job.returning(Job.id), [row])).first() is None:
        return False
    await session.execute(
        insert(Blob),
        [
            blobs.blob_row(new.id, "input", new.digest, new.content_type, len(new.image), at),
            blobs.blob_row(new.id, "result", result.digest, result.content_type, result.size, at),
        ],
    )
    if new.webhook is not None:
        await webhooks.add(session, {new.id: new.webhook}, at=at)
    for event in ("received", "done", "cache_hit"):
        await rollup.count_event(session, at, new.platform, event)
    if new.platform not in CHAT_PLATFORMS:
        await rollup.observe(session, at, "end_to_end", 0.0)
    most = (source.clip or {}).get("most")
    await rollup.count_labels(session, at, dict(most) if most else label_counts(list(source.detections or [])))
    return True


async def statuses(session: AsyncSession, job_ids: Sequence[str]) -> dict[str, str]:
    """The status of each of these jobs (one read for many long-polls)."""
    if not job_ids:
        return {}
    rows = await session.execute(select(Job.id, Job.status).where(Job.id.in_(job_ids)))
    return {str(job_id): str(status) for job_id, status in rows}


async def count_by_status(session: AsyncSession) -> dict[str, int]:
    """How many jobs are in each status (the metrics' gauges)."""
    rows = await session.execute(select(Job.status, func.count()).group_by(Job.status))
    return {str(status): int(n) for status, n in rows}


async def ping(session: AsyncSession) -> None:
    """One round trip: the database answers (readiness)."""
    await session.execute(select(literal(1)))


async def get_jobs(session: AsyncSession, job_ids: Sequence[str]) -> dict[str, Job]:
    rows = await session.execute(select(Job).where(Job.id.in_(job_ids)))
    return {job.id: job for job in rows.scalars()}


async def jobs_in_group(session: AsyncSession, group_key: str) -> list[Job]:
    rows = await session.execute(select(Job).where(Job.group_key == group_key).order_by(Job.group_index))
    return list(rows.scalars())


async def jobs_of_owner(session: AsyncSession, owner: str, *, limit: int = 50) -> list[Job]:
    """The newest jobs one API key (or one browser) submitted."""
    rows = await session.execute(select(Job).where(Job.owner == owner).order_by(Job.received_at.desc()).limit(limit))
    return list(rows.scalars())


async def history(session: AsyncSession, platform: str, user_id: str, chat_id: str, *, limit: int) -> list[Job]:
    """A person's last photos in one chat, newest first (photos past retention too, while their rows still name
    them: see ``operations.expire``)."""
    chat_field = "chat_id" if platform == "telegram" else "channel_id"
    rows = await session.execute(
        select(Job)
        .where(Job.user_ref == f"{platform}:{user_id}", Job.origin[chat_field].as_string() == chat_id)
        .order_by(Job.received_at.desc())
        .limit(limit)
    )
    return list(rows.scalars())
