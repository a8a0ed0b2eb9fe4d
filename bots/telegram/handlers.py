"""Telegram handlers: translate updates to the shared services' calls and their answers back. No logic of their own."""

from __future__ import annotations

import contextlib
import logging

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, MessageEntity, Update
from telegram.constants import ChatType
from telegram.error import BadRequest, TelegramError
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes, MessageHandler, filters

from bots.shared import chat_settings
from bots.shared.admin import format_dead
from bots.shared.detect import Photo, Reply
from bots.shared.errors import BotError, GatewayDown, GatewayRefused
from bots.shared.services import BotServices
from bots.telegram.albums import AlbumCollector
from bots.telegram.poller import Ledger
from bots.telegram.settings import TelegramSettings
from queue_gateway.public import texts
from queue_gateway.public.contract import CANCEL_ACTION, TelegramOrigin, cancel_action

log = logging.getLogger(__name__)

Context = ContextTypes.DEFAULT_TYPE


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
        app.add_handler(CommandHandler(["start", "help"], self.help))
        app.add_handler(CommandHandler("detect", self.detect))
        app.add_handler(CommandHandler("settings", self.settings_command))
        app.add_handler(CommandHandler("forget", self.forget))
        app.add_handler(CommandHandler("stats", self.stats))
        app.add_handler(CommandHandler("dlq", self.dlq))
        app.add_handler(CallbackQueryHandler(self.requeue, pattern=r"^requeue:"))
        app.add_handler(CallbackQueryHandler(self.cancel, pattern=f"^{CANCEL_ACTION}"))
        app.add_handler(CallbackQueryHandler(self.settings_button, pattern=r"^set:"))
        app.add_handler(MessageHandler(filters.PHOTO | filters.Document.IMAGE, self.photo))
        app.add_handler(MessageHandler(filters.ChatType.PRIVATE & filters.COMMAND, self.unknown))
        app.add_handler(MessageHandler(filters.ChatType.PRIVATE & ~filters.COMMAND, self.hint))
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
        """/forget: delete this person's photos and results now."""
        message, user = update.effective_message, update.effective_user
        if message and user:
            await message.reply_text(await self.admin.forget("telegram", user.id, await self._lang(update)))

    async def settings_command(self, update: Update, context: Context) -> None:
        """/settings: show this chat's settings with buttons; ``/settings conf 60`` and friends change them."""
        message = update.effective_message
        if message is None:
            return
        chat = str(message.chat_id)
        lang = await self._lang(update)
        try:
            changes = chat_settings.parse_words(list(context.args or []), lang)
        except chat_settings.SettingsError as exc:
            await message.reply_text(exc.text(lang))
            return
        found = await (self.chats.update("telegram", chat, changes) if changes else self.chats.get("telegram", chat))
        lang = await self._lang(update)
        await message.reply_text(chat_settings.describe(found, lang), reply_markup=_settings_keyboard(lang))

    async def settings_button(self, update: Update, _context: Context) -> None:
        """A /settings button: change one setting, and show the result in the same message."""
        query = update.callback_query
        if query is None or query.data is None or not isinstance(query.message, Message):
            return
        chat = str(query.message.chat_id)
        found = await self.chats.apply("telegram", chat, query.data.removeprefix("set:"))
        lang = await self._lang(update)
        await query.answer(texts.text("settings_saved", lang))
        with contextlib.suppress(BadRequest):  # the same settings again: "message is not modified"
            await query.message.edit_text(chat_settings.describe(found, lang), reply_markup=_settings_keyboard(lang))

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
        jobs = await self.admin.dead_jobs()
        buttons = [
            [_button(texts.text("requeue_button", lang, job=job.job_id[:8]), f"requeue:{job.job_id}")] for job in jobs
        ]
        markup = InlineKeyboardMarkup(buttons) if buttons else None
        await message.reply_text(format_dead(jobs, lang), reply_markup=markup)

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
        job_id = query.data.removeprefix(CANCEL_ACTION)
        text = await self.detect_service.cancel([job_id], lang, user_id=query.from_user.id)
        await query.answer(text[:200])

    async def photo(self, update: Update, _context: Context) -> None:
        """A photo or an image file: process it in private chats, or in groups when addressed to the bot."""
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
            await self._process(update, [(update.update_id, message)], reply_to=message)

    async def detect(self, update: Update, _context: Context) -> None:
        """/detect as a reply to a photo: process that photo, answering the photo."""
        message = update.effective_message
        if message is None:
            return
        target = message.reply_to_message
        if target is not None and _has_image(target):
            await self._process(update, [(update.update_id, target)], reply_to=message)
        elif not _has_image(message):  # a captioned photo reaches photo() instead
            await message.reply_text(texts.text("group_hint", await self._lang(update)))

    async def error(self, update: object, context: Context) -> None:
        """One error handler: log it, and tell the person what happened, in their language."""
        error = context.error
        if isinstance(error, BotError):
            log.warning("update failed: %s", error)
        else:
            log.error("update failed: %s", error, exc_info=error)
        if isinstance(update, Update) and update.effective_message:
            lang = await self._lang(update)
            if isinstance(error, GatewayRefused):
                text = texts.for_error(error.code, lang, retry_after=error.retry_after, limit=error.limit)
            else:
                text = texts.text("unavailable", lang)
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
        await self._process(None, items, reply_to=first)

    async def _process(self, update: Update | None, items: list[tuple[int, Message]], *, reply_to: Message) -> None:
        """Download, submit (waiting out a brief outage), answer "queued" with Cancel, name that answer."""
        first = items[0][1]
        user = (update.effective_user if update else None) or first.from_user
        lang = await self.chats.language("telegram", str(first.chat_id), user.language_code if user else None)
        origin = TelegramOrigin(
            chat_id=str(first.chat_id),
            message_id=str(first.message_id),
            user_id=str(user.id) if user else None,
            language=user.language_code if user else None,
        )
        photos: list[Photo] = []
        problems: list[str] = []
        for update_id, message in items:
            photo = await self._download(message, f"telegram:{update_id}", lang)
            if isinstance(photo, str):
                problems.append(photo)
            else:
                photos.append(photo)
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

    async def _download(self, message: Message, key: str, lang: str | None) -> Photo | str:
        """The image bytes, or a sentence explaining why not."""
        if message.photo:
            largest = message.photo[-1]
            file_id, size, name = largest.file_id, largest.file_size, "photo.jpg"
        elif message.document:
            document = message.document
            file_id, size, name = document.file_id, document.file_size, document.file_name or "image"
        else:
            return texts.text("accepted_hint", lang)
        refusal = self.detect_service.too_big(size, lang)
        if refusal:
            return refusal
        try:
            file = await message.get_bot().get_file(file_id)
            data = bytes(await file.download_as_bytearray())
        except BadRequest as exc:
            if "too big" in exc.message.lower():
                return self.detect_service.too_big(self.settings.max_download_bytes + 1, lang) or exc.message
            raise
        return Photo(data=data, filename=name, idempotency_key=key, message_id=str(message.message_id))

    async def _lang(self, update: Update) -> str | None:
        """The chat's chosen language, else the person's Telegram language."""
        user, chat = update.effective_user, update.effective_chat
        platform_lang = user.language_code if user else None
        if chat is None:
            return platform_lang
        try:
            return await self.chats.language("telegram", str(chat.id), platform_lang)
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
    document = message.document
    return bool(message.photo) or bool(document and (document.mime_type or "").startswith("image/"))
