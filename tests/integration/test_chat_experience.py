"""What a person sees in the chat, end to end, on Telegram and on Discord: each scenario is written once against
the chat driver (``tests/chat.py``) and runs on both platforms, over the wire fakes, with the real
python-telegram-bot and discord.py, the real gateway, RabbitMQ and worker.
"""

from __future__ import annotations

import itertools
import re
import time

import pytest

from db.models import Job
from queue_gateway.public import texts
from tests.chat import ChatDriver, DiscordChat, StartChat, TelegramChat, english_words, matches
from tests.detectors import CROWD_PERSON_CONFIDENCES, Crowd, Gate
from tests.images import jpeg
from worker.annotate import annotate, load_image

MiB = 1024 * 1024

GATED = "py:tests.detectors:gated"
CROWD = "py:tests.detectors:crowd"
QUEUED = re.compile(r"\D*(\d+)")  # the place in line: the first number of a "queued" text


def chat_of(job: Job) -> str:
    origin = job.origin or {}
    return str(origin.get("chat_id") or origin.get("channel_id"))


def place(text: str) -> int | None:
    """The position a "queued" text shows, in any language; None for any other text."""
    if not any(matches("queued", lang)(text) for lang in ("en", "ru")):
        return None
    found = QUEUED.match(text)
    return int(found.group(1)) if found else None


@pytest.mark.slow
async def test_photos_in_line_show_their_place_move_up_and_end_done(start_chat: StartChat, gate: Gate) -> None:
    chat: ChatDriver = await start_chat(gateway={"max_inflight_per_user": 5})
    person = chat.person(1)
    sent = []
    for n in range(1, 6):  # one after another, so that each one's place is known
        photo = await chat.send_photo(person, jpeg(320, 240))
        assert matches("queued", position=n)(await chat.reply(photo)), chat.history(photo)
        sent.append(photo)

    moving = time.monotonic()
    await chat.start_worker(GATED)  # takes the first photo and holds it until the gate lets it through
    await chat.wait_status(sent[0], matches("processing"), what="that it is being processed")
    await chat.wait_status(sent[1], matches("queued", position=1), what="#1 in line")  # the line moved
    for photo in sent:
        gate.release()
        assert (await chat.result(photo)).caption == "1 bus, 1 person"
    for photo in sent:
        await chat.wait_status(photo, matches("done_in"), what="done")

    for n, photo in enumerate(sent, 1):
        shown = [s.text for s in chat.history(photo)]
        assert matches("done_in")(shown[-1]), shown
        places = [p for p in map(place, shown) if p is not None]
        assert places[0] == n and places == sorted(places, reverse=True), shown
        others = [t for t in shown[1:-1] if place(t) is None]
        assert all(matches("processing")(t) for t in others), shown
    shown_edits = [(round(e.at - moving, 2), e.text) for e in chat.edits(person) if e.at >= moving]
    edits = [e.at for e in chat.edits(person) if e.at >= moving]
    assert len(edits) >= 7, shown_edits  # two moves up (at least) and five "done"
    gaps = [later - earlier for earlier, later in itertools.pairwise(edits)]
    assert min(gaps) >= 0.9, shown_edits  # at most one edit a second in a chat (0.1 s for the requests to travel)


