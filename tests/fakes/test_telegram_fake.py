"""The Telegram fake driven by the real python-telegram-bot, over HTTP."""

from __future__ import annotations

import asyncio
import datetime as dt
import struct
import time
from collections.abc import AsyncIterator

import pytest
from telegram import (
    Bot,
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    ReplyParameters,
    Update,
)
from telegram.error import BadRequest, Conflict, EndPointNotFound, InvalidToken, NetworkError, RetryAfter
from telegram.ext import Application, ContextTypes, MessageHandler, filters

from queue_gateway.runtime import redact
from queue_gateway.runtime.telegram_http import AiohttpRequest
from tests.fakes.telegram_api import FakeTelegram

CHAT = 42
GROUP = -100_555


def jpeg(width: int, height: int, payload: bytes = b"pixels") -> bytes:
    """A header-only JPEG: enough for the fake (and Telegram) to read its dimensions."""
    start_of_frame = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + start_of_frame + payload + b"\xff\xd9"


@pytest.fixture(autouse=True, scope="module")
def _masked_tokens() -> None:
    """Mask token-shaped strings in log records (httpx logs each URL, with the token), as the bots do at start."""
    redact.install([])


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


@pytest.fixture(params=["httpx", "aiohttp"])
async def bot(fake: FakeTelegram, request: pytest.FixtureRequest) -> AsyncIterator[Bot]:
    """PTB's own default request, and ours over aiohttp (what the bot and the gateway run): both see one fake."""
    kwargs = {"request": AiohttpRequest()} if request.param == "aiohttp" else {}
    async with Bot(fake.token, base_url=fake.base_url, base_file_url=fake.base_file_url, **kwargs) as client:
        yield client


async def test_bot_sends_edits_and_deletes(fake: FakeTelegram, bot: Bot) -> None:
    assert bot.bot.username == fake.bot_username
    assert bot.bot.id == fake.bot_id
    question = fake.send_text_update(CHAT, "/detect@detectbot_test_bot look")["message"]
    assert question["entities"] == [{"type": "bot_command", "offset": 0, "length": 26}]

    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("again", callback_data="again")]])
    text = await bot.send_message(CHAT, "working on it", reply_markup=keyboard)
    assert text.message_id == question["message_id"] + 1
    assert text.from_user is not None
    assert text.from_user.id == fake.bot_id
    assert text.reply_markup == keyboard
    [send] = fake.calls_of("sendMessage")
    assert send.params["chat_id"] == CHAT
    assert send.params["reply_markup"] == {"inline_keyboard": [[{"text": "again", "callback_data": "again"}]]}

    image = jpeg(640, 480)
    photo = await bot.send_photo(
        CHAT, image, caption="2 cats", reply_parameters=ReplyParameters(question["message_id"])
    )
    assert [(size.width, size.height) for size in photo.photo] == [(90, 68), (320, 240), (640, 480)]
    assert photo.caption == "2 cats"
    assert photo.reply_to_message is not None
    assert photo.reply_to_message.text == question["text"]
    [upload] = fake.calls_of("sendPhoto")
    assert upload.files == {"photo": image}
    assert upload.file_names == {"photo": "application.octet-stream"}
    assert upload.params["reply_parameters"]["message_id"] == question["message_id"]
    assert fake.file_bytes(photo.photo[-1].file_id) == image

    edited = await bot.edit_message_text("<b>done</b>: 2 cats", CHAT, text.message_id, parse_mode="HTML")
    assert isinstance(edited, type(text))
    assert edited.text == "done: 2 cats"
    assert edited.reply_markup is None  # an edit without reply_markup drops the keyboard, like Telegram
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_text("done: 2 cats", CHAT, text.message_id)
    assert await bot.delete_message(CHAT, text.message_id)
    with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
        await bot.delete_message(CHAT, text.message_id)

    album = await bot.send_media_group(CHAT, [InputMediaPhoto(jpeg(100 * i, 100, bytes([i]))) for i in (1, 2, 3)])
    assert len({message.media_group_id for message in album}) == 1
    assert album[0].media_group_id is not None
    assert [message.photo[-1].width for message in album] == [100, 200, 300]
    [group_call] = fake.calls_of("sendMediaGroup")
    assert len(group_call.files) == 3
    assert all(item["media"].removeprefix("attach://") in group_call.files for item in group_call.params["media"])

    document = await bot.send_document(CHAT, b"%PDF-1.4 report", filename="report.pdf")
    assert document.document is not None
    assert (document.document.file_name, document.document.mime_type) == ("report.pdf", "application/pdf")
    assert fake.calls_of("sendDocument")[0].files == {"document": b"%PDF-1.4 report"}

    shown = fake.bot_messages(CHAT)
    assert [m["message_id"] for m in shown] == [
        photo.message_id,
        *(m.message_id for m in album),
        document.message_id,
    ]
    deleted = [m for m in fake.bot_messages(CHAT, include_deleted=True) if m.get("deleted")]
    assert [(m["message_id"], m["text"]) for m in deleted] == [(text.message_id, "done: 2 cats")]


