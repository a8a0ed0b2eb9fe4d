"""Delivery to Discord over REST only (no websocket): the interaction follow-up, or a channel message.

While the interaction token lives (15 min after the interaction, less a safety margin) the result goes out as a
follow-up through ``discord.Webhook.partial`` (no bot token needed). After that, or when Discord says the token is
gone (401 code 50027, 404), it goes to the channel as a bot message that replies to the person's message (the
context menu's target) or mentions them.

discord.py sends every REST call (webhooks included) to the process-global ``discord.http.Route.BASE``, set once
per process by ``queue_gateway.runtime.process.use_discord`` from ``DETECTBOT_DISCORD_API_URL``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import math
import time
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

import aiohttp
import discord
from PIL import Image

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
from queue_gateway.public.contract import DiscordOrigin, TelegramOrigin

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024  # bots and webhooks, since 2025-01-16 (413 code 40005 above)
MAX_CONTENT_CHARS = 2000
TOKEN_TTL_S = 15 * 60.0
TOKEN_MARGIN_S = 60.0  # a follow-up started this close to the expiry goes to the channel instead
MAX_SHRINKS = 6  # 413 → smaller image → retry, at most this often
PROGRESS_MARGIN_S = 120.0  # a waiting photo's status moves to a channel message this long before the token expires
CHANNEL_PREFIX = "channel:"  # a status message id that names a channel message (edited with the bot token)
ORIGINAL = "@original"
FILE_TOO_LARGE = 40005
INVALID_WEBHOOK_TOKEN = 50027


class DiscordNotifier:
    platform = "discord"

    def __init__(
        self,
        token: str,
        *,
        max_attachment_bytes: int = MAX_ATTACHMENT_BYTES,
        token_margin_s: float = TOKEN_MARGIN_S,
    ) -> None:
        self._token = token
        self._max_bytes = max_attachment_bytes
        self._margin = token_margin_s
        self._session: aiohttp.ClientSession | None = None  # for Webhook.partial
        self._client: discord.Client | None = None  # bot-token REST, logged in once, never connected
        self._login = asyncio.Lock()
        self.clock = ChatClock()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def send(self, delivery: Delivery) -> Sent:
        origin = _discord(delivery)
        route, message_id = await self._call(self._send(origin, delivery.items))
        return Sent([message_id], route)

    async def edit_status(self, delivery: Delivery, text: str) -> bool:
        return await self._call(self._edit_status(_discord(delivery), delivery.status_message_id, text))

    async def tell(self, user_id: str, text: str) -> None:
        """Open (or find) the direct-message channel with the person, then post there."""

        async def send() -> None:
            client = await self._rest_client()
            channel = await client.create_dm(discord.Object(id=int(user_id)))
            await channel.send(content=text, allowed_mentions=discord.AllowedMentions.none())

        await self._call(send())

    async def _call(self, step: Awaitable[T]) -> T:
        try:
            return await step
        except discord.LoginFailure as exc:
            raise Undeliverable("Discord refused the bot token") from exc
        except discord.HTTPException as exc:
            raise _classify(exc) from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise RetryLater(None, f"Discord unreachable: {type(exc).__name__}") from exc

    # --- sending ------------------------------------------------------------------------------------

    async def _send(self, origin: DiscordOrigin, items: list[Item]) -> tuple[str, str]:
        """Send once; on 413 shrink the images and send again. Returns the route used and the message ids."""
        originals = [item.image for item in items if item.ok and item.image]
        images = await asyncio.to_thread(lambda: [fit(image, self._max_bytes) for image in originals])
        use_webhook = self._token_alive(origin)
        for shrinks in range(MAX_SHRINKS + 1):
            try:
                if use_webhook:
                    try:
                        return "followup", await self._followup(origin, items, images)
                    except discord.HTTPException as exc:
                        if not _token_gone(exc):
                            raise
                        log.info("interaction token gone (channel %s); posting to the channel", origin.channel_id)
                        use_webhook = False
                return "channel", await self._channel_message(origin, items, images)
            except discord.HTTPException as exc:
                if not _too_large(exc) or shrinks == MAX_SHRINKS or not images:
                    raise
                log.warning("Discord refused the attachments as too large; shrinking (%d)", shrinks + 1)
                images = await asyncio.to_thread(_shrink_all, images)
        raise AssertionError("unreachable")

    async def _followup(self, origin: DiscordOrigin, items: list[Item], images: list[bytes]) -> str:
        webhook = self._webhook(origin)
        content = _content(items)
        message = await webhook.send(
            content=content, files=_files(items, images), wait=True, allowed_mentions=discord.AllowedMentions.none(),
            view=_buttons(items, origin.language),
        )  # fmt: skip
        return str(message.id)

    async def _channel_message(self, origin: DiscordOrigin, items: list[Item], images: list[bytes]) -> str:
        if not origin.channel_id:
            raise Undeliverable("the job has no Discord channel to answer in")
        client = await self._rest_client()
        channel = client.get_partial_messageable(int(origin.channel_id))
        mention = f"<@{origin.user_id}> " if origin.user_id else ""
        target = origin.message_id or next((item.message_id for item in items if item.message_id), None)
        reply: dict[str, Any] = {}
        if target:  # answer the person's message; still post when it was deleted meanwhile
            reply["reference"] = discord.MessageReference(
                message_id=int(target), channel_id=int(origin.channel_id), fail_if_not_exists=False
            )
        message = await channel.send(
            content=_content(items, prefix=mention),
            files=_files(items, images),
            view=_buttons(items, origin.language),
            allowed_mentions=discord.AllowedMentions(everyone=False, roles=False, users=True, replied_user=True),
            **reply,
        )
        return str(message.id)

    # --- the status message ---------------------------------------------------------------------------

    async def update_status(self, update: StatusUpdate) -> str | None:
        """Show progress; a photo still waiting when the interaction's token is about to expire gets a channel
        message as its new status message (the bot token can edit that one for as long as it takes)."""
        origin = _origin(update.origin)
        if update.status_message_id.startswith(CHANNEL_PREFIX):
            await self._call(self._edit_channel_message(origin, update.status_message_id, update.text))
            return None
        return await self._call(self._progress(origin, update))

    async def show_activity(self, origin: TelegramOrigin | DiscordOrigin) -> None:
        """Discord has no "sending photo" action for a bot's follow-up: nothing to show."""

    async def _progress(self, origin: DiscordOrigin, update: StatusUpdate) -> str | None:
        """Edit the interaction's message while its token lives; else (or when Discord says the token has expired
        already) move the status to a channel message."""
        if self._token_alive(origin, margin=self._margin + PROGRESS_MARGIN_S):
            try:
                await self._edit_original(origin, update.text, keep_components=update.cancel_job_id is not None)
                return None
            except discord.HTTPException as exc:
                if not _token_expired(exc):
                    raise
                log.info("interaction token of channel %s has expired; the status moves", origin.channel_id)
        return await self._move_status(origin, update)

    async def _move_status(self, origin: DiscordOrigin, update: StatusUpdate) -> str:
        if not origin.channel_id:
            raise Undeliverable("the job has no Discord channel to post its status in")
        if self._token_alive(origin):
            with contextlib.suppress(discord.HTTPException):
                await self._edit_original(origin, texts.text("status_moved", update.language), keep_components=False)
        client = await self._rest_client()
        channel = client.get_partial_messageable(int(origin.channel_id))
        mention = f"<@{origin.user_id}> " if origin.user_id else ""
        message = await channel.send(
            content=mention + update.text, allowed_mentions=discord.AllowedMentions(users=True, everyone=False)
        )
        log.info("status of channel %s moved to message %s before the interaction token expires",
                 origin.channel_id, message.id)  # fmt: skip
        return f"{CHANNEL_PREFIX}{message.id}"

    async def _edit_channel_message(self, origin: DiscordOrigin, status_message_id: str, text: str) -> bool:
        if not origin.channel_id:
            return False
        client = await self._rest_client()
        channel = client.get_partial_messageable(int(origin.channel_id))
        mention = f"<@{origin.user_id}> " if origin.user_id else ""
        try:
            await channel.get_partial_message(int(status_message_id.removeprefix(CHANNEL_PREFIX))).edit(
                content=mention + text
            )
        except discord.NotFound:
            return False
        return True

    async def _edit_original(self, origin: DiscordOrigin, text: str, *, keep_components: bool) -> None:
        message_id: Any = ORIGINAL  # "@original": discord.py puts it into the URL as it is
        if keep_components:
            await self._webhook(origin).edit_message(message_id, content=text)
        else:
            await self._webhook(origin).edit_message(message_id, content=text, view=None)

    async def _edit_status(self, origin: DiscordOrigin, status_message_id: str | None, text: str) -> bool:
        """Edit the bot's status message: the interaction's original response while the token lives, or the
        channel message it moved to."""
        if not status_message_id:
            return False
        if status_message_id.startswith(CHANNEL_PREFIX):
            return await self._edit_channel_message(origin, status_message_id, text)
        if not self._token_alive(origin):
            log.info("status message of channel %s not edited: the interaction token has expired", origin.channel_id)
            return False
        message_id: Any = status_message_id  # "@original": discord.py puts it into the URL as it is
        try:
            await self._webhook(origin).edit_message(message_id, content=text, view=None)
        except discord.NotFound:
            log.info("status message of channel %s is gone", origin.channel_id)
            return False
        except discord.HTTPException as exc:
            if _token_gone(exc):
                return False
            raise
        return True

    # --- plumbing ---------------------------------------------------------------------------------------

    def _token_alive(self, origin: DiscordOrigin, *, margin: float | None = None) -> bool:
        if not (origin.application_id and origin.interaction_token and origin.interaction_created_at):
            return False
        return time.time() < origin.interaction_created_at + TOKEN_TTL_S - (self._margin if margin is None else margin)

    def _webhook(self, origin: DiscordOrigin) -> discord.Webhook:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120))
        return discord.Webhook.partial(
            int(origin.application_id or 0), origin.interaction_token or "", session=self._session
        )

    async def _rest_client(self) -> discord.Client:
        async with self._login:
            if self._client is None:
                client = discord.Client(intents=discord.Intents(guilds=True))  # never connects: REST only
                try:
                    await client.login(self._token)
                except BaseException:
                    await client.close()
                    raise
                self._client = client
        return self._client


