"""One chat driver for both platforms, so that an acceptance scenario is written once and runs on each.

A scenario asks ``start_chat`` (a fixture parametrised over :data:`PLATFORMS`) for a :class:`ChatDriver`: the
platform's wire fake, the real gateway and the real bot (python-telegram-bot or discord.py), started by the
stacks in ``tests/telegram_stack.py`` and ``tests/discord_stack.py``. It then speaks as people
(:meth:`ChatDriver.person`): sends photos and files, runs commands, presses the Cancel button, and reads what
the bot showed: the status message of a photo with the history of its texts (each with the time the platform
got it), the result, and everything the bot said in a person's chat.

How the platforms differ, and what the driver makes of it:

- A person. Telegram: a private chat whose id is the user's id; ``from.language_code`` is the person's
  language. Discord: a channel of their own in one guild; the interaction's ``locale`` is their language.
- A photo. Telegram: a photo message; the status message is the bot's first text reply to it. Discord:
  ``/detect`` with the photo attached; the status message is the interaction's response (``@original``).
- The result. Telegram: the photo (or document, or a text for a failure) that replies to the person's photo.
  Discord: a follow-up of the interaction, or a channel message with the image once the token is gone.
- A command. Telegram: ``/name words``, answered by the next message in the chat. Discord: a slash command
  with options, answered by its callback or its (deferred) follow-up.

The worker is always started by the driver (:meth:`ChatDriver.start_worker`), so that a scenario decides when
the line moves; ``gate`` holds each photo in the worker (``py:tests.detectors:gated``) until the scenario lets
it through. A scenario reads::

    async def test_cancel(start_chat: StartChat) -> None:
        chat = await start_chat(gateway={"max_inflight_per_user": 5})  # GatewaySettings overrides
        person = chat.person(1, language="ru")
        sent = await chat.send_photo(person, jpeg())
        assert matches("queued", "ru", position=1)(await chat.reply(sent))
        assert (await chat.press_cancel(sent)).text == texts.text("cancelled", "ru")

A platform-only scenario parametrises the fixture: ``@pytest.mark.parametrize("start_chat", ["discord"],
indirect=True)``, and reaches the fake as ``chat.fake``.
"""

from __future__ import annotations

import abc
import re
import string
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import discord
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from db.models import Blob, Job
from queue_gateway.public import texts
from tests.conftest import eventually
from tests.detectors import GATE_ENV, Gate
from tests.discord_stack import GUILD
from tests.discord_stack import Stack as DiscordStack
from tests.fakes.discord_api import FLAG_EPHEMERAL, FakeDiscord
from tests.fakes.telegram_api import Call as TelegramCall
from tests.fakes.telegram_api import FakeTelegram
from tests.services import ADMIN_KEY, GatewayHandle, WorkerHandle
from tests.telegram_stack import Stack as TelegramStack

PLATFORMS = ("telegram", "discord")
FIXED = "py:tests.detectors:fixed"
TELEGRAM_PERSON = 5_000  # person n is user (and private chat) 5000 + n
DISCORD_PERSON = 1_190_000_000_000_010_000  # person n is this + n, in channel DISCORD_CHANNEL + n
DISCORD_CHANNEL = 1_190_000_000_000_020_000
DISCORD_GROUP_CHANNEL = 1_190_000_000_000_030_000  # group g is this + g, a channel everyone shares
TELEGRAM_GROUP = -1_002_000_000_000  # group g is the supergroup this - g


@dataclass(frozen=True)
class Person:
    """Someone in a chat: their platform user id, the chat they write in, and their app's language."""

    user: int
    chat: int
    language: str | None = None  # None: the platform's default (English)


@dataclass(frozen=True)
class Shown:
    """One text a bot message showed, and when the platform took it (``time.monotonic()``)."""

    at: float
    text: str


@dataclass(frozen=True)
class Answer:
    """The bot's answer to a command or a button: its text, any images, its buttons as (label, data)."""

    text: str
    images: tuple[bytes, ...] = ()
    image_names: tuple[str, ...] = ()
    private: bool = False  # only the asker sees it (Telegram: a private chat; Discord: ephemeral)
    buttons: tuple[tuple[str, str], ...] = ()
    ref: str = ""  # the platform's id of the answering message (Telegram), for pressing its buttons


@dataclass(frozen=True)
class Result:
    """What came back for a photo: the caption (or the failure's sentence) and the annotated image."""

    caption: str
    image: bytes | None


@dataclass
class Sent:
    """A photo (or file) a person sent: the handle to follow its status message and its result."""

    person: Person
    ref: dict[str, Any]  # Telegram: the person's message; Discord: the interaction