@pytest.mark.parametrize(
    ("text", "parse_mode", "shown", "error"),
    [
        ("person 0.93", "MarkdownV2", None, "(?i)character '.' is reserved"),
        (r"*person* 0\.93", "MarkdownV2", "person 0.93", None),
        ("<person> 0.93", "HTML", None, '(?i)unsupported start tag "person"'),
        ("&lt;person&gt; <i>0.93</i>", "HTML", "<person> 0.93", None),
        ("*person* `0.93`", "Markdown", "person 0.93", None),
        ("x" * 4097, None, None, "(?i)message is too long"),
    ],
)
async def test_parse_mode_is_checked_like_telegram(
    fake: FakeTelegram, bot: Bot, text: str, parse_mode: str | None, shown: str | None, error: str | None
) -> None:
    if error is not None:
        with pytest.raises(BadRequest, match=error):
            await bot.send_message(CHAT, text, parse_mode=parse_mode)
        assert fake.calls_of("sendMessage")[0].status == 400
    else:
        message = await bot.send_message(CHAT, text, parse_mode=parse_mode)
        assert message.text == shown


async def test_get_file_downloads_registered_bytes(fake: FakeTelegram, bot: Bot) -> None:
    data = jpeg(1600, 1200, b"a photo")
    file_id, unique_id = fake.add_file(data)
    file = await bot.get_file(file_id)
    assert file.file_unique_id == unique_id
    assert file.file_size == len(data)
    assert file.file_path is not None
    assert file.file_path.startswith(f"{fake.base_file_url}{fake.token}/photos/")
    assert await file.download_as_bytearray() == data
    assert fake.calls_of("downloadFile")[0].status == 200

    big_id, _ = fake.add_file(b"tiny", file_size=30 * 1024 * 1024)
    with pytest.raises(BadRequest, match=r"(?i)file is too big"):
        await bot.get_file(big_id)
    with pytest.raises(BadRequest, match=r"(?i)invalid file_id"):
        await bot.get_file("no-such-file")

    sizes = fake.send_photo_update(CHAT, data=data)["message"]["photo"]
    assert [s["width"] for s in sizes] == [90, 320, 800, 1600]
    assert [s["file_size"] for s in sizes] == sorted({s["file_size"] for s in sizes})
    largest = await bot.get_file(sizes[-1]["file_id"])
    assert await largest.download_as_bytearray() == data