# --- buttons ------------------------------------------------------------------------------------------------


class Buttons(discord.ui.View):
    """Buttons whose presses the bot process answers (each custom id names its job): the gateway only sends them,
    so discord.py here neither listens for them nor keeps the view."""

    def __init__(self, buttons: Sequence[tuple[str, str]]) -> None:
        super().__init__(timeout=None)
        for label, custom_id in buttons:
            self.add_item(discord.ui.Button(label=label, custom_id=custom_id, style=discord.ButtonStyle.secondary))

    def is_dispatchable(self) -> bool:
        return False


def _buttons(items: list[Item], language: str | None) -> Any:
    """The result's "Objects" buttons (discord.py's "no view" when there are none)."""
    buttons = objects_buttons(items, language)
    return Buttons(buttons) if buttons else discord.utils.MISSING


# --- attachments --------------------------------------------------------------------------------------


def fit(image: bytes, limit: int = MAX_ATTACHMENT_BYTES) -> bytes:
    """The image as it is when it fits in ``limit`` bytes, else a smaller JPEG (same aspect) that does."""
    while len(image) > limit:
        image = shrink(image, target=limit)
    return image


def _shrink_all(images: list[bytes]) -> list[bytes]:
    """After a 413: every image about 40 % smaller."""
    return [shrink(image, target=int(len(image) * 0.6)) for image in images]