async def test_settings_choose_confidence_and_objects_for_that_chat_only(start_chat: StartChat) -> None:
    chat: ChatDriver = await start_chat()
    me, other = chat.person(1), chat.person(2)
    changed = await chat.settings(me, conf=0.6, classes="person")
    shown = await chat.command(me, "settings")
    for answer in (changed, shown):
        lines = answer.text.splitlines()
        assert texts.text("settings_conf", conf=0.6) in lines, lines
        assert texts.text("settings_classes", classes=texts.label("person")) in lines, lines
    lines = (await chat.command(other, "settings")).text.splitlines()
    assert texts.text("settings_conf_default") in lines, lines  # the defaults: another chat is unaffected
    assert texts.text("settings_classes", classes=texts.text("settings_all_classes")) in lines, lines

    await chat.start_worker(CROWD)
    mine = await chat.send_photo(me, jpeg(500, 300))  # 5 persons (3 of them at 0.6 or more), a car and a dog
    theirs = await chat.send_photo(other, jpeg(500, 300))
    assert (await chat.result(mine)).caption == "3 persons"
    assert (await chat.result(theirs)).caption == "5 persons, 1 car, 1 dog"
    jobs = {chat_of(job): job for job in await chat.jobs()}
    mine_job, their_job = jobs[str(me.chat)], jobs[str(other.chat)]
    found = [(d["label"], d["confidence"]) for d in mine_job.detections or []]
    assert found == [("person", c) for c in CROWD_PERSON_CONFIDENCES[:5] if c >= 0.6]
    assert (mine_job.params["conf"], mine_job.params["classes"]) == (0.6, ["person"])
    assert len(their_job.detections or []) == 7 and "conf" not in their_job.params


async def test_a_russian_speaker_reads_only_russian(start_chat: StartChat) -> None:
    chat: ChatDriver = await start_chat(admins=(1,))
    ru, en = chat.person(1, language="ru"), chat.person(2)
    assert (await chat.command(ru, "help")).text == texts.text(chat.help_key, "ru")
    huge = await chat.send_file(ru, jpeg(), filename="huge.jpg", mime_type="image/jpeg", size=30 * MiB)
    assert await chat.reply(huge) == texts.text("too_big", "ru", size_mb=30, limit_mb=20)
    fake = await chat.send_file(ru, b"no photo in here", filename="photo.jpg", mime_type="image/jpeg")
    assert await chat.reply(fake) == texts.for_error("not_an_image", "ru")

    crowd = jpeg(500, 300)
    sent = []
    for n, data in enumerate([jpeg(100, 240), jpeg(200, 240), crowd], 1):  # 1, 2 and 5 persons
        sent.append(await chat.send_photo(ru, data))
        assert matches("queued", "ru", position=n)(await chat.reply(sent[-1])), chat.history(sent[-1])
    assert [label for label, _ in chat.status_buttons(sent[0])] == [texts.text("cancel_button", "ru")]
    english = await chat.send_photo(en, crowd)  # the same photo, for someone who reads English
    assert matches("queued", position=4)(await chat.reply(english))

    await chat.start_worker(CROWD)
    captions = [(await chat.result(photo)).caption for photo in sent]
    assert captions == [
        "1 машина, 1 собака, 1 человек",
        "2 человека, 1 машина, 1 собака",
        "5 человек, 1 машина, 1 собака",
    ]
    for photo in sent:
        await chat.wait_status(photo, matches("done_in", "ru"), what="done, in Russian")
    # the labels on the image are Russian: the worker drew exactly what the annotator draws with Russian labels
    image = load_image(crowd, max_pixels=25_000_000)
    found = Crowd().predict(image)
    drawn_ru = annotate(image, found, label=lambda name: texts.label(name, "ru"))
    drawn_en = annotate(image, found)
    assert drawn_ru != drawn_en
    assert chat.results(sent[2])[0].image == drawn_ru
    assert (await chat.result(english)).image == drawn_en

    stats = await chat.command(ru, "stats")
    assert stats.text.startswith(texts.text("stats_header", "ru")) and len(stats.images) == 1
    said = chat.said(ru)
    assert len(said) >= 15, said
    assert [(text, english_words(text)) for text in said if english_words(text)] == []
    assert english_words(" ".join(chat.said(en)))  # the check finds English where there is some


