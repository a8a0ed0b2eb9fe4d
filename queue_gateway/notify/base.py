"""The notifier interface the delivery loop speaks to, and what it hands over."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from queue_gateway.contract import Origin


@dataclass(frozen=True, slots=True)
class Item:
    """One job of a delivery: its annotated image and caption, or the reason it failed."""

    job_id: str
    ok: bool
    caption: str
    image: bytes | None = None
    message_id: str | None = None  # the person's message this item answers (Telegram: the photo)


@dataclass(slots=True)
class Delivery:
    """What goes back to one chat: one item, or an album's items in order."""

    origin: Origin
    items: list[Item]
    status_text: str  # replaces the bot's "queued" message ("Done in 1.4 s.")
    receipt: dict[str, Any] = field(default_factory=dict)  # steps already done by an earlier attempt

    @property
    def job_ids(self) -> list[str]:
        return [item.job_id for item in self.items]


Checkpoint = Callable[[dict[str, Any]], Awaitable[None]]
"""Called by a notifier right after each step it completed, so that a retry never repeats it."""


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

    async def deliver(self, delivery: Delivery, checkpoint: Checkpoint) -> dict[str, Any]:
        """Send the delivery; return the final receipt (message ids). Raise RetryLater or Undeliverable."""
        ...

    async def close(self) -> None: ...