class ChatDriver(abc.ABC):
    """A platform, its bot and the gateway behind it, driven as the people in its chats would."""

    platform: str
    help_key: str  # the catalogue's /help text for this platform

    def __init__(self, gateway: GatewayHandle, start_worker: Callable[..., Awaitable[WorkerHandle]]) -> None:
        self.gateway = gateway
        self._start_worker = start_worker

    # --- the people and what they do --------------------------------------------------------------------

    @abc.abstractmethod
    def person(self, n: int, *, language: str | None = None) -> Person:
        """Person ``n`` (any small number) in a chat of their own; ``language`` is their app's language."""

    @abc.abstractmethod
    def member(self, n: int, group: int, *, admin: bool = False, language: str | None = None) -> Person:
        """Person ``n`` in the shared group ``group`` (a Telegram supergroup; a Discord guild channel), one of its
        admins or a plain member."""

    @abc.abstractmethod
    async def send_photo(self, person: Person, data: bytes, *, filename: str = "photo.jpg") -> Sent:
        """The person sends a photo for detection."""

    @abc.abstractmethod
    async def send_file(
        self, person: Person, data: bytes, *, filename: str, mime_type: str, size: int | None = None
    ) -> Sent:
        """The person sends a file as a document or attachment (``size``: what the platform claims it weighs)."""

    @abc.abstractmethod
    async def command(self, person: Person, name: str, **options: str) -> Answer:
        """``/name`` (with options, as ``/dlq requeue:<job>``), and the bot's answer to it."""

    @abc.abstractmethod
    async def settings(self, person: Person, *, conf: float, classes: str) -> Answer:
        """``/settings`` to a confidence (0.6 = 60 %) and the objects shown; the answer to the last change."""

    @abc.abstractmethod
    async def press_cancel(self, sent: Sent, *, by: Person | None = None) -> Answer:
        """Press the Cancel button the photo's status message shows (fails if it shows none); ``by`` someone else
        who sees it (in a Telegram group, a Discord channel)."""

    @abc.abstractmethod
    async def requeue(self, admin: Person, listing: Answer) -> Answer:
        """Requeue the first job of a /dlq listing the way the platform offers it (a button, or an option)."""

    # --- what the bot showed ----------------------------------------------------------------------------

    @abc.abstractmethod
    def history(self, sent: Sent) -> list[Shown]:
        """Every text the photo's status message showed, oldest first (sent or edited in, by bot or gateway)."""

    @abc.abstractmethod
    def status_buttons(self, sent: Sent) -> list[tuple[str, str]]:
        """The buttons the status message shows now, as (label, data)."""

    @abc.abstractmethod
    def results(self, sent: Sent) -> list[Result]:
        """What was delivered for the photo so far (none, normally one)."""

    @abc.abstractmethod
    def result_buttons(self, sent: Sent) -> list[tuple[str, str]]:
        """The buttons under a photo's result (an album's: under its status message), as (label, data)."""

    @abc.abstractmethod
    async def press_objects(self, sent: Sent, *, by: Person | None = None, n: int = 1) -> Answer:
        """``by`` (default: the sender) presses the ``n``-th "Objects" button of the result; the answer's images are
        the crops, its text their captions (or why there are none)."""

    @abc.abstractmethod
    async def rerun(self, person: Person, listing: Answer, data: str) -> tuple[Answer, Result | None]:
        """``person`` picks the re-run ``data`` (``rerun:<mode>:<job id>``) under a /history ``listing``: the
        re-run's status message (or why not), and its result once it came (None when refused)."""

    @abc.abstractmethod
    def said(self, person: Person) -> list[str]:
        """Everything the bot said in the person's chat, oldest first: texts, every edit, captions, buttons'
        labels, and the answers to button presses."""

    @abc.abstractmethod
    def told_in_private(self, person: Person) -> list[str]:
        """What the bot said to the person in their private chat with it (an admin's alerts)."""

    @abc.abstractmethod
    def images(self, person: Person) -> list[bytes]:
        """Every image or file the bot sent into the person's chat."""

    @abc.abstractmethod
    def edits(self, person: Person) -> list[Shown]:
        """Every successful edit of a bot message in the person's chat, as the platform took it."""

    @abc.abstractmethod
    def advertised_commands(self) -> set[str]:
        """The commands the platform lists to everyone (Telegram's menu; Discord: no permission needed)."""

    # --- common -----------------------------------------------------------------------------------------

    def status(self, sent: Sent) -> str | None:
        """What the status message says now."""
        shown = self.history(sent)
        return shown[-1].text if shown else None

    async def wait_status(self, sent: Sent, check: Callable[[str], bool], *, what: str, timeout: float = 20) -> str:
        """Wait until the status message has shown a text that passes ``check``; return that text."""

        async def found() -> str | None:
            return next((s.text for s in self.history(sent) if check(s.text)), None)

        return await eventually(found, timeout=timeout, what=f"{self.platform} status to show {what}")

    async def reply(self, sent: Sent, *, timeout: float = 20) -> str:
        """The bot's first answer to the photo ("queued", or why not), past any "got it, queuing…"."""
        received = {texts.text("received", lang) for lang in texts.languages()}
        return await self.wait_status(sent, lambda text: text not in received, what="an answer", timeout=timeout)

    async def result(self, sent: Sent, *, timeout: float = 30) -> Result:
        """Wait for the photo's result."""

        async def found() -> Result | None:
            delivered = self.results(sent)
            return delivered[0] if delivered else None

        return await eventually(found, timeout=timeout, what=f"the {self.platform} result")

    async def start_worker(self, model: str = FIXED, **overrides: Any) -> WorkerHandle:
        """A real worker for this gateway (its queue declared alike), one photo in hand at a time by default."""
        settings = self.gateway.settings
        values: dict[str, Any] = {
            "prefetch": 1,
            "max_queue_length": settings.max_queue_length,
            "delivery_limit": settings.delivery_limit,
        }
        return await self._start_worker(self.gateway, model=model, **(values | overrides))

    async def jobs(self) -> list[Job]:
        async with self.gateway.sessions() as session:
            return list((await session.scalars(select(Job).order_by(Job.received_at))).all())

    async def blobs(self) -> int:
        async with self.gateway.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(Blob)) or 0)


