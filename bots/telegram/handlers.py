"""Telegram handlers: translate updates to the shared services' calls and their answers back. No logic of their own."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
from collections.abc import Callable

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputMediaPhoto, Message, MessageEntity, Update
from telegram.constants import ChatMemberStatus, ChatType
from telegram.error import BadRequest, TelegramError
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes, MessageHandler, filters

from bots.shared import chat_settings
from bots.shared.detect import DetectService, Photo, Reply
from bots.shared.services import BotServices
from bots.telegram.albums import AlbumCollector
from bots.telegram.poller import Ledger
from bots.telegram.settings import TelegramSettings
from queue_gateway.public import texts
from queue_gateway.public.client import GatewayClientError, GatewayDown, GatewayRefused
from queue_gateway.public.contract import (
    CANCEL_ACTION,
    OBJECTS_ACTION,
    RERUN_ACTION,
    TelegramOrigin,
    cancel_action,
    parse_rerun_action,
    rerun_action,
)

log = logging.getLogger(__name__)

Context = ContextTypes.DEFAULT_TYPE
Refusal = Callable[[str | None], str]  # why a photo is not taken, in a language


class Handlers:
    def __init__(self, settings: TelegramSettings, services: BotServices, ledger: Ledger) -> None:
        self.settings = settings
        self.detect_service = services.detect
        self.admin = services.admin
        self.chats = services.chats
        self.metrics = services.metrics
        self.username = ""  # the bot's @name, known once it has logged in
        self.albums = AlbumCollector(self._album, ledger, settings.album_quiet_s)
        self._addressed_albums: set[str] = set()

    def register(self, app: Application) -> None:  # type: ignore[type-arg]
        """Every handler takes new messages only: an edited caption or text never submits (or answers) again."""
        new = filters.UpdateType.MESSAGE
        for names, callback in (
            (["start", "help"], self.help),
            (["detect"], self.detect),
            (["settings"], self.settings_command),
            (["forget"], self.forget),
            (["privacy"], self.privacy),
            (["history"], self.history),
            (["stats"], self.stats),
            (["dlq"], self.dlq),
        ):
            app.add_handler(CommandHandler(names, callback, filters=new))
        app.add_handler(CallbackQueryHandler(self.requeue, pattern=r"^requeue:"))
        app.add_handler(CallbackQueryHandler(self.cancel, pattern=f"^{CANCEL_ACTION}"))
        app.add_handler(CallbackQueryHandler(self.objects, pattern=f"^{OBJECTS_ACTION}"))
        app.add_handler(CallbackQueryHandler(self.rerun, pattern=f"^{RERUN_ACTION}"))
        app.add_handler(CallbackQueryHandler(self.settings_button, pattern=r"^set:"))
        clips = filters.ANIMATION | filters.VIDEO | filters.VIDEO_NOTE | filters.Document.VIDEO
        photos = (filters.PHOTO | filters.Document.IMAGE | clips) & (new | filters.UpdateType.CHANNEL_POST)
        app.add_handler(MessageHandler(photos, self.photo))
        app.add_handler(MessageHandler(new & filters.ChatType.PRIVATE & filters.COMMAND, self.unknown))
        app.add_handler(MessageHandler(new & filters.ChatType.PRIVATE & ~filters.COMMAND, self.hint))
        app.add_error_handler(self.error)

    async def help(self, update: Update, _context: Context) -> None:
        """/start and /help: what the bot does, in three lines."""
        if update.effective_message:
            await update.effective_message.reply_text(texts.text("help", await self._lang(update)))

    async def hint(self, update: Update, _context: Context) -> None:
        """Anything but a photo in a private chat: say what the bot accepts."""
        if update.effective_message:
            await update.effective_message.reply_text(texts.text("accepted_hint", await self._lang(update)))

    async def unknown(self, update: Update, _context: Context) -> None:
        """A command the bot does not have (or one this person may not use)."""
        if update.effective_message:
            await update.effective_message.reply_text(texts.text("not_allowed", await self._lang(update)))

    async def forget(self, update: Update, _context: Context) -> None:
        """/forget: delete this person's photos, results and own settings now (a stand-in sender: that chat's)."""
        message = update.effective_message
        if message is None:
            return
        scope = _scope(message)
        if scope.user_id is not None:
            text = await self.admin.forget("telegram", scope.user_id, await self._lang(update))
            self.chats.forget_cached(scope)
            await message.reply_text(text)

    async def privacy(self, update: Update, _context: Context) -> None:
        """/privacy: what is kept about a person, and for how long."""
        if update.effective_message:
            await update.effective_message.reply_text(await self.admin.privacy(await self._lang(update)))

    async def settings_command(self, update: Update, context: Context) -> None:
        """/settings: show the settings that apply here, with buttons; ``/settings conf 60`` and friends change
        them (in a group, only its admins may)."""
        message = update.effective_message
        if message is None:
            return
        scope = _scope(message)
        lang = await self._lang(update)
        try:
            changes = chat_settings.parse_words(list(context.args or []), lang)
        except chat_settings.SettingsError as exc:
            await message.reply_text(exc.text(lang))
            return
        if changes and not await self._may_change(scope, message.get_bot(), message=message):
            found = await self.chats.get(scope)
            await message.reply_text(
                "\n".join([texts.text("settings_admins_only", lang), chat_settings.describe(found, lang)])
            )
            return
        found = await (self.chats.update(scope, changes) if changes else self.chats.get(scope))
        lang = await self._lang(update)
        await message.reply_text(
            chat_settings.describe(found, lang, own=scope.private), reply_markup=_settings_keyboard(lang)
        )

    async def settings_button(self, update: Update, _context: Context) -> None:
        """A /settings button: change one setting (in a group: an admin only), and show the result in place."""
        query = update.callback_query
        if query is None or query.data is None or not isinstance(query.message, Message):
            return
        chat = query.message.chat
        scope = chat_settings.Scope("telegram", str(chat.id), str(query.from_user.id), chat.type == ChatType.PRIVATE)
        lang = await self._lang(update)
        if not await self._may_change(scope, query.get_bot()):
            await query.answer(texts.text("settings_admins_only", lang)[:200], show_alert=True)
            return
        found = await self.chats.apply(scope, query.data.removeprefix("set:"))
        lang = await self._lang(update)
        await query.answer(texts.text("settings_saved", lang))
        with contextlib.suppress(BadRequest):  # the same settings again: "message is not modified"
            await query.message.edit_text(
                chat_settings.describe(found, lang, own=scope.private), reply_markup=_settings_keyboard(lang)
            )

    async def _may_change(self, scope: chat_settings.Scope, bot: Bot, *, message: Message | None = None) -> bool:
        """A private chat's settings are its person's; a group's may be changed by its admins only (an anonymous
        admin writes as the group itself)."""
        if scope.private:
            return True
        if message is not None and message.sender_chat is not None:
            return message.sender_chat.id == message.chat_id  # the group's anonymous admin, or a channel's post
        if scope.user_id is None:
            return False
        member = await bot.get_chat_member(int(scope.chat_id), int(scope.user_id))
        return member.status in (ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR)

    async def stats(self, update: Update, context: Context) -> None:
        """/stats (admins): the last 24 h as text and a chart."""
        message, user = update.effective_message, update.effective_user
        if message is None or user is None or not self.admin.is_admin(user.id):
            await self.unknown(update, context)
            return
        reply = await self.admin.stats(await self._lang(update))
        if reply.chart:
            await message.reply_photo(reply.chart, caption=None, filename="stats.png")
        await message.reply_text(reply.text)

    async def dlq(self, update: Update, context: Context) -> None:
        """/dlq (admins): dead jobs with their reasons, each with a requeue button."""
        message, user = update.effective_message, update.effective_user
        if message is None or user is None or not self.admin.is_admin(user.id):
            await self.unknown(update, context)
            return
        lang = await self._lang(update)
        dead = await self.admin.dead_jobs(lang)
        buttons = [[_button(texts.text("requeue_button", lang, job=job[:8]), f"requeue:{job}")] for job in dead.job_ids]
        markup = InlineKeyboardMarkup(buttons) if buttons else None
        await message.reply_text(dead.text, reply_markup=markup)

    async def requeue(self, update: Update, _context: Context) -> None:
        """A requeue button under /dlq (admins only)."""
        query = update.callback_query
        if query is None or query.data is None:
            return
        if not self.admin.is_admin(query.from_user.id):
            await query.answer()
            return
        text = await self.admin.requeue(query.data.removeprefix("requeue:"), await self._lang(update))
        await query.answer(text[:200])
        if isinstance(query.message, Message):
            await query.message.reply_text(text)

    async def cancel(self, update: Update, _context: Context) -> None:
        """The Cancel button under "queued": take the photo back while it waits."""
        query = update.callback_query
        if query is None or query.data is None:
            return
        lang = await self._lang(update)
        job_id = query.data.removeprefix(CANCEL_ACTION)  # only its sender may: the gateway checks
        text = await self.detect_service.cancel([job_id], lang, user_id=query.from_user.id)
        await query.answer(text[:200])

    async def history(self, update: Update, _context: Context) -> None:
        """/history: the person's last photos in this chat, each with buttons to run it again."""
        message = update.effective_message
        if message is None:
            return
        scope = _scope(message)
        lang = await self._lang(update)
        if scope.user_id is None:
            return
        found = await self.detect_service.history("telegram", scope.user_id, scope.chat_id, lang)
        if isinstance(found, str):
            await message.reply_text(found)
            return
        rows: list[list[InlineKeyboardButton]] = []
        for entry in found.entries:
            buttons = [_button(label, rerun_action(mode, entry.job_id)) for mode, label in entry.reruns.items()]
            rows += [row for row in (buttons[:2], buttons[2:]) if row]
        await message.reply_text(found.text, reply_markup=InlineKeyboardMarkup(rows) if rows else None)

    async def rerun(self, update: Update, _context: Context) -> None:
        """A /history button: the photo runs again as a new job; its status message answers the list (only the
        photo's sender may: the gateway checks)."""
        query = update.callback_query
        if query is None or query.data is None or not isinstance(query.message, Message):
            return
        action = parse_rerun_action(query.data)
        if action is None:
            await query.answer()
            return
        mode, job_id = action
        message, lang = query.message, await self._lang(update)
        origin = TelegramOrigin(chat_id=str(message.chat_id), user_id=str(query.from_user.id), language=lang)
        reply = await self.detect_service.rerun(
            job_id, mode, origin, lang, idempotency_key=f"telegram:callback:{query.id}"
        )
        if not reply.job_ids:  # refused: tell the presser only
            await query.answer(reply.text[:200], show_alert=True)
            return
        await query.answer()
        if reply.silent:
            return
        sent = await message.reply_text(reply.text, reply_markup=_cancel_keyboard(reply), do_quote=True)
        await self.detect_service.status_posted(reply.job_ids, str(sent.message_id))

    async def objects(self, update: Update, _context: Context) -> None:
        """The "Objects" button under a result: its objects cut out, as an album replying to it. In a group only
        the photo's sender or an admin may (the gateway checks the sender)."""
        query = update.callback_query
        if query is None or query.data is None or not isinstance(query.message, Message):
            return
        message, lang = query.message, await self._lang(update)
        scope = chat_settings.Scope("telegram", str(message.chat_id), str(query.from_user.id),
                                    message.chat.type == ChatType.PRIVATE)  # fmt: skip
        admin = not scope.private and await self._may_change(scope, message.get_bot())
        found = await self.detect_service.objects(
            query.data.removeprefix(OBJECTS_ACTION), lang, user_id=None if admin else str(query.from_user.id)
        )
        if found.refused or not found.crops:
            await query.answer(found.text[:200], show_alert=found.refused)
            if not found.refused:
                await message.reply_text(found.text, do_quote=True)
            return
        await query.answer()
        captions = found.captions()
        if len(found.crops) == 1:
            await message.reply_photo(found.crops[0][0], caption=captions[0], do_quote=True)
            return
        await message.reply_media_group(
            [
                InputMediaPhoto(image, caption=caption)
                for (image, _), caption in zip(found.crops, captions, strict=True)
            ],
            do_quote=True,
        )

    async def photo(self, update: Update, _context: Context) -> None:
        """A photo or an image file, a GIF (an animation), a video, a video note or a video file: process it in
        private chats, or in groups when addressed to the bot."""
        message = update.effective_message
        if message is None:
            return
        self.metrics.updates.labels(kind="photo").inc()
        addressed = self._addressed(message)
        if message.media_group_id:  # in groups only the album's first photo carries the caption
            if addressed:
                self._addressed_albums.add(message.media_group_id)
            self.albums.add(update.update_id, message)
            return
        if addressed:
            await self._process([(_key(message), message)], asked=message)

    async def detect(self, update: Update, _context: Context) -> None:
        """/detect as a reply to a photo: process that photo, answering the command (its own request: the key is
        the command message's, so each /detect is one job, and a repeated update none)."""
        message = update.effective_message
        if message is None:
            return
        target = message.reply_to_message
        if target is not None and _has_image(target):
            await self._process([(_key(message), target)], asked=message)
        elif not _has_image(message):  # a captioned photo reaches photo() instead
            await message.reply_text(texts.text("group_hint", await self._lang(update)))

    async def error(self, update: object, context: Context) -> None:
        """One error handler: log it, and tell the person what happened, in their language."""
        error = context.error
        if isinstance(error, GatewayClientError):
            log.warning("update failed: %s", error)
        else:
            log.error("update failed: %s", error, exc_info=error)
        if isinstance(update, Update) and update.effective_message:
            lang = await self._lang(update)
            text = error.sentence(lang) if isinstance(error, GatewayRefused) else texts.text("unavailable", lang)
            try:
                await update.effective_message.reply_text(text)
            except TelegramError:
                log.warning("could not tell the chat about the error")

    async def _album(self, items: list[tuple[int, Message]]) -> None:
        first = items[0][1]
        group = first.media_group_id or ""
        if first.chat.type != ChatType.PRIVATE and group not in self._addressed_albums:
            return
        self._addressed_albums.discard(group)
        await self._process([(_key(message), message) for _, message in items], asked=first)

    async def _process(self, items: list[tuple[str, Message]], *, asked: Message) -> None:
        """Download, submit (waiting out a brief outage), answer "queued" with Cancel, name that answer.

        ``items`` are the photos with their idempotency keys; ``asked`` is the message that asked (the photo
        itself, or a /detect reply), which the answers reply to and whose sender the photos count against: a
        person, or for a stand-in sender (an anonymous admin, a post sent as a channel) that chat.

        The gateway's answer names the language to answer in (the person's /settings, else the chat's, else
        their Telegram language): the settings are asked for first only when a refusal must be said before it.
        """
        first, reply_to = items[0][1], asked
        scope = _scope(asked)
        platform_lang = _platform_language(asked)
        origin = TelegramOrigin(
            chat_id=str(first.chat_id),
            message_id=str(first.message_id),
            user_id=scope.user_id,
            language=platform_lang,
        )
        photos: list[Photo] = []
        refusals: list[Refusal] = []
        for key, message in items:
            photo = await self._download(message, key)
            if isinstance(photo, Photo):
                photos.append(photo)
            else:
                refusals.append(photo)
        lang = await self.chats.language(scope, platform_lang) if refusals else platform_lang
        problems = [refusal(lang) for refusal in refusals]
        if not photos:
            await reply_to.reply_text(problems[0], do_quote=True)
            return
        status: list[Message] = []

        async def waiting(text: str) -> None:
            status.append(await reply_to.reply_text(text, do_quote=True))

        group = first.media_group_id if len(photos) > 1 else None
        reply = await self.detect_service.submit(
            origin, photos, group_key=f"{first.chat_id}:{group}" if group else None, on_waiting=waiting
        )
        self.metrics.photos.labels(outcome="queued" if reply.job_ids else "refused").inc(len(photos))
        if reply.silent:
            return
        text = "\n".join([reply.text, *problems])
        markup = _cancel_keyboard(reply)
        if status:
            shown = await status[0].edit_text(text, reply_markup=markup)
            message_id = shown.message_id if isinstance(shown, Message) else status[0].message_id
        else:
            message_id = (await reply_to.reply_text(text, do_quote=True, reply_markup=markup)).message_id
        if reply.job_ids:
            await self.detect_service.status_posted(reply.job_ids, str(message_id))

    async def _download(self, message: Message, key: str) -> Photo | Refusal:
        """The image (or clip) bytes, or why not, to be said in the person's language: a clip that Telegram says
        is too long or too large is refused before it is downloaded."""
        detect = self.detect_service
        clip = message.animation or message.video or message.video_note
        if clip is not None:
            file_id, size = clip.file_id, clip.file_size
            name = getattr(clip, "file_name", None) or "clip.mp4"
            refusal = functools.partial(detect.clip_too_much, size=size, seconds=_seconds(clip.duration))
        elif message.photo:
            largest = message.photo[-1]
            file_id, size, name = largest.file_id, largest.file_size, "photo.jpg"
            refusal = functools.partial(detect.too_big, size)
        elif message.document:
            document = message.document
            file_id, size, name = document.file_id, document.file_size, document.file_name or "image"
            is_clip = (document.mime_type or "").startswith("video/") or document.mime_type == "image/gif"
            refusal = functools.partial(_clip_or_photo_too_big, detect, size, is_clip)
        else:
            return functools.partial(texts.text, "accepted_hint")
        if refusal(lang=None) is not None:  # the limits do not depend on the language it is said in
            return lambda lang: refusal(lang=lang) or ""
        try:
            file = await message.get_bot().get_file(file_id)
            data = bytes(await file.download_as_bytearray())
        except BadRequest as exc:
            if "too big" in exc.message.lower():
                over, said = self.settings.max_download_bytes + 1, exc.message
                return lambda lang: detect.too_big(over, lang) or said
            raise
        return Photo(data=data, filename=name, idempotency_key=key, message_id=str(message.message_id))

    async def _lang(self, update: Update) -> str | None:
        """The person's chosen language, else the chat's, else the person's Telegram language."""
        message = update.effective_message
        if update.callback_query is not None and isinstance(update.callback_query.message, Message):
            chat = update.callback_query.message.chat
            user = update.callback_query.from_user
            scope = chat_settings.Scope("telegram", str(chat.id), str(user.id), chat.type == ChatType.PRIVATE)
            platform_lang = user.language_code
        elif message is not None:
            scope, platform_lang = _scope(message), _platform_language(message)
        else:
            return update.effective_user.language_code if update.effective_user else None
        try:
            return await self.chats.language(scope, platform_lang)
        except (GatewayDown, GatewayRefused):
            return platform_lang

    def _addressed(self, message: Message) -> bool:
        """Private chats: always. Groups: a /detect caption, or a caption that mentions the bot."""
        if message.chat.type == ChatType.PRIVATE:
            return True
        entities = message.parse_caption_entities([MessageEntity.BOT_COMMAND, MessageEntity.MENTION])
        for entity, value in entities.items():
            if entity.type == MessageEntity.BOT_COMMAND and value.split("@")[0] == "/detect":
                at = value.partition("@")[2]
                if not at or at.lower() == self.username.lower():
                    return True
            if entity.type == MessageEntity.MENTION and value[1:].lower() == self.username.lower():
                return True
        return False