async def test_the_language_chosen_in_settings_wins_over_the_apps_in_every_answer(start_chat: StartChat) -> None:
    chat: ChatDriver = await start_chat()
    chose_english, chose_russian = chat.person(1, language="ru"), chat.person(2)
    await chat.command(chose_english, "settings", language="en")  # English is the default: nothing is stored
    await chat.command(chose_russian, "settings", language="ru")
    mine = await chat.send_photo(chose_english, jpeg(320, 240))
    assert matches("queued", position=1)(await chat.reply(mine)), chat.history(mine)
    huge = await chat.send_file(chose_english, jpeg(), filename="huge.jpg", mime_type="image/jpeg", size=30 * MiB)
    assert await chat.reply(huge) == texts.text("too_big", "en", size_mb=30, limit_mb=20)
    theirs = await chat.send_photo(chose_russian, jpeg(200, 240))
    assert matches("queued", "ru", position=2)(await chat.reply(theirs)), chat.history(theirs)
    await chat.start_worker(CROWD)
    await chat.wait_status(mine, matches("done_in"), what="done, in English")
    await chat.wait_status(theirs, matches("done_in", "ru"), what="done, in Russian")


async def test_a_fourth_photo_in_line_is_refused_kindly_and_others_still_get_through(start_chat: StartChat) -> None:
    chat: ChatDriver = await start_chat()
    eager, patient = chat.person(1, language="ru"), chat.person(2)
    in_line = []
    for n in range(1, 4):
        in_line.append(await chat.send_photo(eager, jpeg()))
        assert matches("queued", "ru", position=n)(await chat.reply(in_line[-1]))
    fourth = await chat.send_photo(eager, jpeg())
    assert await chat.reply(fourth) == texts.ntext("too_many_in_line", 3, "ru")
    theirs = await chat.send_photo(patient, jpeg())
    assert matches("queued", position=4)(await chat.reply(theirs))

    await chat.start_worker()
    assert (await chat.result(theirs)).caption == "1 bus, 1 person"
    for photo in in_line:
        assert (await chat.result(photo)).caption == "1 автобус, 1 человек"
    assert chat.results(fourth) == [] and chat.history(fourth)[-1].text == texts.ntext("too_many_in_line", 3, "ru")
    assert len(await chat.jobs()) == 4


async def test_a_full_queue_says_busy_and_keeps_nothing_of_the_overflow(start_chat: StartChat) -> None:
    chat: ChatDriver = await start_chat(gateway={"max_queue_length": 5})
    people = [chat.person(n) for n in range(1, 11)]
    sent, replies = [], []
    for person in people:  # one after the other (at once, the broker lets a few more past its limit)
        sent.append(await chat.send_photo(person, jpeg()))
        replies.append(await chat.reply(sent[-1]))
    busy = texts.for_error("busy", retry_after=chat.gateway.settings.busy_retry_after_s)
    taken = next((n for n, reply in enumerate(replies) if reply == busy), None)
    assert taken in (5, 6), replies  # a quorum queue lets at most one message past its limit
    for n, reply in enumerate(replies[:taken], 1):
        assert matches("queued", position=n)(reply), reply
    assert replies[taken:] == [busy] * (10 - taken)
    jobs = await chat.jobs()
    assert sorted(chat_of(job) for job in jobs) == sorted(str(person.chat) for person in people[:taken])
    assert await chat.blobs() == taken  # those in line keep their photo; nothing stays of the others

    await chat.start_worker()
    for photo in sent[:taken]:
        assert (await chat.result(photo)).caption == "1 bus, 1 person"
    for photo in sent[taken:]:
        assert chat.results(photo) == [] and [s.text for s in chat.history(photo)][-1] == busy
        assert chat.status_buttons(photo) == []
    assert len(await chat.jobs()) == taken


async def test_cancel_takes_a_waiting_photo_back_for_good(start_chat: StartChat) -> None:
    chat: ChatDriver = await start_chat()
    person = chat.person(1)
    doomed = await chat.send_photo(person, jpeg())
    assert matches("queued", position=1)(await chat.reply(doomed))
    kept = await chat.send_photo(person, jpeg())
    assert matches("queued", position=2)(await chat.reply(kept))
    assert [label for label, _ in chat.status_buttons(doomed)] == [texts.text("cancel_button")]

    answer = await chat.press_cancel(doomed)
    assert answer.text == texts.text("cancelled") and answer.private
    await chat.wait_status(doomed, matches("cancelled"), what="that it was cancelled")
    [job] = [job for job in await chat.jobs() if job.status == "cancelled"]

    await chat.start_worker()
    assert (await chat.result(kept)).caption == "1 bus, 1 person"
    await chat.wait_status(kept, matches("done_in"), what="done")
    assert chat.results(doomed) == []  # the later photo came back; the cancelled one never will
    assert chat.status(doomed) == texts.text("cancelled") and chat.status_buttons(doomed) == []
    [again] = [j for j in await chat.jobs() if j.id == job.id]
    assert again.status == "cancelled" and again.processing_at is None
    assert "sent" not in (again.delivery_receipt or {})  # only its status message was edited