def shrink(image: bytes, *, target: int) -> bytes:
    """Downscale (keeping the aspect ratio) and re-encode as JPEG until the result is at most ``target`` bytes."""
    data = image
    for _ in range(8):
        with Image.open(io.BytesIO(data)) as decoded:
            picture = decoded.convert("RGB")
        width, height = picture.size
        scale = min(0.9, math.sqrt(max(target, 1) / len(data)) * 0.95)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        buffer = io.BytesIO()
        picture.resize(size, Image.Resampling.LANCZOS).save(buffer, "JPEG", quality=85, optimize=True)
        data = buffer.getvalue()
        if len(data) <= target or min(size) <= 16:
            break
    return data


def _files(items: Sequence[Item], images: list[bytes]) -> list[discord.File]:
    good = [item for item in items if item.ok and item.image]
    return [
        discord.File(io.BytesIO(image), filename=f"detected-{item.job_id[:8]}.jpg")
        for item, image in zip(good, images, strict=True)
    ]


def _content(items: Sequence[Item], *, prefix: str = "") -> str:
    lines = [item.caption if len(items) == 1 else f"{n}. {item.caption}" for n, item in enumerate(items, 1)]
    text = prefix + "\n".join(lines)
    return text if len(text) <= MAX_CONTENT_CHARS else text[: MAX_CONTENT_CHARS - 1] + "…"


# --- errors ---------------------------------------------------------------------------------------------


def _token_gone(exc: discord.HTTPException) -> bool:
    """The interaction token expired (401 code 50027) or the interaction's webhook is unknown (404)."""
    return exc.status == 404 or _token_expired(exc)


def _token_expired(exc: discord.HTTPException) -> bool:
    """Discord no longer takes the interaction token (401 code 50027): more than 15 minutes have passed."""
    return exc.status == 401 and exc.code in (INVALID_WEBHOOK_TOKEN, 0)


def _too_large(exc: discord.HTTPException) -> bool:
    return exc.status == 413 or exc.code == FILE_TOO_LARGE


def _classify(exc: discord.HTTPException) -> RetryLater | Undeliverable:
    """Our verdict on a Discord error (never its text with the URL: that holds the interaction token)."""
    reason = f"Discord answered {exc.status} (code {exc.code}): {exc.text[:200]}"
    if exc.status == 429:
        return RetryLater(_retry_after(exc), reason)
    if exc.status >= 500:
        return RetryLater(None, reason)
    return Undeliverable(reason)


def _retry_after(exc: discord.HTTPException) -> float | None:
    headers = getattr(exc.response, "headers", None) or {}
    try:
        return float(headers["Retry-After"])
    except (KeyError, TypeError, ValueError):
        return None


def _discord(delivery: Delivery) -> DiscordOrigin:
    return _origin(delivery.origin)


def _origin(origin: TelegramOrigin | DiscordOrigin) -> DiscordOrigin:
    if not isinstance(origin, DiscordOrigin):
        raise Undeliverable("not a Discord job")
    return origin