# --- Telegram ------------------------------------------------------------------------------------------


class TelegramChat(ChatDriver):
    platform = "telegram"
    help_key = "help"

    def __init__(self, stack: TelegramStack, start_worker: Callable[..., Awaitable[WorkerHandle]]) -> None:
        super().__init__(stack.gateway, start_worker)
        self.stack = stack
        self.fake: FakeTelegram = stack.fake
        self._queries: dict[str, int] = {}  # callback query id -> chat, for the answers to button presses
        self._admins: dict[int, list[int]] = {}  # group chat -> its admins

    def person(self, n: int, *, language: str | None = None) -> Person:
        user = TELEGRAM_PERSON + n
        self.fake.set_language(user, language or "en")
        return Person(user, user, language)

    def member(self, n: int, group: int, *, admin: bool = False, language: str | None = None) -> Person:
        user, chat = TELEGRAM_PERSON + n, TELEGRAM_GROUP - group
        self.fake.set_language(user, language or "en")
        admins = self._admins.setdefault(chat, [])
        if admin and user not in admins:
            admins.append(user)
            self.fake.set_admins(chat, *admins)
        return Person(user, chat, language)

    async def send_photo(self, person: Person, data: bytes, *, filename: str = "photo.jpg") -> Sent:
        caption = None if person.chat > 0 else "/detect"  # in a group, a photo is the bot's when addressed to it
        update = self.fake.send_photo_update(person.chat, data=data, user_id=person.user, caption=caption)
        return Sent(person, update["message"])

    async def send_file(
        self, person: Person, data: bytes, *, filename: str, mime_type: str, size: int | None = None
    ) -> Sent:
        caption = None if person.chat > 0 else "/detect"
        update = self.fake.send_document_update(
            person.chat, data=data, file_name=filename, mime_type=mime_type, file_size=size, user_id=person.user,
            caption=caption,
        )  # fmt: skip
        return Sent(person, update["message"])

    async def command(self, person: Person, name: str, **options: str) -> Answer:
        words = " ".join(f"{key} {value}" for key, value in options.items())
        return await self._say(person, f"/{name} {words}".strip())

    async def settings(self, person: Person, *, conf: float, classes: str) -> Answer:
        await self._say(person, f"/settings conf {conf:g}")
        return await self._say(person, f"/settings classes {classes}")

    async def press_cancel(self, sent: Sent, *, by: Person | None = None) -> Answer:
        data = next((d for _, d in self.status_buttons(sent) if d.startswith("cancel:")), None)
        assert data is not None, f"the status message shows no Cancel button: {self.status(sent)!r}"
        return await self._press(sent.person.chat, by or sent.person, self._status_id(sent), data)

    async def requeue(self, admin: Person, listing: Answer) -> Answer:
        data = next(d for _, d in listing.buttons if d.startswith("requeue:"))
        since = time.monotonic()
        await self._press(admin.chat, admin, int(listing.ref), data)
        return await self._next_text(admin, since)

    async def _say(self, person: Person, text: str) -> Answer:
        since = time.monotonic()
        self.fake.send_text_update(person.chat, text, user_id=person.user)
        return await self._next_text(person, since)

    async def _next_text(self, person: Person, since: float) -> Answer:
        """The next text message to the chat after ``since``, with the photos sent before it (a chart)."""
        [call, *_] = await self.fake.wait_for_call(
            "sendMessage", lambda c: c.at >= since and _chat(c) == person.chat, timeout=20
        )
        photos = [
            c for c in self.fake.calls_of("sendPhoto") if c.ok and since <= c.at <= call.at and _chat(c) == person.chat
        ]
        return Answer(
            str(call.params["text"]),
            tuple(c.files["photo"] for c in photos),
            tuple(c.file_names["photo"] for c in photos),
            private=call.result["chat"]["type"] == "private",
            buttons=_keyboard(call.params.get("reply_markup")),
            ref=str(call.result["message_id"]),
        )

    async def _press(self, chat: int, person: Person, message_id: int, data: str) -> Answer:
        """``person`` presses a button of a message in ``chat`` (someone else's, in a group)."""
        query = self.fake.send_callback_query(chat, message_id, data, user_id=person.user)["callback_query"]
        self._queries[query["id"]] = chat
        [answered, *_] = await self.fake.wait_for_call(
            "answerCallbackQuery", lambda c: c.params.get("callback_query_id") == query["id"], timeout=20
        )
        return Answer(str(answered.params.get("text") or ""), private=True)

    def _status_call(self, sent: Sent) -> TelegramCall | None:
        photo, chat = int(sent.ref["message_id"]), sent.person.chat
        replies = [
            c for c in self.fake.calls_of("sendMessage") if c.ok and _chat(c) == chat and _replies_to(c) == photo
        ]
        return replies[0] if replies else None

    def _status_id(self, sent: Sent) -> int:
        call = self._status_call(sent)
        assert call is not None, "the bot has not answered the photo"
        return int(call.result["message_id"])

    def history(self, sent: Sent) -> list[Shown]:
        first = self._status_call(sent)
        if first is None:
            return []
        message_id = int(first.result["message_id"])
        edits = [
            Shown(c.at, str(c.params["text"]))
            for c in self.fake.calls_of("editMessageText")
            if c.ok and _chat(c) == sent.person.chat and int(c.params.get("message_id", 0)) == message_id
        ]
        return [Shown(first.at, str(first.params["text"])), *edits]

    def status_buttons(self, sent: Sent) -> list[tuple[str, str]]:
        message = self.fake.message(sent.person.chat, self._status_id(sent)) or {}
        return list(_keyboard(message.get("reply_markup")))

    def results(self, sent: Sent) -> list[Result]:
        photo = int(sent.ref["message_id"])
        status = self._status_call(sent)
        found = []
        for call in self.fake.calls:
            if not call.ok or _replies_to(call) != photo or call is status or _chat(call) != sent.person.chat:
                continue
            if call.method in ("sendPhoto", "sendDocument"):
                found.append(Result(str(call.params.get("caption") or ""), call.files.get(call.method[4:].lower())))
            elif call.method == "sendMessage":
                found.append(Result(str(call.params["text"]), None))
        return found

    def _objects_message(self, sent: Sent) -> tuple[int, list[tuple[str, str]]]:
        """The message that carries the result's buttons: the result itself, or (an album) the status message."""
        photo, chat = int(sent.ref["message_id"]), sent.person.chat
        for call in reversed(self.fake.calls):
            buttons = list(_keyboard(call.params.get("reply_markup")))
            if not call.ok or _chat(call) != chat or not any(d.startswith("objects:") for _, d in buttons):
                continue
            if call.method in ("sendPhoto", "sendDocument") and _replies_to(call) == photo:
                return int(call.result["message_id"]), buttons
            if call.method == "editMessageText" and int(call.params["message_id"]) == self._status_id(sent):
                return self._status_id(sent), buttons
        return 0, []

    def result_buttons(self, sent: Sent) -> list[tuple[str, str]]:
        return self._objects_message(sent)[1]

    async def rerun(self, person: Person, listing: Answer, data: str) -> tuple[Answer, Result | None]:
        since, listed = time.monotonic(), int(listing.ref)
        pressed = await self._press(person.chat, person, listed, data)
        if pressed.text:  # refused: an alert to the presser
            return pressed, None
        [status] = await self.fake.wait_for_call(
            "sendMessage", lambda c: c.at >= since and _chat(c) == person.chat and _replies_to(c) == listed, timeout=20
        )
        [result] = await self.fake.recorder.wait_for(
            lambda c: c.ok and c.method in ("sendPhoto", "sendDocument") and c.at >= since
            and _chat(c) == person.chat and _replies_to(c) not in (None, listed),
            count=1, timeout=30, what="the re-run's result",
        )  # fmt: skip
        answer = Answer(str(status.params["text"]), buttons=_keyboard(status.params.get("reply_markup")))
        return answer, Result(str(result.params.get("caption") or ""), result.files.get(result.method[4:].lower()))

    async def press_objects(self, sent: Sent, *, by: Person | None = None, n: int = 1) -> Answer:
        message_id, buttons = self._objects_message(sent)
        data = [d for _, d in buttons if d.startswith("objects:")][n - 1]
        since = time.monotonic()
        pressed = await self._press(sent.person.chat, by or sent.person, message_id, data)
        if pressed.text:  # refused (an alert), or nothing to show
            return pressed
        [call, *_] = await self.fake.recorder.wait_for(
            lambda c: c.ok and c.method in ("sendMediaGroup", "sendPhoto") and c.at >= since
            and _chat(c) == sent.person.chat and _replies_to(c) == message_id,
            count=1, timeout=20, what="the objects",
        )  # fmt: skip
        media = (
            call.params["media"] if call.method == "sendMediaGroup" else [{"media": "attach://photo", **call.params}]
        )
        images = tuple(call.files[str(item["media"]).removeprefix("attach://")] for item in media)
        return Answer("\n".join(str(item.get("caption") or "") for item in media), images)

    def said(self, person: Person) -> list[str]:
        said: list[str] = []
        for call in self.fake.calls:
            if not call.ok:
                continue
            if call.method == "answerCallbackQuery":
                if self._queries.get(str(call.params.get("callback_query_id"))) == person.chat:
                    said += [str(call.params["text"])] if call.params.get("text") else []
                continue
            if _chat(call) != person.chat:
                continue
            said += [str(call.params[key]) for key in ("text", "caption") if call.params.get(key)]
            said += [label for label, _ in _keyboard(call.params.get("reply_markup"))]
        return said

    def told_in_private(self, person: Person) -> list[str]:
        """Texts the bot (or the gateway, with its token) sent into the person's private chat (its id: theirs)."""
        return [str(c.params["text"]) for c in self.fake.calls
                if c.ok and c.method == "sendMessage" and str(c.params.get("chat_id")) == str(person.user)]  # fmt: skip

    def images(self, person: Person) -> list[bytes]:
        sends = ("sendPhoto", "sendDocument", "sendMediaGroup")
        return [data for c in self.fake.calls if c.method in sends and c.ok and _chat(c) == person.chat
                for data in c.files.values()]  # fmt: skip

    def edits(self, person: Person) -> list[Shown]:
        methods = ("editMessageText", "editMessageCaption", "editMessageReplyMarkup")
        return [
            Shown(c.at, str(c.params.get("text") or c.params.get("caption") or ""))
            for c in self.fake.calls
            if c.method in methods and c.ok and _chat(c) == person.chat
        ]

    def chat_actions(self, person: Person) -> list[Shown]:
        """The chat actions ("upload_photo": "sending photo…") the bot showed in the chat."""
        return [
            Shown(c.at, str(c.params["action"]))
            for c in self.fake.calls_of("sendChatAction")
            if c.ok and _chat(c) == person.chat
        ]

    def advertised_commands(self) -> set[str]:
        menus = [c for c in self.fake.calls_of("setMyCommands") if c.ok and not c.params.get("language_code")]
        return {str(command["command"]) for command in menus[-1].params["commands"]}