async def test_only_the_sender_can_cancel_a_photo(start_chat: StartChat) -> None:
    """In a group (Telegram) or a channel (Discord) others see the Cancel button too; it is not theirs to press."""
    chat: ChatDriver = await start_chat()
    sender, other = chat.person(1), chat.person(2)
    sent = await chat.send_photo(sender, jpeg())
    assert matches("queued", position=1)(await chat.reply(sent))
    answer = await chat.press_cancel(sent, by=other)
    [job] = await chat.jobs()
    assert job.status == "queued" and chat.status_buttons(sent) != []  # still in line, still cancellable
    assert answer.private and answer.text not in (texts.text("cancelled"), texts.text("refused_key")), answer


@pytest.mark.parametrize("start_chat", ["discord"], indirect=True)
async def test_discord_status_says_what_happened_after_the_token_expired(start_chat: StartChat, gate: Gate) -> None:
    chat = await start_chat()
    assert isinstance(chat, DiscordChat)
    person = chat.person(1)
    sent = await chat.send_photo(person, jpeg(400, 300))
    assert matches("queued", position=1)(await chat.reply(sent))
    chat.fake.expire_token(sent.ref["token"])  # the photo waits longer than the interaction's 15 minutes
    await chat.start_worker(GATED)

    mention = f"<@{person.user}> "
    moved, *_ = await chat.fake.wait_for_call(f"POST /channels/{person.chat}/messages", timeout=20)
    assert moved.json["content"] == mention + texts.text("processing") and not moved.files
    gate.release()
    result = await chat.result(sent)
    assert result.caption == "1 bus, 1 person" and result.image is not None
    [job] = await chat.jobs()
    assert (job.status_message_id or "").startswith("channel:"), job.status_message_id  # the moved message
    moved_id = (job.status_message_id or "").removeprefix("channel:")
    edited, *_ = await chat.fake.wait_for_call(f"PATCH /channels/{person.chat}/messages/{moved_id}", timeout=20)
    assert matches("done_in")(edited.json["content"].removeprefix(mention)), edited.json
    [shown] = [m for m in chat.fake.channel_messages(person.chat) if m["id"] == moved_id]
    assert shown["content"] == edited.json["content"] and shown["attachments"] == []
    [job] = await chat.jobs()
    assert job.status_edited_id == job.status_message_id and (job.delivery_receipt or {})["route"] == "channel"


@pytest.mark.parametrize("start_chat", ["telegram"], indirect=True)
async def test_telegram_shows_sending_photo_while_the_result_is_prepared(start_chat: StartChat, gate: Gate) -> None:
    chat = await start_chat()
    assert isinstance(chat, TelegramChat)
    person = chat.person(1)
    sent = await chat.send_photo(person, jpeg())
    assert matches("queued", position=1)(await chat.reply(sent))
    started = time.monotonic()  # the fake's clock: no worker before this, so nothing was being processed
    await chat.start_worker(GATED)
    await chat.wait_status(sent, matches("processing"), what="that it is being processed (after a while)")
    action = (await chat.fake.wait_for_call("sendChatAction", timeout=20))[0]
    assert (int(action.params["chat_id"]), action.params["action"]) == (person.chat, "upload_photo")
    gate.release()
    await chat.result(sent)
    [photo] = chat.fake.calls_of("sendPhoto")
    assert started <= action.at < photo.at  # shown while the photo is being processed, before it came back
