"""Albums: Telegram sends each photo of a media group as its own update; collect them, then act once.

The album's updates stay in hand (see :class:`~bots.telegram.poller.Ledger`) until the album is submitted, so
a bot that stops meanwhile gets them all again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from telegram import Message

from bots.telegram.poller import Ledger

log = logging.getLogger(__name__)

Flush = Callable[[list[tuple[int, Message]]], Awaitable[None]]


class AlbumCollector:
    """Buffers (update id, message) pairs per media group until no new photo came for ``quiet_s``."""

    def __init__(self, flush: Flush, ledger: Ledger, quiet_s: float) -> None:
        self._flush = flush
        self._ledger = ledger
        self._quiet_s = quiet_s
        self._pending: dict[tuple[int, str], list[tuple[int, Message]]] = {}
        self._timers: dict[tuple[int, str], asyncio.Task[None]] = {}

    def add(self, update_id: int, message: Message) -> None:
        key = (message.chat_id, message.media_group_id or "")
        self._ledger.hold(update_id)
        self._pending.setdefault(key, []).append((update_id, message))
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        self._timers[key] = asyncio.create_task(self._after_quiet(key), name=f"album-{key[1]}")

    async def _after_quiet(self, key: tuple[int, str]) -> None:
        await asyncio.sleep(self._quiet_s)  # debounce: the album's next photo would have arrived by now
        self._timers.pop(key, None)
        await self._release(key)

    async def _release(self, key: tuple[int, str]) -> None:
        items = self._pending.pop(key, [])
        if not items:
            return
        items.sort(key=lambda pair: pair[1].message_id)
        try:
            await self._flush(items)
        except Exception:
            log.exception("album %s failed", key[1])
        finally:
            for update_id, _ in items:
                self._ledger.release(update_id)

    async def close(self) -> None:
        """Act on albums still waiting (shutdown), so no photo is dropped."""
        for key, timer in list(self._timers.items()):
            timer.cancel()
            self._timers.pop(key, None)
        for key in list(self._pending):
            await self._release(key)