STAND_INS = frozenset({1087968824, 136817688, 777000})
"""The users Telegram puts in ``from`` for someone who is not there as a person: an anonymous group admin
(GroupAnonymousBot), a post sent as a channel (Channel_Bot), a channel's automatic forward (777000)."""


def _sender(message: Message) -> str | None:
    """Whom a message counts as: its person, or for a stand-in sender the chat it was sent as (``sender_chat``):
    a group's anonymous admins are that group, a post sent as a channel is that channel."""
    if message.sender_chat is not None:
        return str(message.sender_chat.id)
    user = message.from_user
    if user is None or user.id in STAND_INS:
        return str(message.chat_id)  # a stand-in without a sender_chat: the chat itself
    return str(user.id)


def _scope(message: Message) -> chat_settings.Scope:
    return chat_settings.Scope(
        "telegram", str(message.chat_id), _sender(message), message.chat.type == ChatType.PRIVATE
    )


def _platform_language(message: Message) -> str | None:
    user = message.from_user
    return user.language_code if user is not None and user.id not in STAND_INS and message.sender_chat is None else None


def _key(message: Message) -> str:
    """A message's idempotency key: its chat and id, which Telegram never reuses (unlike an update's id, which
    may start over after a week without updates) and an edit keeps."""
    return f"telegram:{message.chat_id}:{message.message_id}"