def _chat(call: TelegramCall) -> int | None:
    chat = call.params.get("chat_id")
    return int(chat) if chat is not None else None


def _replies_to(call: TelegramCall) -> int | None:
    reply = call.params.get("reply_parameters")
    if isinstance(reply, dict):
        return int(reply["message_id"])
    return int(call.params["reply_to_message_id"]) if "reply_to_message_id" in call.params else None


def _keyboard(markup: Any) -> tuple[tuple[str, str], ...]:
    rows = markup.get("inline_keyboard", []) if isinstance(markup, dict) else []
    return tuple((str(b["text"]), str(b.get("callback_data", ""))) for row in rows for b in row)


# --- Discord -------------------------------------------------------------------------------------------


class DiscordChat(ChatDriver):
    platform = "discord"
    help_key = "discord_help"

    def __init__(self, stack: DiscordStack, start_worker: Callable[..., Awaitable[WorkerHandle]]) -> None:
        super().__init__(stack.gateway, start_worker)
        self.stack = stack
        self.fake: FakeDiscord = stack.fake
        self._channels: dict[str, int] = {}  # interaction token -> channel, for what was said where

    def person(self, n: int, *, language: str | None = None) -> Person:
        return Person(DISCORD_PERSON + n, DISCORD_CHANNEL + n, language)

    def member(self, n: int, group: int, *, admin: bool = False, language: str | None = None) -> Person:
        user = DISCORD_PERSON + n
        everyone = discord.Permissions(view_channel=True, send_messages=True, use_application_commands=True)
        allowed = discord.Permissions(everyone.value | discord.Permissions(manage_channels=True).value)
        self.fake.member_permissions[user] = (allowed if admin else everyone).value
        return Person(user, DISCORD_GROUP_CHANNEL + group, language)

    async def send_photo(self, person: Person, data: bytes, *, filename: str = "photo.jpg") -> Sent:
        content_type = "image/png" if data.startswith(b"\x89PNG") else "image/jpeg"
        return await self.send_file(person, data, filename=filename, mime_type=content_type)

    async def send_file(
        self, person: Person, data: bytes, *, filename: str, mime_type: str, size: int | None = None
    ) -> Sent:
        attachment = self.fake.add_attachment(data, filename, mime_type, size=size)
        return Sent(person, await self._interact(person, "detect", attachments=[attachment]))

    async def command(self, person: Person, name: str, **options: str) -> Answer:
        sent = [{"name": key, "type": 3, "value": value} for key, value in options.items()]
        return await self._answer(await self._interact(person, name, options=sent))

    async def settings(self, person: Person, *, conf: float, classes: str) -> Answer:
        options = [
            {"name": "conf", "type": 4, "value": round(conf * 100)},  # an integer option: 5 to 95 (%)
            {"name": "classes", "type": 3, "value": classes},
        ]
        return await self._answer(await self._interact(person, "settings", options=options))

    async def press_cancel(self, sent: Sent, *, by: Person | None = None) -> Answer:
        data = next((d for _, d in self.status_buttons(sent) if d.startswith("cancel:")), None)
        assert data is not None, f"the status message shows no Cancel button: {self.status(sent)!r}"
        presser = by or sent.person
        state = self.fake.interaction_state(sent.ref["id"])
        assert state.original is not None
        pressed = await self.fake.create_component_interaction(
            state.original, data, user_id=presser.user, guild_id=GUILD, locale=_locale(presser)
        )
        self._channels[pressed["token"]] = presser.chat
        return await self._answer(pressed)

    async def requeue(self, admin: Person, listing: Answer) -> Answer:
        job_prefix = listing.text.split("• ", 1)[1][:8]
        return await self.command(admin, "dlq", requeue=job_prefix)

    async def _interact(
        self, person: Person, name: str, *, options: list[dict[str, Any]] | None = None, **extra: Any
    ) -> dict[str, Any]:
        interaction = await self.fake.create_slash_interaction(
            name,
            user_id=person.user,
            channel_id=person.chat,
            guild_id=GUILD,
            options=options,
            locale=_locale(person),
            **extra,
        )
        self._channels[interaction["token"]] = person.chat
        return interaction

    async def _answer(self, interaction: dict[str, Any]) -> Answer:
        """The callback's message, or (deferred) the first follow-up or edit that says something."""
        token = interaction["token"]
        callback, *_ = await self.fake.wait_for_call(f"POST /interactions/{interaction['id']}/*", timeout=20)
        assert callback.status == 200, callback
        if callback.json["type"] in (4, 7):
            data = callback.json.get("data") or {}
            choices = [*_components(data.get("components")), *((label, value) for label, value in _options(data))]
            return Answer(str(data.get("content") or ""), private=bool(int(data.get("flags") or 0) & FLAG_EPHEMERAL),
                          buttons=tuple(choices), ref=str(interaction["id"]))  # fmt: skip
        said, *_ = await self.fake.wait_for_call(
            f"/webhooks/{self.fake.application_id}/{token}",
            lambda c: c.status == 200 and c.method in ("POST", "PATCH") and bool((c.json or {}).get("content")),
            timeout=20,
        )
        if said.method == "POST":  # a follow-up says itself whether it is ephemeral
            flags = int(said.json.get("flags") or 0)
        else:  # an edit of the deferred response: ephemeral when the defer was
            flags = int((self.fake.interaction_state(interaction["id"]).original or {}).get("flags") or 0)
        return Answer(
            str(said.json["content"]),
            tuple(data for _, _, data in said.files),
            tuple(name for _, name, _ in said.files),
            private=bool(flags & FLAG_EPHEMERAL),
        )

    def _original_edits(self, token: str) -> list[Any]:
        path = f"/webhooks/{self.fake.application_id}/{token}/messages/@original"
        return [c for c in self.fake.calls if c.method == "PATCH" and c.path == path and c.status == 200]

    def history(self, sent: Sent) -> list[Shown]:
        edits = self._original_edits(sent.ref["token"])
        return [Shown(c.at, str(c.json["content"])) for c in edits if (c.json or {}).get("content") is not None]

    def status_buttons(self, sent: Sent) -> list[tuple[str, str]]:
        original = self.fake.interaction_state(sent.ref["id"]).original or {}
        return list(_components(original.get("components")))

    def results(self, sent: Sent) -> list[Result]:
        token = sent.ref["token"]
        followups = [
            c
            for c in self.fake.calls
            if c.method == "POST" and c.path == f"/webhooks/{self.fake.application_id}/{token}" and c.status == 200
        ]
        found = [Result(str(c.json.get("content") or ""), c.files[0][2] if c.files else None) for c in followups]
        mention = f"<@{sent.person.user}> "
        found += [  # the channel route (the token had expired): a bot message with the image, naming the person
            Result(str(c.json.get("content") or "").removeprefix(mention), c.files[0][2])
            for c in self.fake.calls
            if c.key == f"POST /channels/{sent.person.chat}/messages" and c.status == 200 and c.files
        ]
        return found

    def _result_message(self, sent: Sent) -> dict[str, Any] | None:
        state = self.fake.interaction_state(sent.ref["id"])
        found = [m for m in state.followups if any(d.startswith("objects:") for _, d in _components(m["components"]))]
        return found[-1] if found else None

    def result_buttons(self, sent: Sent) -> list[tuple[str, str]]:
        message = self._result_message(sent)
        return list(_components(message["components"])) if message else []

    async def rerun(self, person: Person, listing: Answer, data: str) -> tuple[Answer, Result | None]:
        listed = self.fake.interaction_state(listing.ref).original
        assert listed is not None, "the /history answer is not a message"
        menu = next(custom for _, custom, values in _selects(listed["components"]) if data in values)
        pressed = await self.fake.create_component_interaction(
            listed, menu, values=[data], user_id=person.user, guild_id=GUILD, locale=_locale(person)
        )
        self._channels[pressed["token"]] = person.chat
        status = await self._answer(pressed)
        token = pressed["token"]
        [result] = await self.fake.recorder.wait_for(
            lambda c: c.status == 200 and c.method == "POST" and bool(c.files)
            and c.path == f"/webhooks/{self.fake.application_id}/{token}",
            count=1, timeout=30, what="the re-run's result",
        )  # fmt: skip
        return status, Result(str(result.json.get("content") or ""), result.files[0][2])

    async def press_objects(self, sent: Sent, *, by: Person | None = None, n: int = 1) -> Answer:
        message = self._result_message(sent)
        assert message is not None, "the result has no Objects button"
        data = [d for _, d in _components(message["components"]) if d.startswith("objects:")][n - 1]
        presser = by or sent.person
        pressed = await self.fake.create_component_interaction(
            message, data, user_id=presser.user, guild_id=GUILD, locale=_locale(presser)
        )
        self._channels[pressed["token"]] = presser.chat
        return await self._answer(pressed)

    def said(self, person: Person) -> list[str]:
        said: list[str] = []
        for call in self.fake.calls:
            if call.status != 200 or not isinstance(call.json, dict) or self._channel_of(call) != person.chat:
                continue
            payload = call.json
            if call.path.startswith("/interactions/"):  # a callback: its message, if it has one
                payload = payload.get("data") or {} if payload.get("type") in (4, 7) else {}
            said += [str(payload["content"])] if payload.get("content") else []
            said += [label for label, _ in _components(payload.get("components"))]
        return said

    def told_in_private(self, person: Person) -> list[str]:
        """Texts posted into the bot's direct-message channel with the person."""
        return [str(m["content"]) for m in self.fake.dm_messages(person.user)]

    def images(self, person: Person) -> list[bytes]:
        return [data for c in self.fake.calls if c.status == 200 and self._channel_of(c) == person.chat
                for _, _, data in c.files]  # fmt: skip

    def _channel_of(self, call: Any) -> int | None:
        if call.path.startswith(("/webhooks/", "/interactions/")):
            return self._channels.get(call.path.split("/")[3])
        match = re.match(r"/channels/(\d+)/messages", call.path)
        return int(match.group(1)) if match else None

    def edits(self, person: Person) -> list[Shown]:
        return [
            Shown(c.at, str((c.json or {}).get("content") or ""))
            for c in self.fake.calls
            if c.method == "PATCH" and c.status == 200 and self._channel_of(c) == person.chat
        ]

    def advertised_commands(self) -> set[str]:
        return {c["name"] for c in self.fake.commands() if c.get("default_member_permissions") in (None, "0")}


