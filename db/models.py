"""SQLAlchemy models: jobs, the files of their images (the bytes live in the blob store), per-chat settings, and the
stats rollups.

A job in ``received`` is the outbox: stored but not yet confirmed by the broker; the gateway's relay publishes
whatever a crash or an outage left there.

Timestamps are UNIX epoch seconds (float): the same arithmetic works in SQLite and Postgres, which keeps the
stats queries portable and index-friendly.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import JSON, Enum, Float, ForeignKey, Index, Integer, String, Table, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class JobStatus(StrEnum):
    RECEIVED = "received"
    QUEUED = "queued"
    PROCESSING = "processing"
    DONE = "done"
    DELIVERED = "delivered"
    FAILED = "failed"
    DEAD = "dead"
    CANCELLED = "cancelled"


def _values(kind: type[StrEnum]) -> list[str]:
    return [member.value for member in kind]


WAITING = (JobStatus.RECEIVED, JobStatus.QUEUED)
"""A job in one of these states waits in line (``received``: stored, not yet confirmed by the broker)."""
ACTIVE = (*WAITING, JobStatus.PROCESSING)
"""A job in one of these states still waits for a worker."""
FINISHED = (JobStatus.DONE, JobStatus.DELIVERED, JobStatus.FAILED, JobStatus.DEAD, JobStatus.CANCELLED)
"""A job in one of these states has its final result (or error)."""


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[JobStatus] = mapped_column(
        Enum(JobStatus, native_enum=False, length=16, values_callable=_values, create_constraint=False)
    )  # a VARCHAR(16) as before: the values are the enum's
    platform: Mapped[str] = mapped_column(String(16))
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    owner: Mapped[str | None] = mapped_column(String(40))  # the fingerprint of the API key that submitted it
    user_ref: Mapped[str | None] = mapped_column(String(100), index=True)
    origin: Mapped[dict[str, Any] | None]
    params: Mapped[dict[str, Any]]
    group_key: Mapped[str | None] = mapped_column(String(120), index=True)
    group_size: Mapped[int] = mapped_column(Integer, default=1)
    group_index: Mapped[int] = mapped_column(Integer, default=0)

    image_sha256: Mapped[str] = mapped_column(String(64))
    image_format: Mapped[str] = mapped_column(String(8))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)

    attempts: Mapped[int] = mapped_column(Integer, default=0)
    link_gen: Mapped[int] = mapped_column(Integer, default=0)  # the worker links' generation: a requeue makes new ones
    error_code: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    detections: Mapped[list[Any] | None]
    model: Mapped[str | None] = mapped_column(String(120))
    worker: Mapped[str | None] = mapped_column(String(120))
    inference_ms: Mapped[float | None] = mapped_column(Float)
    cache_hit: Mapped[bool] = mapped_column(default=False)
    held: Mapped[bool] = mapped_column(default=False)  # stored, waiting for its sender's earlier photos (fairness)
    traceparent: Mapped[str | None] = mapped_column(String(64))  # the trace of the request that brought it
    rerun_of: Mapped[str | None] = mapped_column(String(32))  # the job whose stored photo this one runs again
    rerun_mode: Mapped[str | None] = mapped_column(String(16))  # lower | higher | found | settings
    conf_used: Mapped[float | None] = mapped_column(Float)  # the confidence threshold the worker applied
    media: Mapped[str] = mapped_column(String(8), server_default="photo")  # photo | clip (the database fills it in)
    clip: Mapped[dict[str, Any] | None]  # a clip: what it is (probed at intake), then its animation and summary
    progress_done: Mapped[int | None] = mapped_column(Integer)  # a clip in a worker's hands: frame done …
    progress_total: Mapped[int | None] = mapped_column(Integer)  # … of total

    received_at: Mapped[float] = mapped_column(Float)
    queued_at: Mapped[float | None] = mapped_column(Float)
    processing_at: Mapped[float | None] = mapped_column(Float)
    done_at: Mapped[float | None] = mapped_column(Float)
    failed_at: Mapped[float | None] = mapped_column(Float)
    dead_at: Mapped[float | None] = mapped_column(Float)
    delivered_at: Mapped[float | None] = mapped_column(Float)
    cancelled_at: Mapped[float | None] = mapped_column(Float)
    purged_at: Mapped[float | None] = mapped_column(Float)

    status_message_id: Mapped[str | None] = mapped_column(String(100))  # the bot's "queued" message
    status_edited_id: Mapped[str | None] = mapped_column(String(100))  # the status message delivery last edited
    delivery_attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_delivery_at: Mapped[float | None] = mapped_column(Float)
    delivery_lease_until: Mapped[float | None] = mapped_column(Float)
    delivery_lease_owner: Mapped[str | None] = mapped_column(String(160))
    delivery_receipt: Mapped[dict[str, Any] | None]
    delivery_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_jobs_received_at", "received_at"),
        Index("ix_jobs_status_received_at", "status", "received_at"),
        Index("ix_jobs_pending_delivery", "next_delivery_at", "status"),
        Index("ix_jobs_image_sha256", "image_sha256"),
        Index("ix_jobs_status_dead_at", "status", "dead_at"),
        Index("ix_jobs_owner_received_at", "owner", "received_at"),
        Index("ix_jobs_lease_owner", "delivery_lease_owner"),
        Index("ix_jobs_purged_received", "purged_at", "received_at"),
    )


class Blob(Base):
    """A job's input image or annotated result: which file of the blob store holds it (its bytes are not here).

    A row exists only while its file does: the file is written (and synced) before the row commits, and the row is
    deleted before the file (:mod:`db.blobs`). Jobs with the same photo name the same file.
    """

    __tablename__ = "blobs"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)  # "input" | "result"
    digest: Mapped[str] = mapped_column(ForeignKey("blob_files.digest"), index=True)  # sha256 of the bytes
    content_type: Mapped[str] = mapped_column(String(40))
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[float] = mapped_column(Float, index=True)


class BlobFile(Base):
    """One file of the blob store that rows may name. Whoever adds a name locks this row first, and so does the
    collector before it deletes an unnamed file: the database orders the two (:mod:`db.blobs`)."""

    __tablename__ = "blob_files"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    touched_at: Mapped[float] = mapped_column(Float, index=True)  # when a row last began to name it


class StatsEvent(Base):
    """Hourly counters of job events ("received", "done", "failed", "dead", "delivered", "cache_hit").

    Bumped in the same transaction as the transition they count, so /stats reads at most 24 x platforms x
    events rows however many jobs the table holds.
    """

    __tablename__ = "stats_events"

    hour: Mapped[int] = mapped_column(Integer, primary_key=True)  # epoch seconds // 3600
    platform: Mapped[str] = mapped_column(String(16), primary_key=True)
    event: Mapped[str] = mapped_column(String(16), primary_key=True)
    n: Mapped[int] = mapped_column(Integer)


class StatsLatency(Base):
    """Hourly latency histograms per stage, in ~2 % wide log buckets (percentiles within about 1 %)."""

    __tablename__ = "stats_latency"

    hour: Mapped[int] = mapped_column(Integer, primary_key=True)
    metric: Mapped[str] = mapped_column(String(16), primary_key=True)  # queue_wait | processing | end_to_end
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(Integer)


class StatsLabel(Base):
    """Hourly counts of detected labels, for "top detected classes"."""

    __tablename__ = "stats_labels"

    hour: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column(String(100), primary_key=True)
    n: Mapped[int] = mapped_column(Integer)


class WorkerSeen(Base):
    """The last time each worker fetched or finished a job."""

    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(String(120), primary_key=True)
    last_seen_at: Mapped[float] = mapped_column(Float, index=True)
    model: Mapped[str | None] = mapped_column(String(120))


class ChatSettings(Base):
    """What a chat chose with /settings; ``None`` means the default."""

    __tablename__ = "chat_settings"

    platform: Mapped[str] = mapped_column(String(16), primary_key=True)
    chat_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    conf: Mapped[float | None] = mapped_column(Float)
    classes: Mapped[list[Any] | None]
    output: Mapped[str | None] = mapped_column(String(16))  # photo | photo+json | document
    language: Mapped[str | None] = mapped_column(String(16))
    updated_at: Mapped[float] = mapped_column(Float)


class Webhook(Base):
    """A job's completion webhook: one durable delivery (like a chat delivery), leased while it is being sent and
    retried with backoff for a while after its first try; ``event_id`` is the ``webhook-id`` every try carries."""

    __tablename__ = "webhooks"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    host: Mapped[str] = mapped_column(String(255))  # the receiver's host: tries are paced per host
    base_url: Mapped[str] = mapped_column(String(300))  # the gateway's address the job was submitted to (its links)
    event_id: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))  # waiting | pending | delivered | failed | gone
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float | None] = mapped_column(Float)
    first_attempt_at: Mapped[float | None] = mapped_column(Float)
    lease_until: Mapped[float | None] = mapped_column(Float)
    lease_owner: Mapped[str | None] = mapped_column(String(160))
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)
    delivered_at: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (Index("ix_webhooks_due", "state", "next_attempt_at"),)


class Notice(Base):
    """Something the system tells its admins once (workers gone, workers back): ``since`` when it began,
    ``told_at`` when an admin was told; a guarded UPDATE lets only one gateway replica tell."""

    __tablename__ = "notices"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    since: Mapped[float | None] = mapped_column(Float)
    told_at: Mapped[float | None] = mapped_column(Float)
    waiting: Mapped[int] = mapped_column(Integer, default=0)


# The tables themselves, for the statements every photo runs that need no ORM object back (the worker's start, the
# publish confirm, the status message, the receipt, intake's INSERTs and the blob rows): an UPDATE or INSERT of
# ``Job`` goes through the ORM's bulk machinery, one of ``JOBS`` does not (an UPDATE's transaction on SQLite: 0.51
# against 0.69 ms of CPU). ``Job``'s attributes bring the ORM back into a statement: use ``JOBS.c`` in those.
JOBS: Table = Job.__table__  # type: ignore[assignment]
BLOBS: Table = Blob.__table__  # type: ignore[assignment]
BLOB_FILES: Table = BlobFile.__table__  # type: ignore[assignment]
