"""Strangers in the chats: what one person with no rights tries, on Telegram and on Discord, through the real bots
(python-telegram-bot, discord.py) against the platforms' wire fakes, the real gateway, RabbitMQ and a worker.

Each scenario is written once against the chat driver (``tests/chat.py``) where both platforms have the thing;
Telegram-only scenarios (stand-in senders, edited captions) reach its fake directly.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from db.models import Blob, Job
from queue_gateway.public import texts
from tests.chat import ChatDriver, StartChat, TelegramChat
from tests.conftest import eventually
from tests.hostile import scan_bomb
from tests.images import jpeg

GROUP = 7


async def test_in_a_group_only_its_admins_change_its_settings(start_chat: StartChat) -> None:
    chat: ChatDriver = await start_chat()
    admin, member = chat.member(1, GROUP, admin=True), chat.member(2, GROUP)
    refused = await chat.settings(member, conf=0.9, classes="person")
    assert refused.text.startswith(texts.text("settings_admins_only")), refused.text
    shown = (await chat.command(member, "settings")).text.splitlines()  # anyone may see them: unchanged
    assert texts.text("settings_conf_default") in shown, shown
    changed = await chat.settings(admin, conf=0.9, classes="person")
    assert texts.text("settings_classes", classes=texts.label("person")) in changed.text.splitlines(), changed.text
    shown = (await chat.command(member, "settings")).text.splitlines()
    assert texts.text("settings_conf", conf=0.9) in shown, shown


async def test_privacy_says_what_is_kept_and_for_how_long(start_chat: StartChat) -> None:
    chat: ChatDriver = await start_chat()
    person = chat.person(1, language="ru")
    answer = await chat.command(person, "privacy")
    assert answer.text == texts.ntext("privacy", 7, "ru") + " " + texts.ntext("privacy_history", 30, "ru")


async def test_scan_bombs_are_refused_at_once_and_hold_up_nobody(start_chat: StartChat) -> None:
    chat: ChatDriver = await start_chat(gateway={"max_inflight_per_user": 5})
    await chat.start_worker()
    bomb = scan_bomb(20_000)  # about 1 MB; Pillow alone would spend minutes on each
    started = time.monotonic()
    sent = [
        await chat.send_file(chat.person(n), bomb, filename=f"bomb{n}.jpg", mime_type="image/jpeg") for n in (1, 2, 3)
    ]
    for photo in sent:
        assert await chat.reply(photo, timeout=30) == texts.for_error("too_complex")
    ordinary = await chat.send_photo(chat.person(4), jpeg())
    assert (await chat.result(ordinary, timeout=30)).caption == "1 bus, 1 person"
    assert time.monotonic() - started < 60
    assert len(await chat.jobs()) == 1  # the bombs were never stored


# --- Telegram: stand-in senders and edits -------------------------------------------------------------------


@pytest.mark.parametrize("start_chat", ["telegram"], indirect=True)
async def test_an_anonymous_admins_forget_touches_nothing_in_another_group(start_chat: StartChat) -> None:
    chat = await start_chat()
    assert isinstance(chat, TelegramChat)
    fake = chat.fake
    one, other = chat.member(1, 1).chat, chat.member(1, 2).chat  # two groups, each with anonymous admins
    sent = [fake.send_as_anonymous_admin(group, data=jpeg(), text="/detect") for group in (one, other)]
    await eventually(lambda: _jobs_for(chat, 2), timeout=20, what="both anonymous photos to be queued")
    for group in (one, other):  # each "queued" reply is out before /forget: the next message in `one` answers it
        await fake.wait_for_call("sendMessage", lambda c, group=group: c.params["chat_id"] == group)
    since = time.monotonic()
    fake.send_as_anonymous_admin(one, text="/forget")
    [answer, *_] = await fake.wait_for_call("sendMessage", lambda c: c.at >= since and c.params["chat_id"] == one)
    assert answer.params["text"] == texts.ntext("forgot", 1)
    jobs = {job.origin["chat_id"] if job.origin else "forgotten": job for job in await chat.jobs()}
    assert set(jobs) == {"forgotten", str(other)}  # the other group's anonymous admin keeps their photo
    assert jobs[str(other)].user_ref == f"telegram:{other}" and len(sent) == 2
    async with chat.gateway.sessions() as session:
        assert set((await session.execute(select(Blob.job_id))).scalars()) == {jobs[str(other)].id}


@pytest.mark.parametrize("start_chat", ["telegram"], indirect=True)
async def test_stand_in_senders_have_limits_of_their_own(start_chat: StartChat) -> None:
    chat = await start_chat(gateway={"max_inflight_per_user": 2})
    assert isinstance(chat, TelegramChat)
    fake, group = chat.fake, chat.member(1, GROUP).chat
    for n in range(3):  # the group's anonymous admins: one sender, with a person's limits
        fake.send_as_anonymous_admin(group, data=jpeg(60 + n, 60), text="/detect")
    for n in range(3):  # posts sent as a channel: that channel, limited alike
        fake.send_as_channel(group, -1_009_000_000_001, data=jpeg(80 + n, 60), text="/detect")
    await eventually(lambda: _jobs_for(chat, 4), timeout=20, what="two photos of each stand-in to be queued")
    refusals = await fake.wait_for_call(
        "sendMessage", lambda c: c.params.get("text") == texts.ntext("too_many_in_line", 2), count=2, timeout=20
    )
    assert len(refusals) >= 2
    member = chat.member(2, GROUP)
    sent = await chat.send_photo(member, jpeg())  # a real member of the same group is not held up by them
    reply = await chat.reply(sent)
    assert reply != texts.ntext("too_many_in_line", 2), reply
    senders = sorted({job.user_ref for job in await chat.jobs()})
    assert senders == sorted([f"telegram:{group}", "telegram:-1009000000001", f"telegram:{member.user}"])


@pytest.mark.parametrize("start_chat", ["telegram"], indirect=True)
async def test_editing_a_caption_sends_no_second_result(start_chat: StartChat) -> None:
    chat = await start_chat()
    assert isinstance(chat, TelegramChat)
    await chat.start_worker()
    person = chat.person(1)
    sent = await chat.send_photo(person, jpeg())
    assert (await chat.result(sent)).caption == "1 bus, 1 person"
    edit = chat.fake.edit_caption_update(sent.ref, "now with a caption /detect")

    async def handled() -> bool | None:  # the bot confirms an update only once it has handled it
        return all(u["update_id"] != edit["update_id"] for u in chat.fake.pending_updates) or None

    await eventually(handled, timeout=20, what="the edit to be handled")
    assert len(await chat.jobs()) == 1 and len(chat.results(sent)) == 1


async def _jobs_for(chat: ChatDriver, count: int) -> bool | None:
    async with chat.gateway.sessions() as session:
        found = len((await session.execute(select(Job.id))).all())
    return found >= count or None