async def test_animations_videos_and_video_notes_as_telegram_sends_them(fake: FakeTelegram, bot: Bot) -> None:
    clip = b"\x00\x00\x00\x18ftypmp42" + b"frames"
    kinds: list[str] = []

    async def on_clip(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        assert message is not None
        if message.animation is not None:  # a GIF: an MP4 animation, with the same file as its document
            assert message.document is not None and message.document.file_id == message.animation.file_id
            assert (message.animation.duration, message.animation.width) == (dt.timedelta(seconds=3), 320)
            kinds.append("animation")
        elif message.video is not None:
            assert message.video.duration == dt.timedelta(seconds=90) and message.video.mime_type == "video/mp4"
            kinds.append("video")
        elif message.video_note is not None:
            assert message.video_note.length == 240
            kinds.append("video note")
        file = await context.bot.get_file((message.animation or message.video or message.video_note).file_id)
        assert await file.download_as_bytearray() == clip

    app = Application.builder().token(fake.token).base_url(fake.base_url).base_file_url(fake.base_file_url).build()
    app.add_handler(MessageHandler(filters.ANIMATION | filters.VIDEO | filters.VIDEO_NOTE, on_clip))
    await app.initialize()
    await app.start()
    assert app.updater is not None
    await app.updater.start_polling(poll_interval=0, timeout=1)
    try:
        fake.send_animation_update(CHAT, data=clip, duration=3, width=320, height=240)
        fake.send_video_update(CHAT, data=clip, duration=90)
        fake.send_video_note_update(CHAT, data=clip, duration=5)
        await fake.wait_for_call("downloadFile", timeout=5, count=3)
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()
    assert sorted(kinds) == ["animation", "video", "video note"]

    sent = await bot.send_animation(CHAT, clip, filename="detected.mp4", caption="up to 2 persons · 3.0 s")
    assert sent.animation is not None and sent.caption == "up to 2 persons · 3.0 s"
    [call] = fake.calls_of("sendAnimation")
    assert call.files["animation"] == clip and call.file_names["animation"] == "detected.mp4"


async def test_named_clients_and_held_answers(fake: FakeTelegram) -> None:
    """Each client's own address names it in the record; a held call takes effect but is answered on release."""
    file_id, _ = fake.add_file(jpeg(64, 48))
    async with Bot(fake.token, base_url=fake.base_url_for("gw-a"), base_file_url=fake.base_file_url_for("gw-a")) as bot:
        hold = fake.hold_next("sendMessage")
        sending = asyncio.create_task(bot.send_message(CHAT, "held"))
        await asyncio.wait_for(hold.arrived.wait(), 10)
        assert [m["text"] for m in fake.bot_messages(CHAT)] == ["held"]  # in the chat already
        assert not sending.done() and fake.calls_of("sendMessage") == []  # but not answered yet
        hold.release()
        assert (await sending).text == "held"
        download = fake.hold_next("downloadFile")
        file = await bot.get_file(file_id)
        fetching = asyncio.create_task(file.download_as_bytearray())
        await asyncio.wait_for(download.arrived.wait(), 10)
        fake.drop_hold(download)
        assert await fetching == jpeg(64, 48)
        unused = fake.hold_next("deleteMessage")
        fake.drop_hold(unused)
        await bot.send_message(CHAT, "after")
    assert {c.client for c in fake.calls} == {"gw-a"}
    assert [c.method for c in fake.calls] == ["getMe", "sendMessage", "getFile", "downloadFile", "sendMessage"]


async def test_get_updates_offsets_limit_and_long_poll(fake: FakeTelegram, bot: Bot) -> None:
    first, second, third = (fake.send_text_update(CHAT, f"hi {n}")["update_id"] for n in range(3))
    assert [u.update_id for u in await bot.get_updates(limit=2)] == [first, second]
    assert [u.update_id for u in await bot.get_updates(offset=second + 1)] == [third]  # confirms 1 and 2
    assert [u["update_id"] for u in fake.pending_updates] == [third]
    assert await bot.get_updates(offset=third + 1) == ()

    started = time.monotonic()
    poll = asyncio.create_task(bot.get_updates(offset=third + 1, timeout=5))
    await fake.wait_until_polling()
    group_photo = fake.send_photo_update(GROUP, data=jpeg(64, 64), caption="@detectbot_test_bot what?")
    [update] = await poll
    assert time.monotonic() - started < 2  # woken by the injection, not by the 5 s timeout
    assert update.update_id == group_photo["update_id"]
    assert update.effective_chat is not None
    assert update.effective_chat.type == "supergroup"
    assert update.message is not None
    assert update.message.caption_entities[0].type == "mention"
    assert len(update.message.photo) == 2  # a tiny photo still gets a thumbnail


async def test_newer_get_updates_terminates_older_one(fake: FakeTelegram, bot: Bot) -> None:
    # PTB gives getUpdates a one-connection pool, so the rival poller is a second Bot: a second instance.
    older = asyncio.create_task(bot.get_updates(timeout=5))
    await fake.wait_until_polling()
    async with Bot(fake.token, base_url=fake.base_url) as rival:
        assert await rival.get_updates(timeout=0) == ()
    with pytest.raises(Conflict, match="terminated by other getUpdates request"):
        await older


async def test_webhook_blocks_polling(fake: FakeTelegram, bot: Bot) -> None:
    assert await bot.set_webhook("https://example.invalid/hook", secret_token="s3cret")
    assert (await bot.get_webhook_info()).url == "https://example.invalid/hook"
    assert fake.webhook_secret_token == "s3cret"
    with pytest.raises(Conflict, match="webhook is active"):
        await bot.get_updates()
    fake.send_text_update(CHAT, "queued")
    assert await bot.delete_webhook(drop_pending_updates=True)
    assert await bot.get_updates() == ()


async def test_commands_actions_and_callback_queries(fake: FakeTelegram, bot: Bot) -> None:
    commands = [BotCommand("detect", "Detect objects"), BotCommand("help", "Show help")]
    assert await bot.set_my_commands(commands)
    assert tuple(await bot.get_my_commands()) == tuple(commands)
    with pytest.raises(BadRequest, match=r"(?i)BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand("Detect", "capitalised")])
    assert await bot.send_chat_action(CHAT, "upload_photo")
    with pytest.raises(BadRequest, match=r"(?i)wrong parameter action"):
        await bot.send_chat_action(CHAT, "dancing")

    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("more", callback_data="more")]])
    sent = await bot.send_message(CHAT, "3 objects", reply_markup=keyboard)
    query = fake.send_callback_query(CHAT, sent.message_id, "more")["callback_query"]
    assert query["message"]["reply_markup"] == keyboard.to_dict()
    assert query["from"]["language_code"] == "en"  # what the fake's users speak unless told otherwise
    fake.set_language(CHAT, "ru")
    again = fake.send_callback_query(CHAT, sent.message_id, "more")["callback_query"]
    assert again["from"]["language_code"] == "ru"
    assert fake.send_text_update(CHAT, "/help")["message"]["from"]["language_code"] == "ru"
    assert await bot.answer_callback_query(query["id"], text="ok")
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await bot.answer_callback_query(query["id"])
    edited = await bot.edit_message_reply_markup(CHAT, sent.message_id, reply_markup=None)
    assert isinstance(edited, type(sent))
    assert edited.reply_markup is None
    assert "reply_markup" not in fake.bot_messages(CHAT)[0]


