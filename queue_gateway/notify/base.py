"""The notifier interface the delivery loop speaks to, and what it hands over.

A notifier only talks to its platform: it sends a delivery's messages and edits the bot's status message. The
delivery loop decides what is due, in which order, what to record and when to retry.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from queue_gateway.public import texts
from queue_gateway.public.contract import DiscordOrigin, TelegramOrigin, objects_action


@dataclass(frozen=True, slots=True)
class Item:
    """One job of a delivery: its annotated image and caption, or the reason it failed."""

    job_id: str
    ok: bool
    caption: str
    image: bytes | None = None
    message_id: str | None = None  # the person's message this item answers (Telegram: the photo)
    detections: list[dict[str, Any]] = field(default_factory=list)


def objects_buttons(items: list[Item], language: str | None) -> list[tuple[str, str]]:
    """The "Objects" buttons of a result: ``(label, data)`` for each photo that found something ("Objects 2" in an
    album, numbered as its photos are)."""
    shown = [item for item in items if item.ok and item.image]
    if len(shown) == 1:
        return (
            [(texts.text("objects_button", language), objects_action(shown[0].job_id))] if shown[0].detections else []
        )
    return [
        (texts.text("objects_button_n", language, n=n), objects_action(item.job_id))
        for n, item in enumerate(shown, start=1)
        if item.detections
    ]


@dataclass(slots=True)
class Delivery:
    """What goes back to one chat: one item, or an album's items in order (none: only the status changes)."""

    origin: TelegramOrigin | DiscordOrigin
    items: list[Item]
    status_text: str  # replaces the bot's "queued" message ("Done in 1.4 s.")
    status_message_id: str | None = None
    output: str = "photo"  # photo | photo+json | document (the chat's /settings)
    language: str | None = None

    @property
    def job_ids(self) -> list[str]:
        return [item.job_id for item in self.items]


@dataclass(frozen=True, slots=True)
class Sent:
    """What a notifier sent: the platform's message ids, and the route it took (Discord: followup or channel)."""

    message_ids: list[str]
    route: str = "chat"

    def receipt(self) -> dict[str, Any]:
        return {"sent": self.message_ids, "route": self.route}


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A new text for a photo's status message while it waits or is processed."""

    origin: TelegramOrigin | DiscordOrigin
    status_message_id: str
    text: str
    cancel_job_id: str | None = None  # while it waits, the message keeps its Cancel button for this job
    language: str | None = None


class ChatClock:
    """When the bot last wrote into each chat (a message or an edit). Delivery and the progress updater share
    their notifier's clock, so that together they keep to the platform's pace (about one a second per chat)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last: dict[str, float] = {}

    def last(self, chat: str) -> float:
        """The clock's time of the last write into ``chat`` (-inf: none yet)."""
        return self._last.get(chat, float("-inf"))

    def mark(self, chat: str, *, at: float | None = None) -> None:
        """A write into ``chat`` starts now, or at ``at`` (marked before it goes out: no other writer slips in)."""
        self._last[chat] = self._clock() if at is None else at


class RetryLater(Exception):
    """A passing failure (rate limit, 5xx, network); try again after ``after`` s (None: back off)."""

    def __init__(self, after: float | None, reason: str) -> None:
        super().__init__(reason)
        self.after = after
        self.reason = reason


class Undeliverable(Exception):
    """The chat cannot be reached for good (bot blocked, chat gone, bad token)."""


class Notifier(Protocol):
    platform: str
    clock: ChatClock  # shared by everything that writes into this platform's chats

    async def send(self, delivery: Delivery) -> Sent:
        """Send the delivery's items. Raise RetryLater or Undeliverable."""
        ...

    async def edit_status(self, delivery: Delivery, text: str) -> bool:
        """Edit the bot's status message to ``text``; False when it is gone or can no longer be edited.

        Editing twice to the same text is harmless, so the loop may repeat it after a crash.
        """
        ...

    async def update_status(self, update: StatusUpdate) -> str | None:
        """Show progress in the status message; return a new status message id if it had to move (Discord, when
        the interaction's token is about to expire), else None. Raise RetryLater or Undeliverable."""
        ...

    async def show_activity(self, origin: TelegramOrigin | DiscordOrigin) -> None:
        """Show that the result is being prepared ("sending photo…"), where the platform can."""
        ...

    async def tell(self, user_id: str, text: str) -> None:
        """A message in a person's private chat with the bot (an admin's alert). Raise RetryLater or
        Undeliverable (they never started a chat with the bot, or blocked it)."""
        ...

    async def close(self) -> None: ...
