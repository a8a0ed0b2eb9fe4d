"""Telegram handlers: translate updates to ``DetectService`` calls and its answers back. No logic of their own."""

from __future__ import annotations

import logging

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, MessageEntity, Update
from telegram.constants import ChatType
from telegram.error import BadRequest
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes, MessageHandler, filters

from bots.shared.admin import AdminService, format_dead
from bots.shared.service import DetectService, Photo
from bots.telegram.albums import AlbumCollector
from bots.telegram.settings import TelegramSettings
from queue_gateway import texts
from queue_gateway.contract import Origin

log = logging.getLogger(__name__)

Context = ContextTypes.DEFAULT_TYPE


class Handlers:
    def __init__(self, settings: TelegramSettings) -> None:
        self.settings = settings
        self.service: DetectService | None = None  # set when the bot starts (it owns the HTTP session)
        self.admin: AdminService | None = None
        self.username = ""
        self.albums = AlbumCollector(self._album, settings.album_quiet_s)
        self._addressed_albums: set[str] = set()

    def register(self, app: Application) -> None:  # type: ignore[type-arg]
        app.add_handler(CommandHandler(["start", "help"], self.help))
        app.add_handler(CommandHandler("detect", self.detect))
        app.add_handler(CommandHandler("forget", self.forget))
        app.add_handler(CommandHandler("stats", self.stats))
        app.add_handler(CommandHandler("dlq", self.dlq))
        app.add_handler(CallbackQueryHandler(self.requeue, pattern=r"^requeue:"))
        app.add_handler(MessageHandler(filters.PHOTO | filters.Document.IMAGE, self.photo))
        app.add_handler(MessageHandler(filters.ChatType.PRIVATE & filters.COMMAND, self.unknown))
        app.add_handler(MessageHandler(filters.ChatType.PRIVATE & ~filters.COMMAND, self.hint))
        app.add_error_handler(self.error)

    @property
    def _admin(self) -> AdminService:
        assert self.admin is not None, "the bot has not started"
        return self.admin

    @property
    def _service(self) -> DetectService:
        assert self.service is not None, "the bot has not started"
        return self.service

    async def help(self, update: Update, _context: Context) -> None:
        """/start and /help: what the bot does, in three lines."""
        if update.effective_message:
            await update.effective_message.reply_text(texts.text("help", _lang(update)))

    async def hint(self, update: Update, _context: Context) -> None:
        """Anything but a photo in a private chat: say what the bot accepts."""
        if update.effective_message:
            await update.effective_message.reply_text(texts.text("accepted_hint", _lang(update)))

    async def unknown(self, update: Update, _context: Context) -> None:
        """A command the bot does not have (or one this person may not use)."""
        if update.effective_message:
            await update.effective_message.reply_text(texts.text("not_allowed", _lang(update)))

    async def forget(self, update: Update, _context: Context) -> None:
        """/forget: delete this person's photos and results now."""
        message, user = update.effective_message, update.effective_user
        if message and user:
            await message.reply_text(await self._admin.forget("telegram", user.id, user.language_code))

    async def stats(self, update: Update, context: Context) -> None:
        """/stats (admins): the last 24 h as text and a chart."""
        message, user = update.effective_message, update.effective_user
        if message is None or user is None or not self._admin.is_admin(user.id):
            await self.unknown(update, context)
            return
        reply = await self._admin.stats(user.language_code)
        if reply.chart:
            await message.reply_photo(reply.chart, caption=None, filename="stats.png")
        await message.reply_text(reply.text)

    async def dlq(self, update: Update, context: Context) -> None:
        """/dlq (admins): dead jobs with their reasons, each with a requeue button."""
        message, user = update.effective_message, update.effective_user
        if message is None or user is None or not self._admin.is_admin(user.id):
            await self.unknown(update, context)
            return
        jobs = await self._admin.dead_jobs()
        if isinstance(jobs, str):
            await message.reply_text(jobs)
            return
        buttons = [
            [InlineKeyboardButton(f"Requeue {job.job_id[:8]}", callback_data=f"requeue:{job.job_id}")] for job in jobs
        ]
        await message.reply_text(format_dead(jobs), reply_markup=InlineKeyboardMarkup(buttons) if buttons else None)

    async def requeue(self, update: Update, _context: Context) -> None:
        """A requeue button under /dlq (admins only)."""
        query = update.callback_query
        if query is None or query.data is None:
            return
        if not self._admin.is_admin(query.from_user.id):
            await query.answer()
            return
        text = await self._admin.requeue(query.data.removeprefix("requeue:"))
        await query.answer(text[:200])
        if isinstance(query.message, Message):
            await query.message.reply_text(text)

    async def photo(self, update: Update, _context: Context) -> None:
        """A photo or an image file: process it in private chats, or in groups when addressed to the bot."""
        message = update.effective_message
        if message is None:
            return
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
            await message.reply_text(texts.text("group_hint", _lang(update)))

    async def error(self, update: object, context: Context) -> None:
        """One error handler: log it, and tell the person something went wrong."""
        log.error("update failed: %s", context.error, exc_info=context.error)
        if isinstance(update, Update) and update.effective_message:
            try:
                await update.effective_message.reply_text(texts.text("unavailable", _lang(update)))
            except Exception:
                log.warning("could not tell the chat about the error")

    async def _album(self, items: list[tuple[int, Message]]) -> None:
        first = items[0][1]
        group = first.media_group_id or ""
        if first.chat.type != ChatType.PRIVATE and group not in self._addressed_albums:
            return
        self._addressed_albums.discard(group)
        await self._process(None, items, reply_to=first)

    async def _process(self, update: Update | None, items: list[tuple[int, Message]], *, reply_to: Message) -> None:
        """Download, submit, answer "queued", and name that answer to the gateway."""
        first = items[0][1]
        user = (update.effective_user if update else None) or first.from_user
        lang = user.language_code if user else None
        origin = Origin(
            platform="telegram",
            chat_id=first.chat_id,
            message_id=first.message_id,
            user_id=user.id if user else None,
            language=lang,
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
        group = first.media_group_id if len(photos) > 1 else None
        reply = await self._service.submit(origin, photos, group_key=f"{first.chat_id}:{group}" if group else None)
        if reply.silent:
            return
        status = await reply_to.reply_text("\n".join([reply.text, *problems]), do_quote=True)
        if reply.job_ids:
            await self._service.status_posted(reply.job_ids, str(status.message_id))

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
        refusal = self._service.too_big(size, lang)
        if refusal:
            return refusal
        try:
            file = await message.get_bot().get_file(file_id)
            data = bytes(await file.download_as_bytearray())
        except BadRequest as exc:
            if "too big" in exc.message.lower():
                return self._service.too_big(self.settings.max_download_bytes + 1, lang) or exc.message
            raise
        return Photo(data=data, filename=name, idempotency_key=key, message_id=str(message.message_id))

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


def _has_image(message: Message) -> bool:
    document = message.document
    return bool(message.photo) or bool(document and (document.mime_type or "").startswith("image/"))


def _lang(update: Update) -> str | None:
    return update.effective_user.language_code if update.effective_user else None
