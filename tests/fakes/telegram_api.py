"""A wire-protocol fake of the Telegram Bot API, for driving the real python-telegram-bot in tests.

``FakeTelegram`` is a small aiohttp server on 127.0.0.1 that answers like api.telegram.org:
``POST /bot<token>/<method>`` returns ``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code": ...,
"description": ...}``, and ``GET /file/bot<token>/<file_path>`` serves file bytes. Point PTB at it with
``base_url=fake.base_url, base_file_url=fake.base_file_url``.

Tests inject updates with the ``send_*_update`` builders (or ``inject_raw``), inject failures with
``fail_next``, and assert on the recorded ``calls`` / ``wait_for_call`` / ``bot_messages``.

Deliberate behaviour, mirroring Telegram where it matters to a bot:

* getUpdates follows Telegram's offset rule (an offset confirms, i.e. forgets, every *delivered* update
  below it) and long-polls on an event, waking as soon as an update is injected. A newer getUpdates
  terminates a pending one with 409 Conflict, as Telegram does. One deliberate deviation: an injected
  update is delivered at least once even if its update_id is below the current offset, so re-injecting an
  already confirmed update simulates a redelivery the bot must tolerate.
* Text and captions honour ``parse_mode``: HTML and Markdown(V2) markup is stripped from the stored text,
  and markup Telegram would reject (unknown HTML tags, unescaped MarkdownV2 characters such as ``.``)
  gets Telegram's 400 "can't parse entities". Messages keep no entities for the bot's own sends.
* Limits: 4096-character texts, 1024-character captions, 20 MB getFile downloads, 50 MB uploads.

For crash tests: ``base_url_for(name)`` / ``base_file_url_for(name)`` give each client its own address, so
every recorded ``Call`` says who made it (``call.client``); ``hold_next`` takes a call in (a sendPhoto's
message is in the chat) but keeps its answer back until released, so a test can kill the caller meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import mimetypes
import re
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, Self

from aiohttp import BodyPartReader, web

from tests.fakes.recorder import Hold, Recorder

JSONDict = dict[str, Any]

DOWNLOAD_LIMIT = 20 * 1024 * 1024  # getFile refuses bigger files for bots
UPLOAD_LIMIT = 50 * 1024 * 1024
MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024

# Parameters that are plain strings on the wire; PTB JSON-encodes every non-str value.
_STRING_PARAMS = frozenset(
    {"text", "caption", "parse_mode", "url", "secret_token", "callback_query_id", "file_id", "action"}
    | {"language_code", "inline_message_id", "business_connection_id", "photo", "document", "video", "animation"}
)
_CHAT_ACTIONS = frozenset(
    {"typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice"}
    | {"upload_document", "choose_sticker", "find_location", "record_video_note", "upload_video_note"}
)
_DEFAULT_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
    500: "Internal Server Error",
    502: "Bad Gateway",
}
ANONYMOUS_ADMIN = {"id": 1087968824, "is_bot": True, "first_name": "Group", "username": "GroupAnonymousBot"}
CHANNEL_BOT = {"id": 136817688, "is_bot": True, "first_name": "Channel", "username": "Channel_Bot"}
_ADMIN_RIGHTS = (
    "is_anonymous", "can_manage_chat", "can_delete_messages", "can_manage_video_chats", "can_restrict_members",
    "can_promote_members", "can_change_info", "can_invite_users", "can_post_stories", "can_edit_stories",
    "can_delete_stories",
)  # fmt: skip
_COMMAND_RE = re.compile(r"(?<![\w/])/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?")
_MENTION_RE = re.compile(r"(?<![\w@])@[A-Za-z0-9_]{3,32}")
_BOT_COMMAND_RE = re.compile(r"[a-z0-9_]{1,32}")


class ApiError(Exception):
    """An error answer of the Bot API."""

    def __init__(
        self,
        status: int,
        description: str | None = None,
        *,
        retry_after: int | None = None,
        migrate_to_chat_id: int | None = None,
    ):
        if status == 429:
            retry_after = retry_after or 1
            description = description or f"Too Many Requests: retry after {retry_after}"
        self.status = status
        self.description = description or _DEFAULT_DESCRIPTIONS.get(status, f"Error {status}")
        self.retry_after = retry_after
        self.migrate_to_chat_id = migrate_to_chat_id
        super().__init__(f"{status} {self.description}")

    def body(self) -> JSONDict:
        body: JSONDict = {"ok": False, "error_code": self.status, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        if self.migrate_to_chat_id is not None:
            body["parameters"] = {"migrate_to_chat_id": self.migrate_to_chat_id}
        return body


@dataclass
class Call:
    """One request the fake answered."""

    method: str
    params: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)
    file_names: dict[str, str] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)
    status: int = 0
    result: Any = None  # the "result" of a successful answer, else the error description
    client: str = ""  # the name in the address the caller used (``base_url_for``), "" for the plain one

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class _StoredFile:
    file_id: str
    file_unique_id: str
    data: bytes
    file_size: int
    file_path: str


@dataclass
class _Queued:
    update: JSONDict
    delivered: bool = False

    @property
    def update_id(self) -> int:
        return int(self.update["update_id"])


class _Signal:
    """Wakes every current waiter at once; waiters then re-check their own condition."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def fire(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, seconds: float) -> None:
        event = self._event
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await event.wait()


