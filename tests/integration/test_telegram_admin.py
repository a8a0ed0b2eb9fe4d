"""Telegram admin commands end to end: /stats, /dlq with requeue buttons, /forget."""

from __future__ import annotations

import io
import time

from PIL import Image
from pydantic import SecretStr
from sqlalchemy import select

from db.models import Blob
from tests.images import jpeg, poison_png
from tests.seed import Seeded, seed_jobs
from tests.services import ADMIN_KEY
from tests.telegram_stack import Stack

ADMIN = 9001
PERSON = 4242


async def admin_stack(start_telegram, **overrides) -> Stack:
    return await start_telegram(admin_ids=[ADMIN], admin_api_key=SecretStr(ADMIN_KEY), **overrides)


async def test_stats_for_an_admin_match_the_seeded_jobs(start_telegram) -> None:
    stack = await admin_stack(start_telegram, worker=False)
    now = time.time()
    async with stack.gateway.sessions.begin() as session:
        await seed_jobs(
            session,
            [
                *[Seeded("telegram", "delivered", now - 600, 1.0, 2.0, 0.5, ("person",)) for _ in range(5)],
                *[Seeded("discord", "failed", now - 900) for _ in range(2)],
                Seeded("http", "dead", now - 1200),
            ],
        )
    stack.fake.send_text_update(ADMIN, "/stats")
    chart = (await stack.delivered("sendPhoto"))[0]
    with Image.open(io.BytesIO(chart.files["photo"])) as png:
        assert png.format == "PNG" and png.size == (800, 360)
    text = (await stack.delivered("sendMessage"))[0].params["text"]
    assert "Jobs: 8 received, 5 done (5 delivered), 2 failed, 1 dead" in text
    assert "By platform: telegram 5, discord 2, http 1" in text
    assert "processing 2.0s/2.0s" in text  # every seeded job took 2.0 s on the worker
    assert "Dead, waiting in /dlq: 1; cache hits: 0" in text
    assert "Top classes: person 5" in text


async def test_stats_from_anyone_else_reveal_nothing(start_telegram) -> None:
    stack = await admin_stack(start_telegram, worker=False)
    stack.fake.send_text_update(PERSON, "/stats")
    stack.fake.send_text_update(PERSON, "/dlq")
    answers = await stack.delivered("sendMessage", count=2)
    assert [a.params["text"] for a in answers] == ["Unknown command. Send a photo, or /help."] * 2
    stack.fake.send_text_update(PERSON, "/nosuchcommand")
    answers = await stack.delivered("sendMessage", count=3)
    assert answers[2].params["text"] == answers[0].params["text"]  # exactly what any unknown command gets
    assert stack.fake.calls_of("sendPhoto") == []


async def test_dlq_lists_a_poisoned_job_and_requeue_delivers_it(start_telegram, start_worker) -> None:
    stack = await admin_stack(start_telegram, model="py:tests.detectors:crash_on_poison")
    stack.fake.send_photo_update(PERSON, data=poison_png())
    dead_notice = (await stack.delivered("sendMessage", count=2))[1]  # "queued", then the failure reply
    assert "failed several times" in dead_notice.params["text"]
    stack.fake.send_text_update(ADMIN, "/dlq")
    listing = await stack.fake.wait_for_call("sendMessage", lambda c: "dead job" in c.params["text"])
    assert "it stopped the worker 3 times in a row" in listing[0].params["text"]
    button = listing[0].params["reply_markup"]["inline_keyboard"][0][0]
    assert button["text"].startswith("Requeue ")
    # the cause is fixed: a worker whose model copes with the photo takes over
    await start_worker(stack.gateway, model="py:tests.detectors:fixed")
    stack.fake.send_callback_query(ADMIN, listing[0].result["message_id"], button["callback_data"], user_id=ADMIN)
    delivered = (await stack.delivered("sendPhoto"))[0]
    assert int(delivered.params["chat_id"]) == PERSON
    assert delivered.params["caption"] == "1 bus, 1 person"


async def test_forget_deletes_only_that_persons_photos(start_telegram) -> None:
    stack = await admin_stack(start_telegram)
    stack.fake.send_photo_update(PERSON, data=jpeg())
    stack.fake.send_photo_update(ADMIN, data=jpeg())
    await stack.delivered("sendPhoto", count=2)
    stack.fake.send_text_update(PERSON, "/forget")
    answer = await stack.fake.wait_for_call("sendMessage", lambda c: "Deleted" in c.params["text"])
    assert answer[0].params["text"] == "Deleted 1 of your photos and results."
    async with stack.gateway.sessions() as session:
        left = {blob.job_id for blob in (await session.execute(select(Blob))).scalars()}
    assert len(left) == 1  # the other person's job keeps its input and result