def _locale(person: Person) -> str:
    return person.language or "en-US"


def _options(data: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """Every choice of every select menu in a message: (label, value)."""
    for component in _walk(data.get("components")):
        if component.get("type") == 3:
            yield from ((str(o["label"]), str(o["value"])) for o in component.get("options") or [])


def _walk(rows: Any) -> Iterator[dict[str, Any]]:
    for component in rows or []:
        yield component
        yield from _walk(component.get("components"))


def _selects(rows: Any) -> Iterator[tuple[str, str, list[str]]]:
    """Each select menu among a message's components: (placeholder, custom id, its options' values)."""
    for component in rows or []:
        if component.get("type") == 3:
            values = [str(option["value"]) for option in component.get("options") or []]
            yield str(component.get("placeholder") or ""), str(component["custom_id"]), values
        yield from _selects(component.get("components"))


def _components(rows: Any) -> Iterator[tuple[str, str]]:
    for component in rows or []:
        if component.get("type") == 2:
            yield str(component.get("label") or ""), str(component.get("custom_id") or "")
        yield from _components(component.get("components"))


# --- the catalogue's sentences as patterns -------------------------------------------------------------


def pattern(key: str, lang: str | None = None, **known: Any) -> re.Pattern[str]:
    """The catalogue's sentence ``key`` in ``lang`` as a regular expression: the fields given in ``known``
    are filled in, an ``{eta}`` is any of the catalogue's estimates ("3 s", "2 min"), any other field is
    any text. ``pattern("queued", position=2)`` matches "Queued — #2 in line, about 3 s."."""
    template = texts.translation(lang).gettext(texts.MESSAGES[key])
    out = []
    for literal, name, spec, _ in string.Formatter().parse(template):
        out.append(re.escape(literal))
        if name is None:
            continue
        if name in known:
            out.append(re.escape(format(known[name], spec or "")))
        elif name == "eta":
            out.append(eta_pattern(lang))
        else:
            out.append(".+?")
    return re.compile("".join(out))


def eta_pattern(lang: str | None = None) -> str:
    forms = {
        texts.ntext(key, n, lang).replace(str(n), "\0") for key in ("eta_seconds", "eta_minutes") for n in (1, 2, 5)
    }
    return "(?:" + "|".join(re.escape(form).replace("\0", r"\d+") for form in sorted(forms)) + ")"


def matches(key: str, lang: str | None = None, **known: Any) -> Callable[[str], bool]:
    compiled = pattern(key, lang, **known)
    return lambda text: compiled.fullmatch(text) is not None


ALLOWED_LATIN = frozenset({"JPEG", "WebP", "JSON", "detectbot", "telegram", "discord"})
"""Latin words a Russian text may hold: formats, the product's and the platforms' names."""


def english_words(text: str) -> list[str]:
    """Latin words of four letters or more in ``text``, other than commands (/help), job ids and ALLOWED_LATIN."""
    text = re.sub(r"/\w+|\b[0-9a-f]{8,32}\b|<@\d+>", " ", text)
    return [word for word in re.findall(r"[A-Za-z]{4,}", text) if word not in ALLOWED_LATIN]


StartChat = Callable[..., Awaitable[ChatDriver]]
"""The ``start_chat`` fixture: ``await start_chat(admins=(1,), gateway={...})``."""


# --- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture(params=PLATFORMS)
def start_chat(
    request: pytest.FixtureRequest,
    start_gateway: Callable[..., Awaitable[GatewayHandle]],
    start_worker: Callable[..., Awaitable[WorkerHandle]],
) -> StartChat:
    """Start the platform's fake, a gateway and the bot (no worker yet); one test per platform.

    (``start_gateway`` comes first so that the workers stop before the gateway does, as in the stacks.)"""
    platform = str(request.param)
    start_stack = request.getfixturevalue(f"start_{platform}")

    async def start(*, admins: tuple[int, ...] = (), gateway: dict[str, Any] | None = None) -> ChatDriver:
        """``admins``: the numbers of the people (``driver.person(n)``) in DETECTBOT_ADMIN_IDS."""
        bot: dict[str, Any] = {}
        if admins:
            first = TELEGRAM_PERSON if platform == "telegram" else DISCORD_PERSON
            bot |= {"admin_ids": [first + n for n in admins], "admin_api_key": SecretStr(ADMIN_KEY)}
            gateway = {"admin_ids": [f"{platform}:{first + n}" for n in admins], **(gateway or {})}
        stack = await start_stack(worker=False, gateway_overrides=gateway, **bot)
        if platform == "telegram":
            return TelegramChat(stack, start_worker)
        return DiscordChat(stack, start_worker)

    return start


@pytest.fixture
def gate(
    start_worker: Callable[..., Awaitable[WorkerHandle]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Gate]:
    """The pipe ``py:tests.detectors:gated`` waits on; opened for good before the workers stop."""
    opened = Gate(str(tmp_path / "gate"))
    monkeypatch.setenv(GATE_ENV, opened.path)
    yield opened
    opened.close()
