"""Delivery to Telegram with a plain ``telegram.Bot`` (no running Application needed)."""

from __future__ import annotations

import datetime as dt
import io
import logging
from typing import Any

from PIL import Image
from telegram import Bot, InputMediaPhoto, Message, ReplyParameters
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.request import HTTPXRequest

from queue_gateway.notify.base import Checkpoint, Delivery, Item, RetryLater, Undeliverable

log = logging.getLogger(__name__)

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
    request = HTTPXRequest(connection_pool_size=16, read_timeout=30, write_timeout=60, connect_timeout=10)
    return Bot(token, base_url=api_url, base_file_url=file_url, request=request)


class TelegramNotifier:
    platform = "telegram"

    def __init__(self, bot: Bot) -> None:
        self._bot = bot
        self._ready = False

    async def close(self) -> None:
        if self._ready:
            await self._bot.shutdown()

    async def deliver(self, delivery: Delivery, checkpoint: Checkpoint) -> dict[str, Any]:
        try:
            return await self._deliver(delivery, checkpoint)
        except RetryAfter as exc:
            raise RetryLater(_seconds(exc.retry_after), "Telegram rate limit (429)") from exc
        except (Forbidden, InvalidToken) as exc:
            raise Undeliverable(f"Telegram refused: {exc.message}") from exc
        except BadRequest as exc:
            raise Undeliverable(f"Telegram rejected the message: {exc.message}") from exc
        except NetworkError as exc:  # includes TimedOut and 5xx answers
            raise RetryLater(None, f"Telegram unreachable: {exc.message}") from exc

    async def _deliver(self, delivery: Delivery, checkpoint: Checkpoint) -> dict[str, Any]:
        if not self._ready:
            await self._bot.initialize()
            self._ready = True
        receipt = dict(delivery.receipt)
        chat_id = int(delivery.origin.chat_id or 0)
        if "sent" not in receipt:
            receipt["sent"] = await self._send(chat_id, delivery.items)
            await checkpoint(receipt)
        status_id = delivery.origin.status_message_id
        if status_id and not receipt.get("status_done"):
            await self._edit_status(chat_id, int(status_id), delivery.status_text)
            receipt["status_done"] = True
            await checkpoint(receipt)
        return receipt

    async def _send(self, chat_id: int, items: list[Item]) -> list[int]:
        good = [item for item in items if item.ok and item.image]
        failed = [item for item in items if not (item.ok and item.image)]
        sent: list[Message] = []
        if len(good) == 1:
            sent.append(await self._send_one(chat_id, good[0]))
        elif good:
            media = [
                InputMediaPhoto(item.image or b"", caption=item.caption, filename=f"{item.job_id}.jpg") for item in good
            ]
            sent.extend(await self._bot.send_media_group(chat_id, media, reply_parameters=_reply_to(good[0])))
        if failed:
            text = "\n".join(item.caption for item in failed)
            sent.append(await self._bot.send_message(chat_id, text, reply_parameters=_reply_to(failed[0])))
        return [message.message_id for message in sent]

    async def _send_one(self, chat_id: int, item: Item) -> Message:
        image = item.image or b""
        reply = _reply_to(item)
        if fits_photo_limits(image):
            try:
                return await self._bot.send_photo(chat_id, image, caption=item.caption, reply_parameters=reply)
            except BadRequest as exc:  # e.g. PHOTO_INVALID_DIMENSIONS: a document always goes through
                log.warning("job %s: sendPhoto refused (%s); sending as a document", item.job_id, exc.message)
        return await self._bot.send_document(
            chat_id, image, filename=f"detected-{item.job_id[:8]}.jpg", caption=item.caption, reply_parameters=reply
        )

    async def _edit_status(self, chat_id: int, message_id: int, text: str) -> None:
        try:
            await self._bot.edit_message_text(text, chat_id=chat_id, message_id=message_id)
        except BadRequest as exc:  # deleted by the person, or already says so: nothing to fix
            log.info("status message %s not edited: %s", message_id, exc.message)
        except TelegramError:
            raise


def _reply_to(item: Item) -> ReplyParameters | None:
    if not item.message_id:
        return None
    return ReplyParameters(message_id=int(item.message_id), allow_sending_without_reply=True)


def _seconds(value: int | dt.timedelta) -> float:
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)
