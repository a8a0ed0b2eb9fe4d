"""The bots' main use case, platform-neutral: turn a person's photos into jobs and say what happened.

A platform handler downloads the photos, calls :meth:`DetectService.submit`, and shows the text it gets. While the
gateway (or its database) is briefly away, the photo is kept and sent again for up to ``gateway_retry_s``
seconds; the person is told once that it is waiting, and hears of a failure only after that. All the wording
comes from the shared message catalogue, in the person's language.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_delay, wait_exponential_jitter

from bots.shared.settings import BotSettings
from queue_gateway.public import texts
from queue_gateway.public.client import GatewayClient, GatewayDown, GatewayRefused, Origin
from queue_gateway.public.contract import HistoryResponse, RerunMode, SubmitResponse
from queue_gateway.runtime import tracing

log = logging.getLogger(__name__)

MiB = 1024 * 1024
T = TypeVar("T")
Waiting = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Photo:
    data: bytes
    filename: str
    idempotency_key: str
    message_id: str | None = None  # the message the answer should reply to


@dataclass(frozen=True, slots=True)
class Reply:
    """What to tell the person. ``job_ids`` is empty when nothing was queued; ``silent`` for a repeat."""

    text: str
    job_ids: tuple[str, ...] = ()
    silent: bool = False
    language: str | None = None
    waiting: tuple[str, ...] = ()  # the jobs still in line (they can be cancelled)


class DetectService:
    def __init__(self, client: GatewayClient, settings: BotSettings) -> None:
        self.client = client
        self.settings = settings

    def too_big(self, size: int | None, lang: str | None) -> str | None:
        """The polite refusal for a file over the download cap, or None when it is fine."""
        limit = self.settings.max_download_bytes
        if size is None or size <= limit:
            return None
        return texts.text("too_big", lang, size_mb=max(1, round(size / MiB)), limit_mb=limit // MiB)

    async def submit(
        self, origin: Origin, photos: list[Photo], *, group_key: str | None = None, on_waiting: Waiting | None = None
    ) -> Reply:
        """Queue each photo (one job each; an album as one group) and return the status text."""
        with tracing.span(f"{origin.platform} photo", photos=len(photos), chat=origin.chat_ref):
            return await self._submit(origin, photos, group_key=group_key, on_waiting=on_waiting)

    async def _submit(
        self, origin: Origin, photos: list[Photo], *, group_key: str | None, on_waiting: Waiting | None
    ) -> Reply:
        lang = origin.language
        grouped = group_key is not None and len(photos) > 1
        accepted: list[SubmitResponse] = []
        problems: list[str] = []
        told = _Once(on_waiting, texts.text("waiting_for_service", lang))
        for index, photo in enumerate(photos):
            update: dict[str, Any] = {"message_id": photo.message_id or origin.message_id}
            if grouped:
                update |= {"group_key": group_key, "group_size": len(photos), "group_index": index}
            member = origin.model_copy(update=update)
            try:
                answer = await self.retrying(
                    lambda member=member, photo=photo: self.client.submit(  # type: ignore[misc]
                        photo.data, filename=photo.filename, origin=member, idempotency_key=photo.idempotency_key
                    ),
                    told,
                )
            except GatewayRefused as exc:
                if exc.code in ("busy", "too_many_in_line", "rate_limited", "quota"):
                    return Reply(texts.for_error(exc.code, lang, retry_after=exc.retry_after, limit=exc.limit))
                problems.append(texts.for_error(exc.code, lang, retry_after=exc.retry_after, limit=exc.limit))
                continue
            except GatewayDown:
                log.error(
                    "gateway unreachable at %s for %.0f s", self.settings.gateway_url, self.settings.gateway_retry_s
                )
                return Reply(texts.text("unavailable", lang))
            lang = answer.language or lang
            accepted.append(answer)
        return self._reply(accepted, problems, lang)

    def _reply(self, accepted: list[SubmitResponse], problems: list[str], lang: str | None) -> Reply:
        if not accepted:
            return Reply("\n".join(problems) or texts.text("accepted_hint", lang), language=lang)
        job_ids = tuple(answer.job_id for answer in accepted)
        waiting = tuple(a.job_id for a in accepted if a.position > 0 or a.status == "received")
        if all(answer.duplicate for answer in accepted):
            return Reply("", job_ids, silent=True, language=lang)  # Telegram/Discord sent the same thing again
        position = min(answer.position for answer in accepted)
        eta = max(answer.eta_s or 0.0 for answer in accepted)
        if any(answer.waiting_for_worker for answer in accepted):
            text = texts.text("no_worker", lang)  # safe, and done as soon as a worker starts: no made-up estimate
        elif len(accepted) > 1:
            text = texts.queued_text(max(position, 1), eta, lang, count=len(accepted))
        elif position > 0:
            text = texts.queued_text(position, eta, lang)
        else:
            text = texts.text("queued_now", lang)
        return Reply("\n".join([text, *problems]), job_ids, language=lang, waiting=waiting)

    async def status_posted(self, job_ids: tuple[str, ...], message_id: str) -> None:
        """Tell the gateway which message says "queued", so it can keep it up to date and end it with "Done"."""
        for job_id in job_ids:
            try:
                await self.retrying(lambda job_id=job_id: self.client.name_status_message(job_id, message_id))  # type: ignore[misc]
            except (GatewayRefused, GatewayDown) as exc:
                log.warning("job %s: could not name the status message: %s", job_id, exc)

    async def cancel(self, job_ids: list[str], lang: str | None, *, user_id: int | str) -> str:
        """The Cancel button: take back the photos that still wait in line (only their sender may)."""
        cancelled = 0
        for job_id in job_ids:
            try:
                await self.client.cancel(job_id, user_id=str(user_id))
                cancelled += 1
            except GatewayRefused as exc:
                if exc.code != "too_late":
                    return texts.for_error(exc.code, lang)
        return texts.text("cancelled", lang) if cancelled else texts.text("too_late", lang)

    async def history(self, platform: str, user_id: str, chat: str, lang: str | None) -> HistoryResponse | str:
        """/history: the person's last photos in this chat with their re-run buttons, or why not (a sentence)."""
        try:
            return await self.client.history(platform, user_id, chat, lang)
        except GatewayRefused as exc:
            return texts.for_error(exc.code, lang)
        except GatewayDown:
            return texts.text("unavailable", lang)

    async def rerun(
        self, job_id: str, mode: RerunMode, origin: Origin, lang: str | None, *, idempotency_key: str
    ) -> Reply:
        """A re-run button: the photo runs again as a new job; the reply is its status message ("Running your
        photo again with a lower confidence. Queued — #1 …"), or why not."""
        try:
            answer = await self.retrying(
                lambda: self.client.rerun(
                    job_id, mode, user_id=origin.user_id, origin=origin, idempotency_key=idempotency_key, lang=lang
                )
            )
        except GatewayRefused as exc:
            if exc.code in ("gone", "not_found"):
                return Reply(texts.text("rerun_gone", lang), language=lang)
            if exc.code == "not_yours":
                return Reply(texts.text("rerun_not_yours", lang), language=lang)
            return Reply(texts.for_error(exc.code, lang, retry_after=exc.retry_after, limit=exc.limit), language=lang)
        except GatewayDown:
            return Reply(texts.text("unavailable", lang), language=lang)
        waiting = (answer.job_id,) if answer.position > 0 or answer.status == "received" else ()
        return Reply(answer.status_text, (answer.job_id,), silent=answer.duplicate, language=lang, waiting=waiting)

    async def objects(self, job_id: str, lang: str | None, *, user_id: str | None) -> Objects:
        """The "Objects" button: the photo's objects cut out, each with its caption; or why not. ``user_id``: the
        person who pressed it (None for a chat's admin, who may have any photo's)."""
        try:
            index, images = await self.client.crops(job_id, user_id=user_id, lang=lang)
        except GatewayRefused as exc:
            if exc.code in ("gone", "not_found"):
                return Objects(texts.text("objects_gone", lang))
            if exc.code == "not_yours":
                return Objects(texts.text("objects_not_yours", lang), refused=True)
            return Objects(texts.for_error(exc.code, lang))
        except GatewayDown:
            return Objects(texts.text("unavailable", lang))
        return Objects(index.caption, [(image, item.text) for image, item in zip(images, index.objects, strict=True)])

    async def retrying(self, call: Callable[[], Awaitable[T]], on_first_failure: _Once | None = None) -> T:
        """``call()``, again and again while the gateway is down, for up to ``gateway_retry_s``."""

        async def before_sleep(state: RetryCallState) -> None:
            log.warning("gateway unavailable (%s); trying again", state.outcome.exception() if state.outcome else "?")
            if on_first_failure is not None:
                await on_first_failure()

        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(GatewayDown),
            stop=stop_after_delay(self.settings.gateway_retry_s),
            wait=wait_exponential_jitter(multiplier=0.5, max=10.0, jitter=0.5),
            before_sleep=before_sleep,
            reraise=True,
        ):
            with attempt:
                return await call()
        raise AssertionError("unreachable")  # pragma: no cover - AsyncRetrying returns or raises


@dataclass(frozen=True, slots=True)
class Objects:
    """What the "Objects" button brings: the album's caption (or why there is nothing), and each crop with its own."""

    text: str
    crops: list[tuple[bytes, str]] = field(default_factory=list)
    refused: bool = False  # someone else's photo: say so to the presser only

    def captions(self) -> list[str]:
        """Each crop's caption; the first one also carries the album's ("5 objects, largest first.")."""
        return [f"{text}\n{self.text}" if n == 0 else text for n, (_, text) in enumerate(self.crops)]


class _Once:
    """Tell the person once that their photo waits for the service."""

    def __init__(self, say: Waiting | None, text: str) -> None:
        self._say = say
        self._text = text
        self.done = False

    async def __call__(self) -> None:
        if self.done or self._say is None:
            return
        self.done = True
        try:
            await self._say(self._text)
        except Exception:
            log.warning("could not tell the person their photo is waiting", exc_info=True)
