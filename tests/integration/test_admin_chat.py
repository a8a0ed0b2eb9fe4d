"""Admin commands end to end, on Telegram and on Discord: /stats, /dlq and requeue, and (for everyone) /forget.

Written once against the chat driver (``tests/chat.py``); where the platforms differ by design (Telegram offers
requeue as a button and answers unknown commands, Discord has an option and hides admin commands by permission),
the scenario says so.
"""

from __future__ import annotations

import io
import time

from PIL import Image
from sqlalchemy import select

from db.models import Blob
from queue_gateway.public import texts
from tests.chat import ChatDriver, DiscordChat, StartChat
from tests.conftest import eventually
from tests.images import jpeg, poison_png
from tests.seed import Seeded, seed_jobs

ADMIN, PERSON = 1, 2  # the people's numbers: driver.person(n)


async def test_stats_for_an_admin_match_the_seeded_jobs(start_chat: StartChat) -> None:
    chat: ChatDriver = await start_chat(admins=(ADMIN,))
    now = time.time()
    async with chat.gateway.sessions.begin() as session:
        await seed_jobs(
            session,
            [
                *[Seeded("telegram", "delivered", now - 600, 1.0, 2.0, 0.5, ("person",)) for _ in range(5)],
                *[Seeded("discord", "delivered", now - 600, 1.0, 2.0, 0.5, ("cat",)) for _ in range(3)],
                *[Seeded("discord", "failed", now - 900) for _ in range(2)],
                Seeded("telegram", "failed", now - 900),
                Seeded("http", "dead", now - 1200),
            ],
        )
    answer = await chat.command(chat.person(ADMIN), "stats")
    assert answer.private
    lines = answer.text.splitlines()
    assert lines[0] == texts.text("stats_header")
    assert texts.text("stats_jobs", received=12, done=8, delivered=8, failed=3, dead=1) in lines, lines
    assert texts.text("stats_by_platform", platforms="telegram 6, discord 5, http 1") in lines, lines
    assert f"{texts.text('stage_processing')} 2.0s/2.0s" in answer.text  # every seeded job took 2.0 s
    assert texts.text("stats_dead", dead="1", hits=0) in lines, lines
    top = f"{texts.label('person')} 5, {texts.label('cat')} 3"
    assert texts.text("stats_top", top=top) in lines, lines
    assert answer.image_names == ("stats.png",)
    with Image.open(io.BytesIO(answer.images[0])) as chart:
        assert chart.format == "PNG" and chart.size == (800, 360)


async def test_admin_commands_from_anyone_else_reveal_nothing(start_chat: StartChat) -> None:
    chat: ChatDriver = await start_chat(admins=(ADMIN,))
    person = chat.person(PERSON)
    refusal = texts.text("not_allowed")
    for name in ("stats", "dlq"):
        answer = await chat.command(person, name)
        assert (answer.text, answer.private, answer.images) == (refusal, True, ())
    if chat.platform == "telegram":  # Telegram sends any command; the admin ones get what an unknown one gets
        assert (await chat.command(person, "nosuchcommand")).text == refusal
    assert chat.said(person) == [refusal] * (3 if chat.platform == "telegram" else 2)
    assert chat.images(person) == []
    assert {"stats", "dlq"}.isdisjoint(chat.advertised_commands())
    assert {"detect", "help", "settings", "forget"} <= chat.advertised_commands()
    if isinstance(chat, DiscordChat):  # hidden from members without "Manage Server"; answered at once, not deferred
        registered = {c["name"]: c for c in chat.fake.commands()}
        assert registered["stats"]["default_member_permissions"] == registered["dlq"]["default_member_permissions"]
        assert registered["stats"]["default_member_permissions"] not in (None, "0")
        assert [c.json["type"] for c in chat.fake.calls_matching("POST /interactions/*")] == [4, 4]


async def test_dlq_lists_a_poisoned_job_and_requeue_delivers_it(start_chat: StartChat) -> None:
    chat: ChatDriver = await start_chat(admins=(ADMIN,))
    admin, person = chat.person(ADMIN), chat.person(PERSON)
    crashing = await chat.start_worker("py:tests.detectors:crash_on_poison")
    poisoned = await chat.send_photo(person, poison_png(), filename="poison.png")
    told = await chat.result(poisoned, timeout=60)
    assert told == chat.results(poisoned)[0] and told.image is None
    assert told.caption == texts.text("dead", reason=texts.text("reason_crashed"))  # "…failed several times…"
    [job] = await chat.jobs()
    assert job.status == "dead"

    listing = await chat.command(admin, "dlq")
    assert listing.private
    assert listing.text.splitlines()[0] == texts.ntext("dlq_header", 1)
    assert f"• {job.id[:8]} ({chat.platform}): it stopped the worker 3 times in a row" in listing.text
    if chat.platform == "telegram":  # a requeue button per dead job (Discord: the /dlq requeue option)
        assert listing.buttons == ((texts.text("requeue_button", job=job.id[:8]), f"requeue:{job.id}"),)
    await crashing.stop()
    await chat.start_worker()  # the cause is fixed: a worker whose model copes with the photo takes over
    requeued = await chat.requeue(admin, listing)
    assert requeued.text == texts.text("requeued", job=job.id[:8])

    async def delivered() -> bool:
        return len(chat.results(poisoned)) == 2

    await eventually(delivered, timeout=60, what="the requeued photo's result")
    result = chat.results(poisoned)[1]
    assert result.caption == "1 bus, 1 person" and result.image is not None
    assert chat.said(admin).count(requeued.text) >= 1 and told.caption not in chat.said(admin)


async def test_forget_deletes_only_that_persons_photos(start_chat: StartChat) -> None:
    chat: ChatDriver = await start_chat(admins=(ADMIN,))
    admin, person = chat.person(ADMIN), chat.person(PERSON)
    await chat.start_worker()
    mine = await chat.send_photo(person, jpeg())
    theirs = await chat.send_photo(admin, jpeg())
    for photo in (mine, theirs):
        assert (await chat.result(photo)).image is not None
    jobs = {job.user_ref: job for job in await chat.jobs()}
    answer = await chat.command(person, "forget")
    assert (answer.text, answer.private) == (texts.ntext("forgot", 1), True)
    async with chat.gateway.sessions() as session:
        left = {blob.job_id for blob in (await session.execute(select(Blob))).scalars()}
    assert left == {jobs[f"{chat.platform}:{admin.user}"].id}  # the other person's job keeps its input and result