async def test_application_long_polling_replies_and_confirms(fake: FakeTelegram) -> None:
    seen: list[int] = []

    async def on_photo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        seen.append(update.update_id)
        data = await (await update.message.photo[-1].get_file()).download_as_bytearray()
        await update.message.reply_text(f"got {len(data)} bytes")

    app = Application.builder().token(fake.token).base_url(fake.base_url).base_file_url(fake.base_file_url).build()
    app.add_handler(MessageHandler(filters.PHOTO, on_photo))
    image = jpeg(1280, 720, b"x" * 1000)
    await app.initialize()
    await app.start()
    assert app.updater is not None
    await app.updater.start_polling(poll_interval=0, timeout=1)
    try:
        update = fake.send_photo_update(CHAT, data=image, caption="what is this?")
        [reply] = await fake.wait_for_call("sendMessage", timeout=5)
        assert reply.params["text"] == f"got {len(image)} bytes"
        downloads = fake.calls_of("downloadFile")
        assert [d.result for d in downloads] == [update["message"]["photo"][-1]["file_id"]]

        # PTB does not deduplicate: a re-injected (already confirmed) update reaches the handler again.
        fake.inject_raw(update)
        await fake.wait_for_call("sendMessage", timeout=5, count=2)
        assert seen == [update["update_id"], update["update_id"]]
    finally:
        await app.updater.stop()  # its final getUpdates confirms everything fetched
        await app.stop()
        await app.shutdown()

    answered = [c.method for c in fake.calls if c.ok]
    assert answered[:3] == ["getMe", "deleteWebhook", "getUpdates"]
    polls = [c for c in fake.calls_of("getUpdates") if c.ok]
    assert polls[0].params["offset"] == 0
    assert polls[-1].params["offset"] == update["update_id"] + 1
    assert fake.pending_updates == []


# RetryAfter.__init__ reads its own deprecated int-valued ``retry_after`` property, so without
# PTB_TIMEDELTA a 429 surfaces as PTBDeprecationWarning under ``filterwarnings = error``. Opting in to
# the timedelta behaviour (the future default) is the forward-compatible fix, not silencing the warning.
async def test_flood_control_and_server_errors(fake: FakeTelegram, bot: Bot, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "1")
    fake.fail_next("sendMessage", 429, retry_after=1)
    with pytest.raises(RetryAfter) as flood:
        await bot.send_message(CHAT, "hi")
    assert flood.value.retry_after == dt.timedelta(seconds=1)

    fake.fail_next("sendMessage", 502, times=2)
    for _ in range(2):
        with pytest.raises(NetworkError) as bad_gateway:
            await bot.send_message(CHAT, "hi")
        assert type(bad_gateway.value) is NetworkError
    await bot.send_message(CHAT, "hi")
    assert [c.status for c in fake.calls_of("sendMessage")] == [429, 502, 502, 200]
    assert [m["text"] for m in fake.bot_messages(CHAT)] == ["hi"]


async def test_wrong_token_and_unknown_method(fake: FakeTelegram, bot: Bot) -> None:
    with pytest.raises(InvalidToken, match="was rejected by the server"):
        async with Bot("999:wrong", base_url=fake.base_url, base_file_url=fake.base_file_url):
            pass
    assert fake.calls[-1].status == 401
    with pytest.raises(EndPointNotFound):
        await bot.do_api_request("noSuchMethod")
    assert fake.calls[-1].status == 404


async def test_wait_for_call_times_out_with_the_calls_seen(fake: FakeTelegram, bot: Bot) -> None:
    await bot.send_message(CHAT, "not what the test expects")
    with pytest.raises(TimeoutError, match=r"sendPhoto[\s\S]*sendMessage -> 200"):
        await fake.wait_for_call("sendPhoto", timeout=0.05)
