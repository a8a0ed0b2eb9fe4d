"""The delivery loop on SQLite with a notifier double: what goes to which chat, in which order, the status
message's last word, retries, giving up, albums — no broker, no platform."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import delete, event, update
from sqlalchemy.ext.asyncio import AsyncSession

from db import jobs, transitions
from db.blobstore import StoredBlob
from db.models import Blob, Job
from db.transitions import Finished, Handoff
from queue_gateway.blobs import RecentResults
from queue_gateway.database import Database
from queue_gateway.notify.base import ChatClock, Delivery, RetryLater, Sent, Undeliverable
from queue_gateway.notify.loop import DeliveryLoop, Pacer
from queue_gateway.public import texts
from queue_gateway.wakeups import Wakeups
from tests.conftest import eventually
from tests.unit.doubles import FakeNotifier, ManualClock, add_jobs, annotated, finished, new_job, sqlite_database


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    async for found in sqlite_database(tmp_path):
        yield found


def loop_for(
    database: Database, notifier: FakeNotifier, *, clock: ManualClock | None = None, recent: RecentResults | None = None
) -> DeliveryLoop:
    clock = clock or ManualClock()
    notifier.clock = ChatClock(clock)
    return DeliveryLoop(
        database, {"telegram": notifier}, Wakeups(), owner="unit", max_attempts=3,
        pacer=Pacer(1.0, clock=clock, sleep=clock.sleep), recent=recent,
    )  # fmt: skip


async def row(database: Database, job_id: str) -> Job:
    async with database.sessions() as session:
        found = await jobs.get_job(session, job_id)
    assert found is not None
    return found


async def test_a_result_goes_to_its_chat_with_its_caption_and_the_last_word(database: Database) -> None:
    notifier = FakeNotifier()
    job_id = await finished(database, new_job(chat="42", language="ru"), status_message="s1")
    assert await loop_for(database, notifier).run_once() == 1
    [delivery] = notifier.sent
    assert delivery.origin.chat_ref == "telegram:42" and delivery.language == "ru"
    assert [item.caption for item in delivery.items] == [texts.caption([{"label": "person"}], "ru")]
    [(message, text)] = notifier.edits
    done_in = re.escape(texts.text("done_in", "ru", seconds=1.5)).replace("1\\.5", r"\d+\.\d")
    assert message == "s1" and re.fullmatch(done_in, text), text
    done = await row(database, job_id)
    assert done.status == "delivered" and done.delivery_receipt == {"sent": ["m1"], "route": "chat"}
    assert await loop_for(database, notifier).run_once() == 0  # delivered once, never again


class _EditAfterSend(FakeNotifier):
    """A platform whose status edit answers only once the result has been sent: a delivery that waited for the
    edit before sending would never finish."""

    def __init__(self) -> None:
        super().__init__()
        self.result_sent = asyncio.Event()

    async def send(self, delivery: Delivery) -> Sent:
        sent = await super().send(delivery)
        self.result_sent.set()
        return sent

    async def edit_status(self, delivery: Delivery, text: str) -> bool:
        await self.result_sent.wait()
        return await super().edit_status(delivery, text)


async def test_the_result_is_sent_while_the_status_message_is_edited(database: Database) -> None:
    notifier = _EditAfterSend()
    job_id = await finished(database, new_job(chat="42"), status_message="s1")
    assert await asyncio.wait_for(loop_for(database, notifier).run_once(), 10) == 1
    assert len(notifier.sent) == 1 and [message for message, _ in notifier.edits] == ["s1"]
    done = await row(database, job_id)
    assert done.status == "delivered" and done.status_edited_id == "s1" and done.next_delivery_at is None


async def test_a_status_edit_that_fails_neither_holds_back_nor_repeats_the_result(database: Database) -> None:
    notifier = FakeNotifier(edit_failures=[RetryLater(None, "Telegram unreachable")])
    job_id = await finished(database, new_job(chat="42"), status_message="s1")
    await loop_for(database, notifier).run_once()
    sent = await row(database, job_id)
    assert len(notifier.sent) == 1 and notifier.edits == []
    assert sent.status == "delivered" and sent.delivery_receipt == {"sent": ["m1"], "route": "chat"}
    assert sent.status_edited_id is None and sent.next_delivery_at is not None  # the edit is due again
    await loop_for(database, notifier).run_once()
    edited = await row(database, job_id)
    assert len(notifier.sent) == 1 and [message for message, _ in notifier.edits] == ["s1"]  # the edit alone
    assert edited.status_edited_id == "s1" and edited.next_delivery_at is None


async def test_a_failure_is_told_in_words_not_left_silent(database: Database) -> None:
    notifier = FakeNotifier()
    await finished(database, new_job(), ok=False)
    await loop_for(database, notifier).run_once()
    [item] = notifier.sent[0].items
    assert not item.ok and item.caption == texts.text("failed", reason=texts.text("bad_image"))


async def test_one_chat_is_paced_and_served_in_order(database: Database) -> None:
    notifier, clock = FakeNotifier(), ManualClock()
    first = await finished(database, new_job(chat="42"))
    second = await finished(database, new_job(chat="42"))
    other = await finished(database, new_job(chat="43"))
    assert await loop_for(database, notifier, clock=clock).run_once() == 3
    by_chat = [(d.origin.chat_ref, d.job_ids[0]) for d in notifier.sent]
    assert [job for chat, job in by_chat if chat == "telegram:42"] == [first, second]
    assert other in [job for _, job in by_chat]
    assert clock.slept and max(clock.slept) <= 1.0  # the chat's second message waited for its second


async def test_a_rate_limit_is_retried_after_what_the_platform_said(database: Database) -> None:
    notifier = FakeNotifier(failures=[RetryLater(7.0, "Too Many Requests: retry after 7")])
    job_id = await finished(database, new_job())
    await loop_for(database, notifier).run_once()
    waiting = await row(database, job_id)
    assert waiting.status == "done" and waiting.delivery_attempts == 1 and waiting.next_delivery_at is not None
    assert waiting.next_delivery_at - (waiting.done_at or 0) >= 6.0  # not before the platform's retry_after
    assert "retry after 7" in (waiting.delivery_error or "")


async def test_a_blocked_bot_gives_up_for_good_and_keeps_the_result(database: Database) -> None:
    notifier = FakeNotifier(failures=[Undeliverable("Forbidden: bot was blocked by the user")])
    job_id = await finished(database, new_job())
    await loop_for(database, notifier).run_once()
    given_up = await row(database, job_id)
    assert given_up.status == "done" and given_up.next_delivery_at is None
    assert given_up.delivery_error == "Forbidden: bot was blocked by the user"


async def test_a_delivery_that_crashes_every_time_is_given_up_after_its_tries(database: Database) -> None:
    """An error nobody mapped (a bug, a library's exception we do not know) is retried, but not for ever."""
    notifier = FakeNotifier(failures=[RuntimeError("unexpected")] * 3)
    job_id = await finished(database, new_job())
    for tries in (1, 2, 3):
        await loop_for(database, notifier).run_once()
        found = await row(database, job_id)
        if tries < 3:
            assert found.delivery_attempts == tries and found.next_delivery_at is not None
            await database.write(lambda s: s.execute(update(Job).values(next_delivery_at=time.time())))  # due now
    assert found.status == "done" and found.next_delivery_at is None and notifier.sent == []
    assert found.delivery_error == "gave up after 3 tries: internal error"


async def test_an_album_goes_as_one_delivery_when_its_last_photo_is_done(database: Database) -> None:
    notifier = FakeNotifier()
    album = [new_job(chat="9", group_key="telegram:9:a", group_size=2, group_index=i) for i in range(2)]
    await finished(database, album[0])
    async with database.sessions.begin() as session:  # the second photo is stored but not finished yet
        await add_jobs(session, database, [album[1]])
    assert await loop_for(database, notifier).run_once() == 1
    assert notifier.sent == []  # parked until the album is complete
    result = await annotated(database)
    await database.write(lambda s: _finish(s, database, album[1].id, result))
    await loop_for(database, notifier).run_once()
    [delivery] = notifier.sent
    assert delivery.job_ids == [album[0].id, album[1].id]


async def _finish(
    session: AsyncSession, database: Database, job_id: str, result: StoredBlob, handoff: Handoff | None = None
) -> Finished | None:
    await transitions.start_attempt(session, job_id, worker="w", max_attempts=3)
    boxes = [{"class_id": 0, "label": "person", "confidence": 0.9, "box": [1.0, 2.0, 3.0, 4.0]}]
    _, done = await transitions.complete(
        session, database.blobs, job_id, detections=boxes, model="m", worker="w", inference_ms=1.0, image=result,
        handoff=handoff,
    )  # fmt: skip
    return done


async def test_a_result_hands_its_delivery_to_its_own_replica_in_the_statement_that_records_it(
    database: Database,
) -> None:
    """A chat's single photo is leased for delivery as its result is recorded: the replica that took it delivers it
    at once, once; another replica's pass does not take it. An album (the loop gathers it) and an HTTP job (no chat)
    are not leased that way."""
    notifier, elsewhere = FakeNotifier(), FakeNotifier()
    loop = loop_for(database, notifier)
    single, http = new_job(chat="42"), new_job(platform="http")
    album = [new_job(chat="9", group_key="telegram:9:a", group_size=2, group_index=i) for i in range(2)]
    async with database.sessions.begin() as session:
        await add_jobs(session, database, [single, http, *album])
    result = await annotated(database)
    done: dict[str, Finished | None] = {}
    with loop.offer() as handoff:
        assert handoff is not None and handoff.owner == "unit"
        for job in (single, http, album[0]):
            done[job.id] = await database.write(lambda s, job=job: _finish(s, database, job.id, result, handoff))
    leased = {job_id: finished.leased for job_id, finished in done.items() if finished is not None}
    assert leased[http.id] is None and leased[album[0].id] is None
    single_row = leased[single.id]
    assert single_row is not None and single_row.delivery_lease_owner == "unit" and single_row.status == "done"

    other = DeliveryLoop(database, {"telegram": elsewhere}, Wakeups(), owner="other")
    await other.run_once()  # another replica: it may look at the album (and park it), never at the single photo
    assert all(single.id not in d.job_ids for d in elsewhere.sent)
    loop.take(single_row)

    async def delivered() -> bool:
        return (await row(database, single.id)).status == "delivered"

    await eventually(delivered, timeout=10, what="the handed-off delivery")
    assert [d.job_ids for d in notifier.sent] == [[single.id]]
    assert await loop_for(database, notifier).run_once() == 0 and len(notifier.sent) == 1  # never twice


async def test_a_replica_with_its_hands_full_takes_no_hand_off(database: Database) -> None:
    loop = DeliveryLoop(database, {"telegram": FakeNotifier()}, Wakeups(), owner="unit", concurrency=1)
    with loop.offer() as a, loop.offer() as b, loop.offer() as c, loop.offer() as d, loop.offer() as full:
        assert None not in (a, b, c, d) and full is None  # four deliveries in hand per delivery slot
    with loop.offer() as again:
        assert again is not None  # offers that were not taken held their room only while they lasted


async def test_a_result_kept_in_memory_is_sent_as_the_store_has_it_and_only_once(database: Database) -> None:
    """The replica that took the result sends it without reading it again; a retry, or a replica that did not take
    it, reads the store; what was deleted (a /forget clears what is kept) is never sent from memory."""
    recent = RecentResults()
    kept_id = await finished(database, new_job(chat="42"))
    kept = StoredBlob("0" * 64, b"kept in memory", "image/jpeg")  # distinguishable from the stored file's bytes
    recent.keep(kept_id, kept)
    read_id = await finished(database, new_job(chat="43"))
    notifier = FakeNotifier()
    assert await loop_for(database, notifier, recent=recent).run_once() == 2
    images = {d.items[0].job_id: d.items[0].image for d in notifier.sent}
    assert images[kept_id] == b"kept in memory"
    assert images[read_id] is not None and images[read_id].startswith(b"\xff\xd8")  # read from the store
    assert recent.take([kept_id]) == {}  # taken: a retried delivery reads the store


def test_recent_results_stay_within_their_bytes_and_forget_everything_on_clear() -> None:
    recent = RecentResults(max_bytes=10, max_one=6)
    for name in "abc":
        recent.keep(name, StoredBlob("0" * 64, b"x" * 4, "image/jpeg"))
    recent.keep("huge", StoredBlob("0" * 64, b"x" * 7, "image/jpeg"))  # over max_one: never kept
    assert set(recent.take(["a", "b", "c", "huge"])) == {"b", "c"}  # the oldest went to stay within 10 bytes
    recent.keep("d", StoredBlob("0" * 64, b"x" * 4, "image/jpeg"))
    recent.clear()
    assert recent.take(["d"]) == {}


async def test_a_result_kept_in_memory_is_not_sent_once_its_photo_was_deleted(database: Database) -> None:
    """Another replica's /forget reaches this one only through the database: a job whose row says its photo is gone
    (leased just before the forget, as here) is sent without the image kept in memory."""
    recent = RecentResults()
    job_id = await finished(database, new_job(chat="42"))
    recent.keep(job_id, StoredBlob("0" * 64, b"kept in memory", "image/jpeg"))

    async def forgotten_after_its_lease(session: AsyncSession) -> None:  # the forget's effect, but still due
        await session.execute(delete(Blob).where(Blob.job_id == job_id))
        await session.execute(update(Job).where(Job.id == job_id).values(purged_at=time.time()))

    await database.write(forgotten_after_its_lease)
    notifier = FakeNotifier()
    assert await loop_for(database, notifier, recent=recent).run_once() == 1
    [item] = notifier.sent[0].items
    assert item.image is None and not item.ok


async def test_an_idle_loop_reads_when_the_next_delivery_falls_due_and_leases_only_then(database: Database) -> None:
    """A pass that only the clock woke asks when the next delivery is due (a read); it writes a lease only when one
    is, such as a result another replica recorded, which no wake-up here announces."""
    notifier = FakeNotifier()
    loop = DeliveryLoop(database, {"telegram": notifier}, Wakeups(), owner="unit", poll_s=0.02)
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(" ".join(statement.split()).upper())

    def count(prefix: str) -> int:
        return sum(1 for statement in statements if statement.startswith(prefix))

    lease = "UPDATE JOBS SET DELIVERY_LEASE_UNTIL=?, DELIVERY_LEASE_OWNER=? WHERE JOBS.ID IN"
    next_due = "SELECT (SELECT MIN"
    engine = database.sessions.kw["bind"].sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    running = asyncio.create_task(loop.run())
    try:
        await eventually(lambda: _true(count(next_due) >= 6), what="six idle passes")
        assert count(lease) == 1  # the first pass's, and none since
        job_id = await finished(database, new_job(chat="42"))  # as another replica records it: no wake-up here
        await eventually(lambda: _true(len(notifier.sent) == 1), what="the result delivered by a clock's pass")
        assert (await row(database, job_id)).status == "delivered"
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        event.remove(engine, "before_cursor_execute", seen)


async def _true(value: bool) -> bool:
    return value
