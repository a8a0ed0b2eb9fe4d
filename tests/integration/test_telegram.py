"""The Telegram bot end to end: fake Telegram + real gateway + real RabbitMQ + real worker + real PTB."""

from __future__ import annotations

import asyncio
import io
import logging

import aiohttp
import pytest
from PIL import Image
from pydantic import SecretStr
from sqlalchemy import select

from db.models import Job
from queue_gateway.public import texts
from tests.conftest import eventually
from tests.fakes.telegram_api import Call
from tests.images import jpeg, png
from tests.telegram_stack import Stack

CHAT = 4242
GROUP = -100777


def decoded(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def reply_target(call: Call) -> int | None:
    parameters = call.params.get("reply_parameters")
    return int(parameters["message_id"]) if parameters else None


async def test_photo_gets_status_then_annotated_reply(start_telegram, database_url: str) -> None:
    telegram: Stack = await start_telegram(database_url=database_url)
    update = telegram.fake.send_photo_update(CHAT, data=jpeg(640, 480))
    photo_id = update["message"]["message_id"]
    status = (await telegram.delivered("sendMessage"))[0]
    # "#1 in line", or "working on it now" when a worker took it before the bot could answer
    text = status.params["text"]
    assert text.startswith("Queued — #1 in line, about ") or text == texts.text("queued_now"), text
    assert reply_target(status) == photo_id
    sent = (await telegram.delivered("sendPhoto"))[0]
    assert int(sent.params["chat_id"]) == CHAT
    assert reply_target(sent) == photo_id
    assert sent.params["caption"] == "1 bus, 1 person"
    assert decoded(sent.files["photo"]).size == (640, 480)
    # the status message is edited to say it is done (perhaps after "Working on it…")
    (edit,) = await telegram.fake.wait_for_call(
        "editMessageText", lambda c: c.params["text"].startswith("Done in "), timeout=30
    )
    assert int(edit.params["message_id"]) == status.result["message_id"]
    assert next(m["text"] for m in telegram.fake.bot_messages(CHAT) if "text" in m).startswith("Done in")


async def test_image_document_is_accepted(telegram: Stack) -> None:
    telegram.fake.send_document_update(CHAT, data=png(300, 200), file_name="scan.png", mime_type="image/png")
    sent = (await telegram.delivered("sendPhoto"))[0]
    assert decoded(sent.files["photo"]).size == (300, 200)


@pytest.mark.parametrize("kind", ["pdf", "sticker", "text"])  # a video is a clip (tests/integration/test_chat_clips.py)
async def test_other_things_get_a_hint(telegram: Stack, kind: str) -> None:
    if kind == "pdf":
        telegram.fake.send_document_update(CHAT, data=b"%PDF-1.4\n", file_name="a.pdf", mime_type="application/pdf")
    elif kind == "sticker":
        telegram.fake.send_sticker_update(CHAT)
    else:
        telegram.fake.send_text_update(CHAT, "hello there")
    hint = (await telegram.delivered("sendMessage"))[0]
    assert "Send me a photo" in hint.params["text"]
    assert await telegram.jobs() == 0


async def test_file_over_twenty_megabytes_gets_a_polite_refusal(telegram: Stack) -> None:
    telegram.fake.send_document_update(
        CHAT, data=jpeg(), file_name="huge.jpg", mime_type="image/jpeg", file_size=30 * 1024 * 1024
    )
    answer = (await telegram.delivered("sendMessage"))[0]
    assert answer.params["text"] == "That file is 30 MB; the limit is 20 MB. Please send a smaller photo."
    assert telegram.fake.calls_of("getFile") == []  # not even downloaded
    assert await telegram.jobs() == 0


async def test_album_becomes_one_media_group_reply_in_order(telegram: Stack) -> None:
    sizes = [(300, 200), (320, 240), (400, 300)]
    for size in sizes:
        telegram.fake.send_photo_update(CHAT, data=jpeg(*size), media_group_id="album-1")
    status = (await telegram.delivered("sendMessage"))[0]
    assert status.params["text"].startswith("Queued 3 photos")
    album = (await telegram.delivered("sendMediaGroup"))[0]
    media = album.params["media"]
    assert len(media) == 3
    images = [album.files[item["media"].removeprefix("attach://")] for item in media]
    assert [decoded(data).size for data in images] == sizes
    assert telegram.fake.calls_of("sendPhoto") == []
    assert await telegram.jobs() == 3
    # an album's photos carry no buttons: "Objects 1…3" go under its status message, numbered as its photos
    status_id = status.result["message_id"]
    done = await telegram.fake.wait_for_call(
        "editMessageText", lambda c: bool(c.params.get("reply_markup")) and c.params["message_id"] == status_id
    )
    buttons = [b for row in done[0].params["reply_markup"]["inline_keyboard"] for b in row]
    assert [b["text"] for b in buttons] == ["Objects 1", "Objects 2", "Objects 3"]
    telegram.fake.send_callback_query(CHAT, status_id, buttons[1]["callback_data"])
    crops = (await telegram.delivered("sendMediaGroup", count=2))[1]
    widths = [decoded(crops.files[item["media"].removeprefix("attach://")]).size[0] for item in crops.params["media"]]
    assert sorted(widths) == [112, 168]  # the second (320 px) photo's person and bus, each with its margin


async def test_group_photos_only_when_asked(telegram: Stack) -> None:
    fake = telegram.fake
    plain = fake.send_photo_update(GROUP, data=jpeg(200, 200), chat_type="supergroup")
    captioned = fake.send_photo_update(GROUP, data=jpeg(210, 210), caption="/detect", chat_type="supergroup")
    first = (await telegram.delivered("sendPhoto"))[0]
    assert reply_target(first) == captioned["message"]["message_id"]
    # /detect sent as a reply to the plain photo: that photo is processed, the answer replies to it
    fake.send_text_update(GROUP, "/detect", chat_type="supergroup", reply_to=plain)
    second = (await telegram.delivered("sendPhoto", count=2))[1]
    assert reply_target(second) == plain["message"]["message_id"]
    assert decoded(second.files["photo"]).size == (200, 200)
    assert await telegram.jobs() == 2  # the plain photo alone made no job


async def test_an_update_in_hand_is_not_confirmed_to_telegram_until_handled(telegram: Stack) -> None:
    """A bot killed mid-download gets the update again: the polls meanwhile must not confirm it."""
    fake = telegram.fake
    download = fake.hold_next("downloadFile")
    update = fake.send_photo_update(CHAT, data=jpeg())
    await asyncio.wait_for(download.arrived.wait(), 10)
    polls = len(fake.calls_of("getUpdates"))
    await fake.wait_for_call("getUpdates", count=polls + 1, timeout=15)  # the bot asked again meanwhile
    assert update["update_id"] in [u["update_id"] for u in fake.pending_updates]
    download.release()
    await telegram.delivered("sendPhoto")

    async def confirmed() -> bool:  # the fake forgets it when a getUpdates asks for a later offset
        return update["update_id"] not in [u["update_id"] for u in fake.pending_updates]

    await eventually(confirmed, timeout=10, what="the handled update to be confirmed")


async def test_same_update_twice_gives_one_job_and_one_reply(telegram: Stack) -> None:
    update = telegram.fake.send_photo_update(CHAT, data=jpeg())
    await telegram.delivered("sendPhoto")
    telegram.fake.inject_raw(update)  # Telegram delivers it again
    await telegram.fake.wait_for_call("getUpdates", lambda c: int(c.params.get("offset", 0)) > update["update_id"])
    later = telegram.fake.send_photo_update(CHAT, data=jpeg(100, 100))  # a fresh one, to know the repeat was handled
    await telegram.delivered("sendPhoto", count=2)
    assert await telegram.jobs() == 2
    assert len(telegram.fake.calls_of("sendPhoto")) == 2
    status_texts = [c.params["text"] for c in telegram.fake.calls_of("sendMessage")]
    assert len(status_texts) == 2, status_texts
    assert later["update_id"] > update["update_id"]


async def test_rate_limit_is_honoured_and_delivers_once(telegram: Stack) -> None:
    telegram.fake.fail_next("sendPhoto", 429, retry_after=2)
    telegram.fake.send_photo_update(CHAT, data=jpeg())
    calls = await telegram.fake.wait_for_call("sendPhoto", lambda c: True, count=1)
    refused = [c for c in telegram.fake.calls_of("sendPhoto") if c.status == 429]
    assert len(refused) == 1
    assert calls[0].at - refused[0].at >= 2.0
    assert len([c for c in telegram.fake.calls_of("sendPhoto") if c.ok]) == 1


async def test_bad_gateway_is_retried_and_delivers_once(telegram: Stack) -> None:
    telegram.fake.fail_next("sendPhoto", 502)
    telegram.fake.send_photo_update(CHAT, data=jpeg())
    await telegram.delivered("sendPhoto")
    assert [c.status for c in telegram.fake.calls_of("sendPhoto")] == [502, 200]
    edits = await telegram.delivered("editMessageText")
    assert len(edits) == 1


async def test_a_result_goes_to_the_supergroup_its_group_became_meanwhile(start_telegram, start_worker) -> None:
    """A group upgraded to a supergroup gets a new id, and Telegram refuses every call naming the old one (400 with
    ``migrate_to_chat_id``): the result goes to the new chat once, and nothing is retried for ever."""
    telegram: Stack = await start_telegram(worker=False)
    fake = telegram.fake
    fake.send_photo_update(GROUP, data=jpeg(200, 150), caption="/detect", chat_type="group")
    await telegram.delivered("sendMessage")  # "queued", in the group, while no worker runs
    supergroup = -1009990001
    fake.migrate(GROUP, supergroup)
    await start_worker(telegram.gateway, model="py:tests.detectors:fixed")
    [sent] = await fake.wait_for_call("sendPhoto", timeout=30)
    assert int(sent.params["chat_id"]) == supergroup and sent.params["caption"] == "1 bus, 1 person"
    assert [c.status for c in fake.calls_of("sendPhoto")] == [400, 200]  # the old group once, then the new chat

    async def delivered() -> bool:
        async with telegram.gateway.sessions() as session:
            return await session.scalar(select(Job.status).where(Job.status == "delivered")) is not None

    await eventually(delivered, what="the delivery recorded")
    assert [c.status for c in fake.calls_of("editMessageText")] == [400]  # the status message stayed behind


async def test_webhook_checks_the_secret(start_telegram, http: aiohttp.ClientSession) -> None:
    stack = await start_telegram(
        telegram_webhook_url="https://bot.example.org/tg/hook",
        telegram_webhook_secret=SecretStr("s3cret-webhook-token"),
        telegram_webhook_port=0,
    )
    assert stack.fake.webhook_url == "https://bot.example.org/tg/hook"
    assert stack.fake.webhook_secret_token == "s3cret-webhook-token"
    url = f"http://127.0.0.1:{stack.bot.webhook_port}/tg/hook"
    update = {
        "update_id": 777,
        "message": {
            "message_id": 5,
            "date": 1,
            "chat": {"id": CHAT, "type": "private"},
            "from": {"id": CHAT, "is_bot": False, "first_name": "A"},
            "text": "/help",
            "entities": [{"type": "bot_command", "offset": 0, "length": 5}],
        },
    }
    for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}):
        async with http.post(url, json=update, headers=headers) as response:
            assert response.status == 403
    assert stack.fake.calls_of("sendMessage") == []
    async with http.post(url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-webhook-token"}) as r:
        assert r.status == 200
    answer = (await stack.delivered("sendMessage"))[0]
    assert "Send me a photo" in answer.params["text"]


async def test_no_log_line_contains_the_token(start_telegram, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    stack = await start_telegram()
    stack.fake.send_photo_update(CHAT, data=jpeg())
    await stack.delivered("editMessageText")
    stack.fake.fail_next("sendMessage", 401)  # PTB's InvalidToken message would quote the token
    stack.fake.send_text_update(CHAT, "hi")
    await eventually(lambda: _async(len(stack.fake.calls_of("sendMessage")) >= 2), what="the hint attempt")
    assert any("api.telegram" in r.getMessage() or "/bot" in r.getMessage() for r in caplog.records)
    leaks = [r.getMessage() for r in caplog.records if stack.fake.token in r.getMessage()]
    assert leaks == []
    secret = stack.fake.token.split(":", 1)[1]
    assert not any(secret in (r.exc_text or "") for r in caplog.records)


async def _async(value: bool) -> bool:
    return value
