"""Receiving updates so that none is lost: Telegram hears an update is handled only once it is.

python-telegram-bot's own polling confirms an update (by asking ``getUpdates`` for the next offset) as soon as
it is queued, before any handler ran: a bot killed while it downloads the photo never sees that update again.
:class:`DurablePoller` asks for updates itself and confirms only up to the oldest update still in hand, so a
restarted bot gets again exactly the updates it had not finished (the idempotency key makes a repeat harmless).
In webhook mode the bot answers Telegram's POST only once the update is handled, to the same effect.

An update is *in hand* from its arrival until its handler returned and nothing *holds* it (an album's photos
are held until the album is submitted).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from telegram import Update
from telegram.error import Conflict, InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application

from queue_gateway.runtime.errors import CannotStart
from queue_gateway.runtime.supervise import Backoff, woken

log = logging.getLogger(__name__)

POLL_TIMEOUT_S = 10  # long polling: Telegram answers at once when an update arrives
IN_HAND_WAIT_S = 0.5  # with updates in hand, how long to wait for one to finish before asking again


class Ledger:
    """The updates in hand: received, and not finished or still held."""

    def __init__(self) -> None:
        self._running: set[int] = set()
        self._holds: dict[int, int] = {}
        self._done: dict[int, asyncio.Future[None]] = {}
        self.progress = asyncio.Event()

    def begin(self, update_id: int) -> asyncio.Future[None]:
        """An update arrived; the future is done once it is finished and released."""
        if update_id not in self._done:
            self._done[update_id] = asyncio.get_running_loop().create_future()
            self._running.add(update_id)
        return self._done[update_id]

    def hold(self, update_id: int) -> None:
        """Keep the update in hand after its handler returns (an album photo waiting for the rest)."""
        self._holds[update_id] = self._holds.get(update_id, 0) + 1

    def release(self, update_id: int) -> None:
        count = self._holds.get(update_id, 0) - 1
        if count > 0:
            self._holds[update_id] = count
        else:
            self._holds.pop(update_id, None)
            self._settle(update_id)

    def finished(self, update_id: int) -> None:
        """Its handler returned (or failed and was answered by the error handler)."""
        self._running.discard(update_id)
        self._settle(update_id)

    def in_hand(self) -> list[int]:
        return sorted(set(self._running) | set(self._holds))

    def _settle(self, update_id: int) -> None:
        if update_id in self._running or update_id in self._holds:
            return
        future = self._done.pop(update_id, None)
        if future is not None and not future.done():
            future.set_result(None)
        self.progress.set()


class DurablePoller:
    """Long polling with confirmation only of what is handled."""

    def __init__(self, application: Application, ledger: Ledger) -> None:  # type: ignore[type-arg]
        self._app = application
        self._ledger = ledger
        self._task: asyncio.Task[None] | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._next = 0  # the first update id not seen yet
        self.failure: BaseException | None = None
        self.stopped = asyncio.Event()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        await self._app.bot.delete_webhook()
        self._task = asyncio.create_task(self._poll(), name="telegram-polling")

    async def stop(self, *, grace_s: float = 30.0) -> None:
        """Stop asking for updates; let the updates in hand finish (up to ``grace_s``)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._handlers:
            await asyncio.wait(set(self._handlers), timeout=grace_s)

    def offset(self) -> int:
        """What Telegram may forget: everything before the oldest update in hand."""
        in_hand = self._ledger.in_hand()
        return in_hand[0] if in_hand else self._next

    async def _poll(self) -> None:
        backoff = Backoff(maximum=30.0)
        try:
            while True:
                offset = self.offset()
                self._ledger.progress.clear()
                try:
                    updates = await self._app.bot.get_updates(
                        offset=offset, timeout=0 if self._ledger.in_hand() else POLL_TIMEOUT_S,
                        allowed_updates=Update.ALL_TYPES,
                    )  # fmt: skip
                except InvalidToken as exc:
                    raise CannotStart("Telegram refused the bot token (check DETECTBOT_TELEGRAM_TOKEN)") from exc
                except RetryAfter as exc:
                    await asyncio.sleep(_seconds(exc.retry_after))  # Telegram's own pause
                    continue
                except (Conflict, NetworkError, TelegramError) as exc:
                    log.warning("getUpdates failed (%s); retrying", exc)
                    await backoff.wait()
                    continue
                backoff.reset()
                fresh = [update for update in updates if update.update_id >= self._next]
                for update in fresh:
                    self._next = update.update_id + 1
                    self._spawn(update)
                if not fresh and self._ledger.in_hand():
                    await self._until_confirmable(offset)
        except CannotStart as exc:
            self.failure = exc
            raise
        finally:
            self.stopped.set()

    async def _until_confirmable(self, offset: int) -> None:
        """Wait until the oldest update in hand is finished (Telegram may forget more) or ``IN_HAND_WAIT_S``.

        Each poll with updates in hand downloads them again, so the bot asks again when it can confirm some, or
        after a short pause for new ones, not whenever any update finishes.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + IN_HAND_WAIT_S
        while self.offset() == offset and (left := deadline - loop.time()) > 0:
            self._ledger.progress.clear()
            await woken(self._ledger.progress, left)

    def _spawn(self, update: Update) -> None:
        # in hand from now on, before the next getUpdates is asked for: its offset must not confirm this update
        self._ledger.begin(update.update_id)
        task = asyncio.create_task(handle(self._app, self._ledger, update), name=f"update-{update.update_id}")
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)


async def handle(application: Application, ledger: Ledger, update: Update) -> None:  # type: ignore[type-arg]
    """Run the handlers for one update; it stays in hand until they return and nothing holds it."""
    done = ledger.begin(update.update_id)
    try:
        await application.process_update(update)
    finally:
        ledger.finished(update.update_id)
    await done


def _seconds(value: object) -> float:
    total = getattr(value, "total_seconds", None)
    return float(total()) if callable(total) else float(value)  # type: ignore[arg-type]
