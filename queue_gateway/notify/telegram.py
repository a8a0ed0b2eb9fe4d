"""Delivery to Telegram with a plain ``telegram.Bot`` (no running Application needed)."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from PIL import Image
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputMediaPhoto, Message, ReplyParameters
from telegram.constants import ChatAction
from telegram.error import BadRequest, ChatMigrated, Forbidden, InvalidToken, NetworkError, RetryAfter

from queue_gateway.notify.base import (
    ChatClock,
    Delivery,
    Item,
    RetryLater,
    Sent,
    StatusUpdate,
    Undeliverable,
    objects_buttons,
)
from queue_gateway.public import texts
from queue_gateway.public.contract import DiscordOrigin, TelegramOrigin, cancel_action
from queue_gateway.runtime.telegram_http import AiohttpRequest

log = logging.getLogger(__name__)

T = TypeVar("T")

PHOTO_MAX_BYTES = 10 * 1024 * 1024
PHOTO_MAX_SIDES = 10_000  # width + height
PHOTO_MAX_RATIO = 20


def fits_photo_limits(image: bytes) -> bool:
    """Telegram's sendPhoto limits: ≤ 10 MB, width + height ≤ 10000, aspect ratio ≤ 20."""
    if len(image) > PHOTO_MAX_BYTES:
        return False
    with Image.open(io.BytesIO(image)) as decoded:
        width, height = decoded.size
    return width + height <= PHOTO_MAX_SIDES and max(width, height) <= PHOTO_MAX_RATIO * min(width, height)


def make_bot(token: str, api_url: str, file_url: str) -> Bot:
    request = AiohttpRequest(connections=16, read_timeout=30, write_timeout=60, connect_timeout=10)
    return Bot(token, base_url=api_url, base_file_url=file_url, request=request)


