"""Test doubles of interfaces we own, for the fast tier: a notifier (the delivery loop's and the progress
updater's view of a chat platform), a publisher (the intake's view of the broker), a clock, and SQLite.

The fast tier runs without RabbitMQ or Postgres: SQLite is embedded (a file per test), and these doubles stand in
for the parts that would talk to a broker or a chat platform. The real ones are tested against the real broker
and the platforms' wire fakes in ``tests/integration``.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from db import jobs, transitions
from db.blobstore import FileBlobStore, StoredBlob
from db.engine import create_engine, session_factory
from db.migrate import upgrade_engine
from queue_gateway.database import Database
from queue_gateway.notify.base import ChatClock, Delivery, RetryLater, Sent, StatusUpdate, Undeliverable
from queue_gateway.public.contract import ClipReturn, DetectParams, DiscordOrigin, TelegramOrigin
from queue_gateway.publisher import BrokerUnavailable, QueueFull
from tests.images import jpeg


class ManualClock:
    """A clock a test moves by hand: ``clock()`` is now, ``advance(s)`` moves it; ``sleep`` moves it too."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@dataclass
class FakeNotifier:
    """A chat platform as the delivery loop sees it: records what it was asked, fails when told to."""

    platform: str = "telegram"
    clock: ChatClock = field(default_factory=ChatClock)
    sent: list[Delivery] = field(default_factory=list)
    edits: list[tuple[str | None, str]] = field(default_factory=list)  # (status message, text)
    updates: list[StatusUpdate] = field(default_factory=list)
    activities: list[str] = field(default_factory=list)
    told: list[tuple[str, str]] = field(default_factory=list)  # (person, text) in their private chat
    failures: list[Exception] = field(default_factory=list)  # raised by the next sends, in order
    edit_failures: list[Exception] = field(default_factory=list)  # raised by the next status edits, in order

    async def send(self, delivery: Delivery) -> Sent:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(delivery)
        return Sent([f"m{len(self.sent)}"])

    async def edit_status(self, delivery: Delivery, text: str) -> bool:
        if self.edit_failures:
            raise self.edit_failures.pop(0)
        self.edits.append((delivery.status_message_id, text))
        return True

    async def update_status(self, update: StatusUpdate) -> str | None:
        self.updates.append(update)
        return None

    async def show_activity(self, origin: TelegramOrigin | DiscordOrigin, *, media: str = "photo") -> None:
        self.activities.append(origin.chat_ref)

    async def tell(self, user_id: str, text: str) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.told.append((user_id, text))

    async def close(self) -> None:
        pass


def failing(after: float | None = None, *, gone: bool = False) -> Exception:
    return Undeliverable("bot blocked") if gone else RetryLater(after, "rate limited")


@dataclass
class FakePublisher:
    """The broker as the intake sees it: confirms every publish, or refuses as told (queue full, broker away)."""

    published: list[tuple[str, int]] = field(default_factory=list)
    refuse: type[Exception] | None = None
    clips: dict[str, ClipReturn] = field(default_factory=dict)  # how each clip job's animation is to go back

    async def publish(
        self,
        job_id: str,
        params: DetectParams,
        *,
        link_gen: int = 0,
        traceparent: str | None = None,
        clip: ClipReturn | None = None,
    ) -> None:
        if self.refuse is QueueFull:
            raise QueueFull("queue full")
        if self.refuse is BrokerUnavailable:
            raise BrokerUnavailable("not connected")
        self.published.append((job_id, link_gen))
        if clip is not None:
            self.clips[job_id] = clip


async def sqlite_database(path: Path) -> AsyncIterator[Database]:
    """A migrated SQLite database under ``path``, with its blob store beside it (no retries: a unit test wants the
    first error).

    The migrations run once per test session, into a template beside the tests' own directories (pytest gives a
    session one base directory); each test gets a copy of it, a fresh file."""
    template = path.parent / "migrated-template.sqlite3"
    if not template.exists():
        building = path.parent / f"migrated-template-{uuid.uuid4().hex}.sqlite3"
        first = create_engine(f"sqlite+aiosqlite:///{building}")
        try:
            await upgrade_engine(first)
        finally:
            await first.dispose()
        building.replace(template)
    database_file = path / "unit.sqlite3"
    shutil.copyfile(template, database_file)
    engine = create_engine(f"sqlite+aiosqlite:///{database_file}")
    blobs = FileBlobStore(path / "blobs")
    blobs.prepare()
    try:
        yield Database(session_factory(engine), blobs, retry_s=0)
    finally:
        await engine.dispose()


async def add_jobs(session: Any, database: Database, batch: list[jobs.NewJob], *, at: float | None = None) -> set[str]:
    """What intake does: put each photo in the blob store, then record the jobs in the caller's transaction."""
    for new in batch:
        new.digest = await database.blobs.put(new.image)
    return await jobs.add_jobs(session, database.blobs, batch, at=at)


async def annotated(database: Database) -> StoredBlob:
    """A worker's annotated result, in the blob store as the gateway keeps it."""
    data = jpeg(32, 24)
    return StoredBlob(await database.blobs.put(data), data, "image/jpeg")


def new_job(
    *,
    platform: str = "telegram",
    chat: str = "42",
    user: str = "42",
    group_key: str | None = None,
    group_size: int = 1,
    group_index: int = 0,
    status_message: str | None = None,
    language: str | None = None,
) -> jobs.NewJob:
    data = jpeg(32, 24)
    origin: dict[str, Any] | None
    if platform == "telegram":
        origin = {"platform": "telegram", "chat_id": chat, "user_id": user, "message_id": "7"}
    elif platform == "discord":
        origin = {"platform": "discord", "channel_id": chat, "user_id": user, "application_id": "1"}
    else:
        origin = None
    if origin is not None and status_message:
        origin["status_message_id"] = status_message
    return jobs.NewJob(
        id=uuid.uuid4().hex, platform=platform, image=data, image_sha256=uuid.uuid4().hex, image_format="JPEG",
        content_type="image/jpeg", width=32, height=24, origin=origin, user_ref=f"{platform}:{user}",
        params={"language": language} if language else {}, group_key=group_key, group_size=group_size,
        group_index=group_index,
    )  # fmt: skip


async def finished(database: Database, new: jobs.NewJob, *, ok: bool = True, status_message: str | None = None) -> str:
    """Store a job and take it through a worker to done (or failed): due for delivery to its chat."""

    result = await annotated(database)

    async def work(session: Any) -> None:
        await add_jobs(session, database, [new])
        await transitions.start_attempt(session, new.id, worker="w", max_attempts=3)
        if ok:
            boxes = [{"class_id": 0, "label": "person", "confidence": 0.9, "box": [1.0, 2.0, 3.0, 4.0]}]
            await transitions.complete(
                session, database.blobs, new.id, detections=boxes, model="m", worker="w", inference_ms=1.0,
                image=result,
            )  # fmt: skip
        else:
            await transitions.fail(session, new.id, code="bad_image", message="the image data is corrupt")
        if status_message:
            from db import deliveries

            await deliveries.set_status_message(session, new.id, status_message)

    await database.write(work)
    return new.id