def cancel_markup(job_id: str, lang: str | None) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[_button(texts.text("cancel_button", lang), cancel_action(job_id))]])


def _button(text: str, data: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(text, callback_data=data)


def _cancel_keyboard(reply: Reply) -> InlineKeyboardMarkup | None:
    return cancel_markup(reply.waiting[0], reply.language) if reply.waiting else None


def _settings_keyboard(lang: str | None) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(choice.label(lang), callback_data=f"set:{choice.action}") for choice in row]
            for row in chat_settings.CHOICES
        ]
    )


def _has_image(message: Message) -> bool:
    """A photo, an image file, or a clip (an animation, a video, a video note, a video file)."""
    document = message.document
    mime_type = (document.mime_type or "") if document else ""
    clip = message.animation or message.video or message.video_note
    return bool(message.photo) or clip is not None or mime_type.startswith(("image/", "video/"))


def _seconds(value: int | float | dt.timedelta | None) -> float | None:
    """A duration as Telegram gives it (python-telegram-bot: a timedelta, or whole seconds)."""
    if value is None:
        return None
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


def _clip_or_photo_too_big(detect: DetectService, size: int | None, is_clip: bool, *, lang: str | None) -> str | None:
    """A document's refusal: a clip's limits first (when it is one), then the download cap."""
    too_much = detect.clip_too_much(size=size, seconds=None, lang=lang) if is_clip else None
    return too_much or detect.too_big(size, lang)