class TelegramNotifier:
    platform = "telegram"

    def __init__(self, bot: Bot) -> None:
        self._bot = bot
        self._ready = False
        self.clock = ChatClock()

    async def close(self) -> None:
        if self._ready:
            await self._bot.shutdown()

    async def send(self, delivery: Delivery) -> Sent:
        return await self._call(lambda: self._send(delivery))

    async def edit_status(self, delivery: Delivery, text: str) -> bool:
        return await self._call(lambda: self._edit(delivery, text))

    async def update_status(self, update: StatusUpdate) -> str | None:
        origin = update.origin
        if not isinstance(origin, TelegramOrigin):
            raise Undeliverable("not a Telegram job")
        markup = None
        if update.cancel_job_id:
            button = InlineKeyboardButton(texts.text("cancel_button", update.language),
                                          callback_data=cancel_action(update.cancel_job_id))  # fmt: skip
            markup = InlineKeyboardMarkup([[button]])

        async def edit() -> None:
            try:
                await self._bot.edit_message_text(
                    update.text, chat_id=int(origin.chat_id), message_id=int(update.status_message_id),
                    reply_markup=markup,
                )  # fmt: skip
            except (BadRequest, ChatMigrated) as exc:  # deleted, it already says so, or its group was upgraded
                log.debug("status message %s not updated: %s", update.status_message_id, exc.message)

        await self._call(edit)
        return None

    async def show_activity(self, origin: TelegramOrigin | DiscordOrigin, *, media: str = "photo") -> None:
        """Telegram shows "sending photo…" (a clip: "sending video…") in the chat for a few seconds."""
        action = ChatAction.UPLOAD_VIDEO if media == "clip" else ChatAction.UPLOAD_PHOTO
        if isinstance(origin, TelegramOrigin):
            await self._call(lambda: self._bot.send_chat_action(int(origin.chat_id), action))

    async def tell(self, user_id: str, text: str) -> None:
        """A private chat's id is its person's user id."""
        await self._call(lambda: self._bot.send_message(int(user_id), text))

    async def _call(self, step: Callable[[], Awaitable[T]]) -> T:
        try:
            if not self._ready:
                await self._bot.initialize()
                self._ready = True
            return await step()
        except RetryAfter as exc:
            raise RetryLater(_seconds(exc.retry_after), "Telegram rate limit (429)") from exc
        except (Forbidden, InvalidToken) as exc:
            raise Undeliverable(f"Telegram refused: {exc.message}") from exc
        except ChatMigrated as exc:  # the group became a supergroup (a result is sent there: see _send)
            raise Undeliverable(f"Telegram: {exc.message}") from exc
        except BadRequest as exc:
            raise Undeliverable(f"Telegram rejected the message: {exc.message}") from exc
        except NetworkError as exc:  # includes TimedOut and 5xx answers
            raise RetryLater(None, f"Telegram unreachable: {exc.message}") from exc

    async def _send(self, delivery: Delivery) -> Sent:
        """The result, in the chat it came from; in the supergroup that chat became, if it was upgraded since (every
        call naming the old group is refused, so nothing went there)."""
        chat_id = _chat_id(delivery)
        try:
            return await self._send_to(chat_id, delivery)
        except ChatMigrated as exc:
            log.info("chat %s is now the supergroup %s: the result goes there", chat_id, exc.new_chat_id)
            return await self._send_to(int(exc.new_chat_id), delivery)

    async def _send_to(self, chat_id: int, delivery: Delivery) -> Sent:
        """The photos (one, or an album of them), then each clip as an animation of its own (an album cannot
        hold animations), then one message for those that failed."""
        items = delivery.items
        good = [item for item in items if item.ok and item.image]
        photos = [item for item in good if not item.is_clip]
        failed = [item for item in items if not (item.ok and item.image)]
        sent: list[Message] = []
        if len(photos) == 1:  # in an album its "Objects" button goes under the status message
            markup = _keyboard(delivery) if len(good) == 1 else None
            sent.append(await self._send_one(chat_id, photos[0], delivery.output, markup))
        elif photos:
            media = [
                InputMediaPhoto(item.image or b"", caption=item.caption, filename=f"{item.job_id}.jpg")
                for item in photos
            ]
            sent.extend(await self._bot.send_media_group(chat_id, media, reply_parameters=_reply_to(photos[0])))
        for clip in (item for item in good if item.is_clip):
            sent.append(await self._send_clip(chat_id, clip, delivery.output))
        if good and delivery.output == "photo+json":
            sent.append(await self._send_detections(chat_id, good, reply_to=sent[0].message_id))
        if failed:
            text = "\n".join(item.caption for item in failed)
            sent.append(await self._bot.send_message(chat_id, text, reply_parameters=_reply_to(failed[0])))
        return Sent([str(message.message_id) for message in sent])

    async def _send_one(self, chat_id: int, item: Item, output: str, markup: InlineKeyboardMarkup | None) -> Message:
        image = item.image or b""
        reply = _reply_to(item)
        if output != "document" and fits_photo_limits(image):
            try:
                return await self._bot.send_photo(
                    chat_id, image, caption=item.caption, reply_parameters=reply, reply_markup=markup
                )
            except BadRequest as exc:  # e.g. PHOTO_INVALID_DIMENSIONS: a document always goes through
                log.warning("job %s: sendPhoto refused (%s); sending as a document", item.job_id, exc.message)
        return await self._bot.send_document(
            chat_id, image, filename=f"detected-{item.job_id[:8]}.jpg", caption=item.caption, reply_parameters=reply,
            reply_markup=markup,
        )  # fmt: skip

    async def _send_clip(self, chat_id: int, item: Item, output: str) -> Message:
        """A clip's annotated animation: ``sendAnimation`` (it plays inline, looping, like the GIF it came as), or
        the file itself when the chat chose original-quality files."""
        image, name, reply = item.image or b"", f"detected-{item.job_id[:8]}.{item.extension}", _reply_to(item)
        if output == "document":
            return await self._bot.send_document(
                chat_id, image, filename=name, caption=item.caption, reply_parameters=reply
            )
        return await self._bot.send_animation(chat_id, image, filename=name, caption=item.caption,
                                              reply_parameters=reply)  # fmt: skip

    async def _send_detections(self, chat_id: int, items: list[Item], *, reply_to: int) -> Message:
        payload = [
            {"job_id": item.job_id, "detections": item.detections, **({"clip": item.clip} if item.clip else {})}
            for item in items
        ]
        data = json.dumps(payload if len(payload) > 1 else payload[0], ensure_ascii=False, indent=1).encode()
        return await self._bot.send_document(
            chat_id, data, filename="detections.json",
            reply_parameters=ReplyParameters(message_id=reply_to, allow_sending_without_reply=True),
        )  # fmt: skip

    async def _edit(self, delivery: Delivery, text: str) -> bool:
        if not delivery.status_message_id:
            return False
        album = len([item for item in delivery.items if item.ok and item.image]) > 1
        try:  # an album's photos cannot carry buttons: its "Objects n" buttons go under the status message
            await self._bot.edit_message_text(
                text, chat_id=_chat_id(delivery), message_id=int(delivery.status_message_id),
                reply_markup=_keyboard(delivery) if album else None,
            )  # fmt: skip
        except (BadRequest, ChatMigrated) as exc:  # deleted, it already says so, or its group was upgraded since:
            log.info("status message %s not edited: %s", delivery.status_message_id, exc.message)  # nothing to fix
            return False
        return True


def _keyboard(delivery: Delivery) -> InlineKeyboardMarkup | None:
    buttons = [
        InlineKeyboardButton(label, callback_data=data)
        for label, data in objects_buttons(delivery.items, delivery.language)
    ]
    return InlineKeyboardMarkup([buttons[n : n + 5] for n in range(0, len(buttons), 5)]) if buttons else None


def _chat_id(delivery: Delivery) -> int:
    origin = delivery.origin
    if not isinstance(origin, TelegramOrigin):
        raise Undeliverable("not a Telegram job")
    return int(origin.chat_id)


def _reply_to(item: Item) -> ReplyParameters | None:
    if not item.message_id:
        return None
    return ReplyParameters(message_id=int(item.message_id), allow_sending_without_reply=True)


def _seconds(value: int | dt.timedelta) -> float:
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)