class FakeTelegram:
    """The fake Bot API server. Use ``async with FakeTelegram() as fake:`` or ``start()``/``close()``."""

    def __init__(
        self,
        token: str = "123456:TEST-token-aaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        bot_username: str = "detectbot_test_bot",
    ) -> None:
        self.token = token
        self.bot_id = int(token.split(":", 1)[0])
        self.bot_username = bot_username
        self.base_url = ""
        self.base_file_url = ""
        self.recorder: Recorder[Call] = Recorder(_describe)
        self.webhook_url = ""
        self.webhook_secret_token: str | None = None
        self._runner: web.AppRunner | None = None
        self._closing = False
        self._updates_signal = _Signal()
        self._queue: list[_Queued] = []
        self._poll_generation = 0
        self._waiting_polls = 0
        self._next_update_id = 10_001
        self._next_message_ids: dict[int, int] = {}
        self._chats: dict[int, JSONDict] = {}
        self._messages: dict[tuple[int, int], JSONDict] = {}
        self._deleted: dict[tuple[int, int], JSONDict] = {}
        self._files: dict[str, _StoredFile] = {}
        self._files_by_path: dict[str, _StoredFile] = {}
        self._file_counter = itertools.count(1)
        self._media_group_counter = itertools.count(13_000_000_000_000_001)
        self._callback_counter = itertools.count(4_000_000_000_000_001)
        self._open_callback_queries: set[str] = set()
        self._commands: dict[str, list[JSONDict]] = {}
        self._failures: dict[str, list[ApiError]] = {}
        self._migrated: dict[int, int] = {}  # a group's id -> the supergroup it became
        self._languages: dict[int, str] = {}  # user id -> the IETF language tag their app sends
        self._admins: dict[int, set[int]] = {}  # chat id -> its administrators
        self._owners: dict[int, int] = {}  # chat id -> the administrator who created it
        self._methods: dict[str, Callable[[Call], Any]] = {
            "getMe": lambda _call: self.bot_user,
            "logOut": lambda _call: True,
            "close": lambda _call: True,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "getUpdates": self._get_updates,  # the only coroutine
            "getFile": self._get_file,
            "sendMessage": self._send_message,
            "sendPhoto": self._send_photo,
            "sendDocument": self._send_document,
            "sendMediaGroup": self._send_media_group,
            "sendAnimation": self._send_animation,
            "editMessageText": self._edit_message_text,
            "editMessageCaption": self._edit_message_caption,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "sendChatAction": self._send_chat_action,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "answerCallbackQuery": self._answer_callback_query,
            "getChatMember": self._get_chat_member,
        }
        # Telegram matches method names case-insensitively.
        self._method_names = {name.lower(): name for name in self._methods}

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        app = web.Application(client_max_size=UPLOAD_LIMIT + 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{file_path:.+}", self._handle_download)
        app.router.add_route("*", "/c/{client}/bot{token}/{method}", self._handle_api)
        app.router.add_get("/c/{client}/file/bot{token}/{file_path:.+}", self._handle_download)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}/bot"
        self.base_file_url = f"http://127.0.0.1:{port}/file/bot"

    async def close(self) -> None:
        self._closing = True
        self.recorder.release_all()
        self._updates_signal.fire()  # pending long polls answer [] at once
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def bot_user(self) -> JSONDict:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "DetectBot",
            "username": self.bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    # ------------------------------------------------------------------ test-facing helpers

    def fail_next(
        self,
        method: str,
        status: int,
        *,
        retry_after: int | None = None,
        description: str | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with this error (429 always has retry_after)."""
        error = ApiError(status, description, retry_after=retry_after)
        self._failures.setdefault(method.lower(), []).extend([error] * times)

    def migrate(self, chat_id: int, to_chat_id: int) -> None:
        """The group ``chat_id`` became the supergroup ``to_chat_id``: every call naming the old id is refused with
        400 and ``parameters.migrate_to_chat_id``, as Telegram does."""
        self._migrated[chat_id] = to_chat_id

    def base_url_for(self, client: str) -> str:
        """``base_url`` for one named client: its calls are recorded with ``client`` set to this name."""
        return self.base_url.removesuffix("/bot") + f"/c/{client}/bot"

    def base_file_url_for(self, client: str) -> str:
        return self.base_file_url.removesuffix("/file/bot") + f"/c/{client}/file/bot"

    @property
    def calls(self) -> list[Call]:
        """Every call answered, oldest first."""
        return self.recorder.calls

    def hold_next(self, method: str, predicate: Callable[[Call], bool] | None = None) -> Hold[Call]:
        """Take the next matching call in but answer it only after ``hold.release()``.

        The call takes effect at once (a sendPhoto's message is in the chat; a ``downloadFile`` is the file
        download, answered with its bytes on release); ``hold.arrived`` is set when it came, ``hold.call`` says
        which it was. The caller meanwhile waits for the answer, as it would for a slow Telegram.
        """
        return self.recorder.hold_next(
            lambda call: call.method.lower() == method.lower() and (predicate is None or predicate(call))
        )

    def drop_hold(self, hold: Hold[Call]) -> None:
        """Forget a hold that has not caught a call (yet); a caught one is released instead."""
        self.recorder.drop_hold(hold)

    def set_admins(self, chat_id: int, *user_ids: int) -> None:
        """These users administer the group (the first one owns it); everyone else in it is a plain member."""
        self._admins[chat_id] = set(user_ids)
        if user_ids:
            self._owners[chat_id] = user_ids[0]

    def set_language(self, user_id: int, language_code: str) -> None:
        """From now on this user's updates carry ``from.language_code`` (the app's language; "en" otherwise)."""
        self._languages[user_id] = language_code

    def _sender(self, user_id: int) -> JSONDict:
        return _user(user_id, self._languages.get(user_id, "en"))

    def calls_of(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method.lower() == method.lower()]

    async def wait_for_call(
        self,
        method: str,
        predicate: Callable[[Call], bool] | None = None,
        *,
        timeout: float = 10.0,
        count: int = 1,
    ) -> list[Call]:
        """Wait until ``count`` successful calls of ``method`` matching ``predicate`` were answered; all of them."""
        return await self.recorder.wait_for(
            lambda c: c.method.lower() == method.lower() and c.ok and (predicate is None or predicate(c)),
            count=count, timeout=timeout, what=f"successful {method} call(s)",
        )  # fmt: skip

    async def wait_until_polling(self, *, timeout: float = 10.0) -> None:
        """Wait until a getUpdates long poll is waiting at the server."""
        await self.recorder.wait_until(lambda: self._waiting_polls > 0, timeout=timeout, what="a waiting long poll")

    def bot_messages(self, chat_id: int, *, include_deleted: bool = False) -> list[JSONDict]:
        """Messages the bot sent to ``chat_id`` in their current state, oldest first.

        Deleted messages are left out unless ``include_deleted``; then they carry ``"deleted": True``.
        """
        found = [m for (chat, _), m in self._messages.items() if chat == chat_id]
        if include_deleted:
            found += [{**m, "deleted": True} for (chat, _), m in self._deleted.items() if chat == chat_id]
        mine = [copy.deepcopy(m) for m in found if m["from"]["id"] == self.bot_id]
        return sorted(mine, key=lambda m: m["message_id"])

    def message(self, chat_id: int, message_id: int) -> JSONDict | None:
        """Any message the fake knows (from users or the bot), or None if unknown or deleted."""
        found = self._messages.get((chat_id, message_id))
        return copy.deepcopy(found) if found is not None else None

    @property
    def pending_updates(self) -> list[JSONDict]:
        """Updates not yet confirmed by a getUpdates offset."""
        return [q.update for q in self._queue]

    def add_file(self, data: bytes, *, file_size: int | None = None, file_name: str | None = None) -> tuple[str, str]:
        """Register bytes as a Telegram file; ``file_size`` may pretend a different (e.g. 30 MB) size."""
        suffix = "." + file_name.rsplit(".", 1)[1] if file_name and "." in file_name else ".jpg"
        stored = self._store_file(data, "documents" if file_name else "photos", suffix, file_size)
        return stored.file_id, stored.file_unique_id

    def file_bytes(self, file_id: str) -> bytes:
        return self._files[file_id].data

    # ------------------------------------------------------------------ update builders

    def send_text_update(
        self,
        chat_id: int,
        text: str,
        *,
        user_id: int | None = None,
        chat_type: str | None = None,
        reply_to: JSONDict | None = None,
        message_id: int | None = None,
        update_id: int | None = None,
    ) -> JSONDict:
        """A user's text message; bot_command and mention entities are computed from the text."""
        content: JSONDict = {"text": text}
        if entities := _entities(text):
            content["entities"] = entities
        return self._user_message(chat_id, content, user_id, chat_type, reply_to, message_id, update_id)

    def send_photo_update(
        self,
        chat_id: int,
        *,
        data: bytes,
        user_id: int | None = None,
        caption: str | None = None,
        chat_type: str | None = None,
        media_group_id: str | None = None,
        reply_to: JSONDict | None = None,
        message_id: int | None = None,
        update_id: int | None = None,
    ) -> JSONDict:
        """A user's photo: several PhotoSize entries, the largest (last) one being ``data``."""
        content: JSONDict = {"photo": self._photo_sizes(data)}
        content.update(_caption_fields(caption))
        if media_group_id is not None:
            content["media_group_id"] = media_group_id
        return self._user_message(chat_id, content, user_id, chat_type, reply_to, message_id, update_id)

    def send_document_update(
        self,
        chat_id: int,
        *,
        data: bytes,
        file_name: str,
        mime_type: str,
        file_size: int | None = None,
        user_id: int | None = None,
        caption: str | None = None,
        chat_type: str | None = None,
        reply_to: JSONDict | None = None,
        message_id: int | None = None,
        update_id: int | None = None,
    ) -> JSONDict:
        """A user's document (``file_size`` may pretend a size other than ``len(data)``)."""
        stored = self._store_file(data, "documents", _suffix(file_name, mime_type), file_size)
        document = _file_fields(stored) | {"file_name": file_name, "mime_type": mime_type}
        content: JSONDict = {"document": document, **_caption_fields(caption)}
        return self._user_message(chat_id, content, user_id, chat_type, reply_to, message_id, update_id)

    def send_sticker_update(
        self, chat_id: int, *, user_id: int | None = None, chat_type: str | None = None
    ) -> JSONDict:
        stored = self._store_file(b"RIFF\x00\x00\x00\x00WEBPVP8 ", "stickers", ".webp", None)
        sticker = _file_fields(stored) | {
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "type": "regular",
            "emoji": "\N{SLIGHTLY SMILING FACE}",
        }
        return self._user_message(chat_id, {"sticker": sticker}, user_id, chat_type, None, None, None)

    def send_video_update(
        self,
        chat_id: int,
        *,
        data: bytes = b"\x00\x00\x00\x18ftypmp42",
        user_id: int | None = None,
        caption: str | None = None,
        chat_type: str | None = None,
        duration: int = 3,
        width: int = 640,
        height: int = 360,
        file_size: int | None = None,
        media_group_id: str | None = None,
    ) -> JSONDict:
        """A user's video (an MP4, as Telegram keeps it); ``duration`` in whole seconds, as Telegram says it."""
        stored = self._store_file(data, "videos", ".mp4", file_size)
        video = _file_fields(stored) | {"width": width, "height": height, "duration": duration,
                                         "mime_type": "video/mp4", "file_name": "video.mp4"}  # fmt: skip
        content: JSONDict = {"video": video, **_caption_fields(caption)}
        if media_group_id is not None:
            content["media_group_id"] = media_group_id
        return self._user_message(chat_id, content, user_id, chat_type, None, None, None)

    def send_animation_update(
        self,
        chat_id: int,
        *,
        data: bytes,
        duration: int,
        width: int,
        height: int,
        user_id: int | None = None,
        caption: str | None = None,
        chat_type: str | None = None,
        file_size: int | None = None,
        file_name: str = "animation.gif.mp4",
    ) -> JSONDict:
        """A user's GIF, as Telegram hands it to a bot: converted to an MP4 ``animation`` (``data`` is that MP4),
        with the same file as its ``document`` too (for clients that know no animations)."""
        stored = self._store_file(data, "animations", ".mp4", file_size)
        document = _file_fields(stored) | {"file_name": file_name, "mime_type": "video/mp4"}
        animation = document | {"width": width, "height": height, "duration": duration}
        content: JSONDict = {"animation": animation, "document": document, **_caption_fields(caption)}
        return self._user_message(chat_id, content, user_id, chat_type, None, None, None)

    def send_video_note_update(
        self, chat_id: int, *, data: bytes, duration: int, length: int = 240, user_id: int | None = None
    ) -> JSONDict:
        """A user's round video note (a square MP4 of ``length`` pixels a side)."""
        stored = self._store_file(data, "video_notes", ".mp4", None)
        note = _file_fields(stored) | {"length": length, "duration": duration}
        return self._user_message(chat_id, {"video_note": note}, user_id, None, None, None, None)

    def send_as_anonymous_admin(self, chat_id: int, *, text: str | None = None, data: bytes | None = None) -> JSONDict:
        """A group's anonymous admin writes (a text, or a photo): ``from`` is GroupAnonymousBot, ``sender_chat`` the
        group itself, as Telegram sends it."""
        return self._stand_in_message(chat_id, ANONYMOUS_ADMIN, self._chat(chat_id), text=text, data=data)

    def send_as_channel(
        self, chat_id: int, channel_id: int, *, text: str | None = None, data: bytes | None = None
    ) -> JSONDict:
        """Someone posts into the group as a channel: ``from`` is Channel_Bot, ``sender_chat`` the channel."""
        channel = {"id": channel_id, "type": "channel", "title": f"Channel {abs(channel_id)}"}
        return self._stand_in_message(chat_id, CHANNEL_BOT, channel, text=text, data=data)

    def edit_caption_update(self, message: JSONDict, caption: str) -> JSONDict:
        """The sender edits a message's caption: an ``edited_message`` update with the same message id."""
        edited = {**_without_reply(message), **_caption_fields(caption), "edit_date": int(time.time())}
        return self.inject_raw({"edited_message": edited})

    def _stand_in_message(
        self, chat_id: int, stand_in: JSONDict, sender_chat: JSONDict, *, text: str | None, data: bytes | None
    ) -> JSONDict:
        self._chat(chat_id)
        content: JSONDict = {"sender_chat": sender_chat}
        if data is not None:
            content |= {"photo": self._photo_sizes(data), **_caption_fields(text)}
        else:
            content |= {"text": text or ""}
            if entities := _entities(text or ""):
                content["entities"] = entities
        return self.inject_raw({"message": self._new_message(chat_id, dict(stand_in), content, message_id=None)})

    def send_callback_query(self, chat_id: int, message_id: int, data: str, *, user_id: int | None = None) -> JSONDict:
        """A user pressing an inline button with callback ``data`` under a message the fake knows."""
        message = self._messages[(chat_id, message_id)]
        query_id = str(next(self._callback_counter))
        self._open_callback_queries.add(query_id)
        query = {
            "id": query_id,
            "from": self._sender(user_id if user_id is not None else _default_user_id(chat_id)),
            "message": _without_reply(message),
            "chat_instance": f"instance-{chat_id}",
            "data": data,
        }
        return self.inject_raw({"callback_query": query})

    def inject_raw(self, update: JSONDict) -> JSONDict:
        """Enqueue any update dict; an ``update_id`` is assigned if missing. Returns the update.

        Re-injecting an update (same update_id) delivers it again, even after it was confirmed.
        """
        if "update_id" not in update:
            update["update_id"] = self._next_update_id
        self._next_update_id = max(self._next_update_id, int(update["update_id"]) + 1)
        for key in ("message", "edited_message", "channel_post", "edited_channel_post"):
            if key in update:
                self._remember(update[key])
        self._queue.append(_Queued(update))
        self._updates_signal.fire()
        return update

    # ------------------------------------------------------------------ HTTP plumbing

    async def _handle_api(self, request: web.Request) -> web.Response:
        name = request.match_info["method"]
        call = Call(method=self._method_names.get(name.lower(), name), params={})
        call.client = request.match_info.get("client", "")
        try:
            call.params, call.files, call.file_names = await _read_params(request)
            if request.match_info["token"] != self.token:
                raise ApiError(401)
            if name.lower() not in self._method_names:
                raise ApiError(404)
            if failures := self._failures.get(name.lower()):
                raise failures.pop(0)
            if (moved := self._migrated.get(call.params.get("chat_id", 0))) is not None:
                upgraded = "Bad Request: group chat was upgraded to a supergroup chat"
                raise ApiError(400, upgraded, migrate_to_chat_id=moved)
            handler = self._methods[call.method]
            result = await handler(call) if call.method == "getUpdates" else handler(call)
        except ApiError as error:
            call.status, call.result, body = error.status, error.description, error.body()
        else:
            call.status, call.result, body = 200, result, {"ok": True, "result": result}
        await self.recorder.held(call)
        self.recorder.record(call)
        return web.json_response(body, status=call.status)

    async def _handle_download(self, request: web.Request) -> web.Response:
        path = request.match_info["file_path"]
        call = Call(method="downloadFile", params={"file_path": path}, client=request.match_info.get("client", ""))
        stored = self._files_by_path.get(path)
        if request.match_info["token"] != self.token or stored is None:
            error = ApiError(404 if stored is None else 401)
            call.status, call.result = error.status, error.description
            self.recorder.record(call)
            return web.json_response(error.body(), status=error.status)
        call.status, call.result = 200, stored.file_id
        await self.recorder.held(call)
        self.recorder.record(call)
        return web.Response(body=stored.data, content_type="application/octet-stream")

    # ------------------------------------------------------------------ updates & webhook

    async def _get_updates(self, call: Call) -> list[JSONDict]:
        if self.webhook_url:
            message = "can't use getUpdates method while webhook is active; "
            message += "use deleteWebhook to delete the webhook first"
            raise ApiError(409, f"Conflict: {message}")
        offset = int(call.params.get("offset", 0))
        limit = min(max(int(call.params.get("limit", 100)), 1), 100)
        timeout = float(call.params.get("timeout", 0))
        if offset > 0:  # confirms (forgets) every delivered update below the offset
            self._queue = [q for q in self._queue if not (q.delivered and q.update_id < offset)]
        elif offset < 0:  # keep only the last -offset updates
            self._queue = self._queue[offset:]
        self._poll_generation += 1
        generation = self._poll_generation
        self._updates_signal.fire()  # terminates an older pending long poll
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if generation != self._poll_generation:
                raise ApiError(409)
            batch = sorted(self._queue, key=lambda q: q.update_id)[:limit]
            remaining = deadline - loop.time()
            if batch or remaining <= 0 or self._closing:
                break
            self._waiting_polls += 1
            self.recorder.notify()
            try:
                await self._updates_signal.wait(remaining)
            finally:
                self._waiting_polls -= 1
        for queued in batch:
            queued.delivered = True
        return [q.update for q in batch]

    def _set_webhook(self, call: Call) -> bool:
        self.webhook_url = str(call.params.get("url", ""))
        self.webhook_secret_token = call.params.get("secret_token")
        if call.params.get("drop_pending_updates"):
            self._queue.clear()
        return True

    def _delete_webhook(self, call: Call) -> bool:
        self.webhook_url, self.webhook_secret_token = "", None
        if call.params.get("drop_pending_updates"):
            self._queue.clear()
        return True

    def _get_webhook_info(self, _call: Call) -> JSONDict:
        return {
            "url": self.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._queue),
        }

    # ------------------------------------------------------------------ files

    def _get_file(self, call: Call) -> JSONDict:
        stored = self._files.get(str(call.params.get("file_id", "")))
        if stored is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        if stored.file_size > DOWNLOAD_LIMIT:
            raise ApiError(400, "Bad Request: file is too big")
        return _file_fields(stored) | {"file_path": stored.file_path}

    def _store_file(self, data: bytes, folder: str, suffix: str, file_size: int | None) -> _StoredFile:
        n = next(self._file_counter)
        stored = _StoredFile(
            file_id=f"FAKE{folder[:3].upper()}{n:06d}-{self.bot_id}",
            file_unique_id=f"U{n:06d}",
            data=bytes(data),
            file_size=len(data) if file_size is None else file_size,
            file_path=f"{folder}/file_{n}{suffix}",
        )
        self._files[stored.file_id] = stored
        self._files_by_path[stored.file_path] = stored
        return stored

    def _photo_sizes(self, data: bytes) -> list[JSONDict]:
        """Telegram-like thumbnails (same bytes, smaller declared sizes) plus the full-size photo."""
        width, height = _image_size(data) or (1280, 960)
        longest = max(width, height)
        sides = [side for side in (90, 320, 800) if side < longest] or [max(1, longest // 2)]
        sizes: list[JSONDict] = []
        declared = 0
        for side in sides:
            scale = side / longest
            declared = max(declared + 1, int(len(data) * scale * scale))
            thumb = self._store_file(data, "photos", ".jpg", declared)
            dims = {"width": max(1, round(width * scale)), "height": max(1, round(height * scale))}
            sizes.append(_file_fields(thumb) | dims)
        full = self._store_file(data, "photos", ".jpg", None)
        return [*sizes, _file_fields(full) | {"width": width, "height": height}]

    def _input_file(self, call: Call, value: Any, field_name: str) -> tuple[bytes, str | None]:
        """The bytes of an uploaded file (multipart part or ``attach://``) or of a known file_id."""
        ref = str(value) if value is not None else f"attach://{field_name}"
        part = ref.removeprefix("attach://")
        if part in call.files:
            return call.files[part], call.file_names.get(part)
        if ref in self._files:
            return self._files[ref].data, None
        raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")

    # ------------------------------------------------------------------ sending

    def _send_message(self, call: Call) -> JSONDict:
        text = _render(str(call.params.get("text", "")), call.params.get("parse_mode"))
        if not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if len(text) > MAX_TEXT_LENGTH:
            raise ApiError(400, "Bad Request: message is too long")
        return self._bot_message(call, {"text": text})

    def _send_photo(self, call: Call) -> JSONDict:
        data, _ = self._input_file(call, call.params.get("photo"), "photo")
        return self._bot_message(call, {"photo": self._photo_sizes(data), **self._caption(call.params)})

    def _send_document(self, call: Call) -> JSONDict:
        data, name = self._input_file(call, call.params.get("document"), "document")
        return self._bot_message(call, {"document": self._document(data, name), **self._caption(call.params)})

    def _send_animation(self, call: Call) -> JSONDict:
        """An animation (GIF, or H.264 MP4 without sound): kept as Telegram keeps it, an MP4 ``animation`` with
        its ``document``; the sizes a client passes (Telegram reads them from the file)."""
        data, name = self._input_file(call, call.params.get("animation"), "animation")
        if len(data) > UPLOAD_LIMIT:
            raise ApiError(413, "Request Entity Too Large")
        document = self._document(data, name or "animation.mp4")
        animation = document | {
            "width": int(call.params.get("width") or 0),
            "height": int(call.params.get("height") or 0),
            "duration": int(call.params.get("duration") or 0),
        }
        return self._bot_message(call, {"animation": animation, "document": document, **self._caption(call.params)})

    def _send_media_group(self, call: Call) -> list[JSONDict]:
        items = call.params.get("media")
        if not isinstance(items, list) or not items:
            raise ApiError(400, 'Bad Request: parameter "media" is required')
        group_id = str(next(self._media_group_counter))
        contents: list[JSONDict] = []
        for item in items:  # validate everything before sending anything
            data, name = self._input_file(call, item.get("media"), "media")
            kind = item.get("type")
            if kind == "photo":
                content: JSONDict = {"photo": self._photo_sizes(data)}
            elif kind == "document":
                content = {"document": self._document(data, name)}
            else:
                raise ApiError(400, f"Bad Request: unsupported media type {kind!r} in this fake")
            contents.append({**content, "media_group_id": group_id, **self._caption(item)})
        return [self._bot_message(call, content) for content in contents]

    def _document(self, data: bytes, name: str | None) -> JSONDict:
        name = name or "file"
        mime_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        stored = self._store_file(data, "documents", _suffix(name, mime_type), None)
        return _file_fields(stored) | {"file_name": name, "mime_type": mime_type}

    def _caption(self, params: JSONDict) -> JSONDict:
        if params.get("caption") is None:
            return {}
        caption = _render(str(params["caption"]), params.get("parse_mode"))
        if len(caption) > MAX_CAPTION_LENGTH:
            raise ApiError(400, "Bad Request: message caption is too long")
        return {"caption": caption} if caption else {}

    def _bot_message(self, call: Call, content: JSONDict) -> JSONDict:
        chat_id = _chat_id(call.params)
        reply_to = self._reply_target(chat_id, call.params)
        sender = {k: self.bot_user[k] for k in ("id", "is_bot", "first_name", "username")}
        message = self._new_message(chat_id, sender, content, message_id=None)
        if reply_to is not None:
            message["reply_to_message"] = _without_reply(reply_to)
        if markup := _inline_markup(call.params):
            message["reply_markup"] = markup
        return message

    def _reply_target(self, chat_id: int, params: JSONDict) -> JSONDict | None:
        reply = params.get("reply_parameters")
        if not isinstance(reply, dict):
            if "reply_to_message_id" not in params:
                return None
            reply = {
                "message_id": params["reply_to_message_id"],
                "allow_sending_without_reply": params.get("allow_sending_without_reply", False),
            }
        target = self._messages.get((int(reply.get("chat_id", chat_id)), int(reply["message_id"])))
        if target is None and not reply.get("allow_sending_without_reply"):
            raise ApiError(400, "Bad Request: message to be replied not found")
        return target

    # ------------------------------------------------------------------ editing & deleting

    def _editable(self, call: Call, verb: str = "edit") -> JSONDict:
        key = (_chat_id(call.params), int(call.params.get("message_id", 0)))
        message = self._messages.get(key)
        if message is None:
            raise ApiError(400, f"Bad Request: message to {verb} not found")
        if verb == "edit" and message["from"]["id"] != self.bot_id:
            raise ApiError(400, "Bad Request: message can't be edited")
        return message

    def _apply_edit(self, message: JSONDict, changes: JSONDict, params: JSONDict) -> JSONDict:
        # Telegram drops the inline keyboard of an edited message unless it is sent again.
        changes["reply_markup"] = _inline_markup(params)
        if all(message.get(key) == value for key, value in changes.items()):
            raise ApiError(
                400,
                "Bad Request: message is not modified: specified new message content and reply markup "
                "are exactly the same as a current content and reply markup of the message",
            )
        for key, value in changes.items():
            if value is None:
                message.pop(key, None)
            else:
                message[key] = value
        message["edit_date"] = int(time.time())
        return message

    def _edit_message_text(self, call: Call) -> JSONDict:
        message = self._editable(call)
        if "text" not in message:
            raise ApiError(400, "Bad Request: there is no text in the message to edit")
        text = _render(str(call.params.get("text", "")), call.params.get("parse_mode"))
        if not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if len(text) > MAX_TEXT_LENGTH:
            raise ApiError(400, "Bad Request: message is too long")
        return self._apply_edit(message, {"text": text}, call.params)

    def _edit_message_caption(self, call: Call) -> JSONDict:
        message = self._editable(call)
        caption = self._caption(call.params).get("caption")
        return self._apply_edit(message, {"caption": caption}, call.params)

    def _edit_message_reply_markup(self, call: Call) -> JSONDict:
        return self._apply_edit(self._editable(call), {}, call.params)

    def _delete_message(self, call: Call) -> bool:
        message = self._editable(call, "delete")
        key = (message["chat"]["id"], message["message_id"])
        self._deleted[key] = self._messages.pop(key)
        return True

    # ------------------------------------------------------------------ misc methods

    def _send_chat_action(self, call: Call) -> bool:
        _chat_id(call.params)
        if call.params.get("action") not in _CHAT_ACTIONS:
            raise ApiError(400, "Bad Request: wrong parameter action in request")
        return True

    def _commands_key(self, params: JSONDict) -> str:
        scope = json.dumps(params.get("scope") or {"type": "default"}, sort_keys=True)
        return f"{scope}|{params.get('language_code', '')}"

    def _set_my_commands(self, call: Call) -> bool:
        commands = call.params.get("commands")
        if not isinstance(commands, list):
            raise ApiError(400, 'Bad Request: parameter "commands" is required')
        for command in commands:
            if not _BOT_COMMAND_RE.fullmatch(str(command.get("command", ""))):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
        self._commands[self._commands_key(call.params)] = commands
        return True

    def _get_my_commands(self, call: Call) -> list[JSONDict]:
        return self._commands.get(self._commands_key(call.params), [])

    def _delete_my_commands(self, call: Call) -> bool:
        self._commands.pop(self._commands_key(call.params), None)
        return True

    def _get_chat_member(self, call: Call) -> JSONDict:
        chat_id, user_id = _chat_id(call.params), call.params.get("user_id")
        if isinstance(user_id, bool) or not isinstance(user_id, int):
            raise ApiError(400, "Bad Request: invalid user_id specified")
        chat = self._chats.get(chat_id)
        if chat is None:
            raise ApiError(400, "Bad Request: chat not found")
        admins = self._admins.get(chat_id, set())
        if chat["type"] == "private" or user_id not in admins:
            return {"status": "member", "user": self._sender(user_id)}
        if self._owners.get(chat_id) == user_id:
            return {"status": "creator", "user": self._sender(user_id), "is_anonymous": False}
        rights = dict.fromkeys(_ADMIN_RIGHTS, True)
        return {"status": "administrator", "user": self._sender(user_id), "can_be_edited": False, **rights}

    def _answer_callback_query(self, call: Call) -> bool:
        query_id = str(call.params.get("callback_query_id", ""))
        if query_id not in self._open_callback_queries:
            raise ApiError(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
        self._open_callback_queries.discard(query_id)
        return True

    # ------------------------------------------------------------------ messages & chats

    def _user_message(
        self,
        chat_id: int,
        content: JSONDict,
        user_id: int | None,
        chat_type: str | None,
        reply_to: JSONDict | None,
        message_id: int | None,
        update_id: int | None,
    ) -> JSONDict:
        self._chat(chat_id, chat_type)
        sender = self._sender(user_id if user_id is not None else _default_user_id(chat_id))
        message = self._new_message(chat_id, sender, content, message_id=message_id)
        if reply_to is not None:  # a message dict, or an update dict holding one
            message["reply_to_message"] = _without_reply(reply_to.get("message", reply_to))
        update: JSONDict = {"message": message}
        if update_id is not None:
            update["update_id"] = update_id
        return self.inject_raw(update)

    def _new_message(self, chat_id: int, sender: JSONDict, content: JSONDict, *, message_id: int | None) -> JSONDict:
        if message_id is None:
            message_id = self._next_message_ids.get(chat_id, 1)
        message = {
            "message_id": message_id,
            "from": sender,
            "chat": self._chat(chat_id),
            "date": int(time.time()),
            **content,
        }
        self._remember(message)
        return message

    def _remember(self, message: JSONDict) -> None:
        chat_id, message_id = int(message["chat"]["id"]), int(message["message_id"])
        self._chats.setdefault(chat_id, message["chat"])
        self._messages[(chat_id, message_id)] = message
        self._next_message_ids[chat_id] = max(self._next_message_ids.get(chat_id, 1), message_id + 1)

    def _chat(self, chat_id: int, chat_type: str | None = None) -> JSONDict:
        """The chat dict, created on first use: private for positive ids, a (super)group otherwise."""
        if chat_id not in self._chats or (chat_type and self._chats[chat_id]["type"] != chat_type):
            chat_type = chat_type or _default_chat_type(chat_id)
            if chat_type == "private":
                user = _user(chat_id)
                chat = {"id": chat_id, "type": "private", "first_name": user["first_name"]}
                chat["username"] = user["username"]
            else:
                chat = {"id": chat_id, "type": chat_type, "title": f"Test {chat_type} {abs(chat_id)}"}
            self._chats[chat_id] = chat
        return self._chats[chat_id]


# ---------------------------------------------------------------------- helpers


async def _read_params(request: web.Request) -> tuple[dict[str, Any], dict[str, bytes], dict[str, str]]:
    """Parameters from the query string and a form, multipart or JSON body; files kept apart."""
    if (request.content_length or 0) > UPLOAD_LIMIT:
        raise ApiError(413, "Request Entity Too Large")
    raw: dict[str, Any] = dict(request.query)
    files: dict[str, bytes] = {}
    names: dict[str, str] = {}
    if request.content_type.startswith("multipart/"):
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or part.name is None:
                continue
            data = bytes(await part.read())
            if part.filename is None:
                raw[part.name] = data.decode()
            else:
                files[part.name], names[part.name] = data, part.filename
    elif request.content_type == "application/json":
        if request.can_read_body:
            raw.update(await request.json())
    elif request.can_read_body:
        raw.update(await request.post())
    return {key: _decode(key, value) for key, value in raw.items()}, files, names


def _decode(name: str, value: Any) -> Any:
    """PTB sends str values raw and JSON-encodes all others, so decode everything but known strings."""
    if not isinstance(value, str) or name in _STRING_PARAMS:
        return value
    try:
        decoded = json.loads(value)
    except ValueError:
        return value
    return value if isinstance(decoded, str) else decoded


def _describe(call: Call) -> str:
    files = f" files={sorted(call.files)}" if call.files else ""
    return f"{call.method} -> {call.status} {call.params}{files}"


def _chat_id(params: JSONDict) -> int:
    chat_id = params.get("chat_id")
    if isinstance(chat_id, bool) or not isinstance(chat_id, int):
        raise ApiError(400, "Bad Request: chat not found")
    return chat_id


def _default_chat_type(chat_id: int) -> str:
    if chat_id > 0:
        return "private"
    return "supergroup" if str(chat_id).startswith("-100") else "group"


def _default_user_id(chat_id: int) -> int:
    return chat_id if chat_id > 0 else 1001


def _user(user_id: int, language_code: str = "en") -> JSONDict:
    return {
        "id": user_id,
        "is_bot": False,
        "first_name": f"User{user_id}",
        "username": f"user{user_id}",
        "language_code": language_code,
    }


def _without_reply(message: JSONDict) -> JSONDict:
    """Telegram never nests reply_to_message more than one level."""
    return {k: v for k, v in message.items() if k != "reply_to_message"}


def _inline_markup(params: JSONDict) -> JSONDict | None:
    """Only inline keyboards are echoed in the sent Message."""
    markup = params.get("reply_markup")
    return markup if isinstance(markup, dict) and "inline_keyboard" in markup else None


def _file_fields(stored: _StoredFile) -> JSONDict:
    return {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id, "file_size": stored.file_size}


def _suffix(file_name: str, mime_type: str) -> str:
    if "." in file_name:
        return "." + file_name.rsplit(".", 1)[1]
    return mimetypes.guess_extension(mime_type) or ""


def _caption_fields(caption: str | None) -> JSONDict:
    if caption is None:
        return {}
    fields: JSONDict = {"caption": caption}
    if entities := _entities(caption):
        fields["caption_entities"] = entities
    return fields


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _entities(text: str) -> list[JSONDict]:
    """bot_command and mention entities, with Telegram's UTF-16 offsets."""
    found = [("bot_command", m) for m in _COMMAND_RE.finditer(text)]
    found += [("mention", m) for m in _MENTION_RE.finditer(text)]
    entities = [
        {"type": kind, "offset": _utf16_len(text[: m.start()]), "length": _utf16_len(m.group())} for kind, m in found
    ]
    return sorted(entities, key=lambda e: e["offset"])


def _image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG or baseline/progressive JPEG, read from its header."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if not data.startswith(b"\xff\xd8"):
        return None
    i = 2
    while i + 9 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return int(width), int(height)
        i += 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
    return None


# ---------------------------------------------------------------------- parse_mode rendering


def _render(text: str, parse_mode: Any) -> str:
    """The plain text Telegram shows for ``text`` in ``parse_mode``, or its 400 for bad markup."""
    mode = str(parse_mode).lower() if parse_mode else ""
    if mode == "html":
        return _HtmlText.render(text)
    if mode in {"markdown", "markdownv2"}:
        return _render_markdown(text, v2=mode == "markdownv2")
    return text


def _parse_error(text: str, index: int, message: str) -> ApiError:
    offset = len(text[:index].encode())
    return ApiError(400, f"Bad Request: can't parse entities: {message} at byte offset {offset}")


class _HtmlText(HTMLParser):
    TAGS = frozenset(
        {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre", "span"}
        | {"tg-spoiler", "tg-emoji", "blockquote"}
    )

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.text = text
        self.parts: list[str] = []
        self.open_tags: list[str] = []
        self.error: ApiError | None = None

    @classmethod
    def render(cls, text: str) -> str:
        parser = cls(text)
        parser.feed(text)
        parser.close()
        if parser.error is None and parser.open_tags:
            tag = parser.open_tags[-1]
            message = f'Can\'t find end tag corresponding to start tag "{tag}"'
            parser.error = ApiError(400, f"Bad Request: can't parse entities: {message}")
        if parser.error is not None:
            raise parser.error
        return "".join(parser.parts)

    def _index(self) -> int:
        line, column = self.getpos()
        return sum(len(row) for row in self.text.splitlines(keepends=True)[: line - 1]) + column

    def _fail(self, message: str) -> None:
        if self.error is None:
            self.error = _parse_error(self.text, self._index(), message)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.TAGS:
            self._fail(f'Unsupported start tag "{tag}"')
        self.open_tags.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open_tags or self.open_tags[-1] != tag:
            expected = f'"</{self.open_tags[-1]}>"' if self.open_tags else "no end tag"
            self._fail(f'Unmatched end tag, expected {expected}, found "</{tag}>"')
            return
        self.open_tags.pop()

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


_MDV2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
_MDV2_MARKERS = ("__", "||", "*", "_", "~")
_MD_MARKERS = ("*", "_")


def _render_markdown(text: str, *, v2: bool) -> str:
    """Strip (legacy or V2) Markdown; in V2 every unescaped reserved character is an error."""
    out: list[str] = []
    open_marks: list[tuple[str, int]] = []  # (marker, index) of entities not closed yet
    markers = _MDV2_MARKERS if v2 else _MD_MARKERS
    i = 0
    while i < len(text):
        ch = text[i]
        marker = next((m for m in markers if text.startswith(m, i)), "[" if ch == "[" else "")
        if ch == "\\" and i + 1 < len(text) and (v2 or text[i + 1] in "_*`["):
            out.append(text[i + 1])
            i += 2
        elif ch == "`":
            code, i = _code_span(text, i)
            out.append(code)
        elif marker:
            if marker != "[" and open_marks and open_marks[-1][0] == marker:
                open_marks.pop()
            else:
                open_marks.append((marker, i))
            i += len(marker)
        elif ch == "]" and open_marks and open_marks[-1][0] == "[":
            open_marks.pop()
            i = _skip_url(text, i + 1)
        elif v2 and ch in _MDV2_RESERVED and not (ch == ">" and text[i - 1 : i] in {"", "\n"}):
            message = f"Character '{ch}' is reserved and must be escaped with the preceding '\\'"
            raise _parse_error(text, i, message)
        else:
            out.append(ch if not v2 or ch != ">" else "")  # a V2 ">" here starts a blockquote
            i += 1
    if open_marks:
        raise _parse_error(text, open_marks[-1][1], "Can't find end of the entity starting")
    return "".join(out)


def _code_span(text: str, start: int) -> tuple[str, int]:
    """The content of the `code` or ```pre``` span at ``start`` and the index after it."""
    fence = "```" if text.startswith("```", start) else "`"
    end = text.find(fence, start + len(fence))
    if end < 0:
        raise _parse_error(text, start, "Can't find end of the entity starting")
    return text[start + len(fence) : end], end + len(fence)


def _skip_url(text: str, start: int) -> int:
    """The index after the ``(url)`` of an inline link, if one starts at ``start``."""
    if not text.startswith("(", start):
        return start
    end = text.find(")", start)
    if end < 0:
        raise _parse_error(text, start, "Can't find end of a URL")
    return end + 1
