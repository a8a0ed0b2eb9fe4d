"""A wire-protocol fake of Discord: REST API v10, the websocket gateway and an attachment CDN.

One aiohttp server on 127.0.0.1 speaks HTTP and websocket the way Discord does, so the real
discord.py (a ``Client`` with a ``CommandTree``, or ``Webhook.partial`` with a bare aiohttp session)
runs against it unchanged.  Point discord.py here with :meth:`FakeDiscord.point_discord_py_here`.

Behaviour worth knowing (as Discord does it, and as discord.py 2.7 reacts to it):

* JSON responses carry ``Content-Type: application/json`` exactly (discord.py only decodes that).
* ``POST /interactions/{id}/{token}/callback`` must come within 3 s of the interaction's creation
  (else 404 code 10062) and only once (else 400 code 40060).  With ``?with_response=1`` (discord.py
  always sends it) the answer is 200 with an InteractionCallbackResponse, otherwise 204.
* Type 5 (deferred) creates a "loading" original message (flags 128).  The first follow-up
  (``POST /webhooks/{app}/{token}``) or a ``PATCH .../messages/@original`` fills it; later follow-ups
  are new messages.  A follow-up before any callback is 404 code 10015.
* A button press (:meth:`FakeDiscord.create_component_interaction`, type 3) carries the message as it is
  now; its callback 7 edits that message, 6 only acknowledges (the message becomes ``@original``).
* Interaction tokens live 15 minutes; after that (or :meth:`FakeDiscord.expire_token`) every
  webhook call with the token is 401 code 50027.
* A file over 10 MiB is 413 code 40005; empty messages are 400 code 50006; content over 2000
  characters is 400 code 50035.
* Unknown channels are created on first use as guild text channels of ``default_guild_id``.

For crash tests: ``api_base_for(name)`` gives each client its own REST base, so every recorded ``Call`` says
who made it (``call.client``); ``hold_next`` takes a request in but keeps its answer back until released.
"""

from __future__ import annotations

import contextlib
import copy
import fnmatch
import hashlib
import json
import math
import mimetypes
import re
import secrets
import struct
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, TypeVar
from urllib.parse import quote

from aiohttp import BodyPartReader, WSMsgType, web

from queue_gateway.runtime import process
from tests.fakes.recorder import Hold, Recorder

with warnings.catch_warnings():
    # discord.py 2.7.1 imports the stdlib 'audioop' (voice), deprecated in Python 3.11; with
    # filterwarnings=error that import-time warning would otherwise fail the whole module.
    warnings.filterwarnings("ignore", "'audioop' is deprecated", DeprecationWarning)
    import discord  # noqa: F401 - imported here, once, under the filter

__all__ = [
    "CALLBACK_DEADLINE_S",
    "FLAG_EPHEMERAL",
    "FLAG_LOADING",
    "MAX_ATTACHMENT_BYTES",
    "TOKEN_TTL_S",
    "Call",
    "FakeDiscord",
    "GatewayFrame",
    "Hold",
    "InteractionState",
    "json_response",
]

T = TypeVar("T")

API_PREFIX = "/api/v10"
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
MAX_CONTENT_CHARS = 2000
CALLBACK_DEADLINE_S = 3.0
TOKEN_TTL_S = 15 * 60.0
FLAG_EPHEMERAL = 1 << 6
FLAG_LOADING = 1 << 7
DISCORD_EPOCH_MS = 1_420_070_400_000
ALL_PERMISSIONS = str((1 << 50) - 1)

_ERROR_MESSAGES: dict[int, str] = {
    10003: "Unknown Channel",
    10008: "Unknown Message",
    10015: "Unknown Webhook",
    10062: "Unknown interaction",
    40005: "Request entity too large",
    40060: "Interaction has already been acknowledged.",
    50001: "Missing Access",
    50005: "Cannot edit a message authored by another user",
    50006: "Cannot send an empty message",
    50013: "Missing Permissions",
    50027: "Invalid Webhook Token",
    50035: "Invalid Form Body",
    50109: "The request body contains invalid JSON.",
}
_DEFAULT_CODES: dict[int, int] = {400: 50035, 403: 50013, 413: 40005}
_CALLBACK_TYPES = frozenset({1, 4, 5, 6, 7, 8, 9, 10, 12})
_FILES_FIELD = re.compile(r"files\[(\d+)\]")
_RECORDED_HEADERS = ("Authorization", "Content-Type", "User-Agent", "X-Audit-Log-Reason")


def json_response(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response whose Content-Type is exactly ``application/json`` (no charset), like Discord's."""
    return web.Response(body=json.dumps(data).encode(), status=status, content_type="application/json", headers=headers)


def discord_error(
    status: int, code: int | None = None, message: str | None = None, *, headers: dict[str, str] | None = None
) -> web.Response:
    """Discord's error envelope ``{"message": ..., "code": ...}``."""
    code = _DEFAULT_CODES.get(status, 0) if code is None else code
    text = message or _ERROR_MESSAGES.get(code) or f"{status}: {HTTPStatus(status).phrase}"
    return json_response({"message": text, "code": code}, status=status, headers=headers)


def _form_error(field_name: str, code: str, message: str) -> web.Response:
    body = {
        "message": "Invalid Form Body",
        "code": 50035,
        "errors": {field_name: {"_errors": [{"code": code, "message": message}]}},
    }
    return json_response(body, status=400)


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, tz=UTC).isoformat()


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _image_size(data: bytes) -> tuple[int | None, int | None]:
    """Width and height of a PNG or GIF (what Discord reports for image attachments)."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return width, height
    return None, None


def _component(rows: list[dict[str, Any]], custom_id: str) -> dict[str, Any] | None:
    """The component with ``custom_id`` among a message's components (action rows hold the buttons)."""
    for component in rows:
        if component.get("custom_id") == custom_id:
            return component
        found = _component(component.get("components") or [], custom_id)
        if found is not None:
            return found
    return None


def _matches(pattern: str, method: str, path: str) -> bool:
    """Glob or prefix match on ``"METHOD /path"``; a pattern starting with ``/`` matches any method."""
    key = path if pattern.startswith("/") else f"{method} {path}"
    return key.startswith(pattern) or fnmatch.fnmatchcase(key, pattern)


@dataclass(frozen=True)
class Call:
    """One HTTP request the fake answered (API paths are recorded without the ``/api/v10`` prefix)."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    files: list[tuple[str, str, bytes]]
    headers: dict[str, str]
    status: int
    at: float
    client: str = ""  # the name in the REST base the caller used (``api_base_for``), "" for the plain one

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"

    def __str__(self) -> str:
        return f"{self.key} -> {self.status}"


@dataclass(frozen=True)
class GatewayFrame:
    """One gateway payload a client sent (op 1 heartbeat, 2 identify, 6 resume, ...)."""

    op: int | None
    d: Any
    at: float


@dataclass
class InteractionState:
    """What happened to one interaction on the wire."""

    interaction: dict[str, Any]
    created_at: float
    callbacks: list[dict[str, Any]] = field(default_factory=list)  # accepted callback bodies, in order
    original: dict[str, Any] | None = None
    followups: list[dict[str, Any]] = field(default_factory=list)
    expired: bool = False

    @property
    def id(self) -> int:
        return int(self.interaction["id"])

    @property
    def token(self) -> str:
        return str(self.interaction["token"])

    @property
    def acknowledged(self) -> bool:
        return bool(self.callbacks)

    @property
    def is_loading(self) -> bool:
        return self.original is not None and bool(self.original["flags"] & FLAG_LOADING)

    @property
    def original_content(self) -> str | None:
        return None if self.original is None else str(self.original["content"])

    @property
    def original_attachments(self) -> list[dict[str, Any]]:
        return [] if self.original is None else list(self.original["attachments"])

    def token_valid(self, now: float) -> bool:
        return not self.expired and now - self.created_at < TOKEN_TTL_S


@dataclass
class _Upload:
    field: str
    filename: str
    data: bytes
    content_type: str | None


@dataclass
class _Body:
    json: Any = None
    files: list[_Upload] = field(default_factory=list)
    invalid_json: bool = False

    @property
    def payload(self) -> dict[str, Any]:
        return self.json if isinstance(self.json, dict) else {}


@dataclass
class _Failure:
    pattern: str
    status: int
    retry_after: float | None
    code: int | None
    remaining: int
    via: bool


@dataclass
class _Session:
    session_id: str
    identify: dict[str, Any]
    ws: web.WebSocketResponse | None
    seq: int = 0
    backlog: list[dict[str, Any]] = field(default_factory=list)
    alive: bool = True


_Handler = Callable[[web.Request, _Body], Awaitable[web.StreamResponse]]


async def _read_body(request: web.Request) -> _Body:
    if not request.body_exists:
        return _Body()
    if request.content_type == "multipart/form-data":
        return await _read_multipart(request)
    raw = await request.read()
    if request.content_type != "application/json":
        return _Body()
    try:
        return _Body(json=json.loads(raw))
    except ValueError:
        return _Body(invalid_json=True)


async def _read_multipart(request: web.Request) -> _Body:
    body = _Body()
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == "payload_json":
            try:
                body.json = json.loads(await part.text())
            except ValueError:
                body.invalid_json = True
        elif part.filename is not None:
            data = bytes(await part.read())
            upload = _Upload(part.name or "", part.filename, data, part.headers.get("Content-Type"))
            body.files.append(upload)
    return body


def _validate_message(payload: dict[str, Any], uploads: list[_Upload], *, allow_empty: bool) -> web.Response | None:
    content = payload.get("content") or ""
    if len(content) > MAX_CONTENT_CHARS:
        return _form_error("content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
    keys = ("embeds", "components", "sticker_ids", "poll", "attachments")
    if not (allow_empty or content or uploads or any(payload.get(k) for k in keys)):
        return discord_error(400, 50006)
    return None


class FakeDiscord:
    """Discord REST v10 + gateway + CDN on one local aiohttp server, for the real discord.py."""

    def __init__(
        self,
        *,
        token: str = "FAKE.discord.bot-token-xyz",
        application_id: int = 1_180_000_000_000_000_001,
        bot_user_id: int | None = None,
        default_guild_id: int = 1_180_000_000_000_000_100,
        heartbeat_interval_ms: int = 41_250,
    ) -> None:
        self.token = token
        self.application_id = application_id
        self.bot_user_id = application_id if bot_user_id is None else bot_user_id
        self.default_guild_id = default_guild_id
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.member_permissions: dict[int, int] = {}  # user id -> their permission bits in the guild (default: all)
        self.recorder: Recorder[Call] = Recorder(str)
        self.gateway_frames: list[GatewayFrame] = []
        self._port = 0
        self._runner: web.AppRunner | None = None
        self._increment = 0
        self._failures: list[_Failure] = []
        self._sessions: dict[str, _Session] = {}
        self._sockets: set[web.WebSocketResponse] = set()
        self._closed_by_us: set[web.WebSocketResponse] = set()
        self._interactions: dict[int, InteractionState] = {}
        self._by_token: dict[str, InteractionState] = {}
        self._messages: dict[int, dict[str, Any]] = {}
        self._channels: dict[int, dict[str, Any]] = {}
        self._dm_channels: dict[int, int] = {}  # person: their direct-message channel
        self._attachments: dict[int, tuple[dict[str, Any], bytes]] = {}
        self._commands: dict[int | None, list[dict[str, Any]]] = {}

    # ------------------------------------------------------------------ lifecycle and addresses

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_base(self) -> str:
        return self.base_url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self._port}/gateway"

    @property
    def cdn_url(self) -> str:
        return self.base_url + "/cdn"

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/gateway/", self._gateway)  # a 404 on the upgrade crashes discord.py's connect()
        self._add_api_routes(app)
        app.router.add_get("/cdn/attachments/{channel_id}/{attachment_id}/{filename}", self._wrap(self._cdn))
        app.router.add_get("/media/attachments/{channel_id}/{attachment_id}/{filename}", self._wrap(self._cdn))
        app.router.add_route("*", "/{tail:.*}", self._wrap(self._unknown_route))
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        self.recorder.release_all()
        for ws in [ws for ws in self._sockets if not ws.closed]:
            self._closed_by_us.add(ws)
            await ws.close(code=1001, message=b"fake discord shutting down")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @contextlib.contextmanager
    def point_discord_py_here(self) -> Iterator[None]:
        """Point discord.py's REST base (incl. webhooks) and default gateway here; restore on exit.

        Goes through the project's one setter of those globals, so the bot and the gateway (pointed at the same
        fake) agree with it, and a component pointed elsewhere fails loudly.
        """
        with process.discord_released():
            process.use_discord(self.api_base, self.gateway_url)
            yield

    def api_base_for(self, client: str) -> str:
        """``api_base`` for one named client: its calls are recorded with ``client`` set to this name."""
        return f"{self.base_url}/c/{client}{API_PREFIX}"

    @property
    def calls(self) -> list[Call]:
        """Every request answered, oldest first."""
        return self.recorder.calls

    def hold_next(self, route_pattern: str, predicate: Callable[[Call], bool] | None = None) -> Hold[Call]:
        """Take the next request matching ``route_pattern`` (as in :meth:`fail_next`) in, but answer it only
        after ``hold.release()``; it takes effect at once (a follow-up is in the channel)."""
        return self.recorder.hold_next(
            lambda call: _matches(route_pattern, call.method, call.path) and (predicate is None or predicate(call))
        )

    def drop_hold(self, hold: Hold[Call]) -> None:
        """Forget a hold that has not caught a call (yet); a caught one is released instead."""
        self.recorder.drop_hold(hold)

    def _add_api_routes(self, app: web.Application) -> None:
        routes: list[tuple[str, str, _Handler]] = [
            ("GET", "/gateway", self._gateway_info),
            ("GET", "/gateway/bot", self._gateway_bot),
            ("GET", "/users/@me", self._users_me),
            ("POST", "/users/@me/channels", self._create_dm),
            ("GET", "/oauth2/applications/@me", self._application_me),
            ("GET", "/applications/{app_id}/commands", self._get_commands),
            ("PUT", "/applications/{app_id}/commands", self._put_commands),
            ("GET", "/applications/{app_id}/guilds/{guild_id}/commands", self._get_commands),
            ("PUT", "/applications/{app_id}/guilds/{guild_id}/commands", self._put_commands),
            ("POST", "/interactions/{interaction_id}/{token}/callback", self._callback),
            ("POST", "/webhooks/{webhook_id}/{token}", self._webhook_execute),
            ("*", "/webhooks/{webhook_id}/{token}/messages/{message_id}", self._webhook_message),
            ("GET", "/channels/{channel_id}", self._get_channel),
            ("POST", "/channels/{channel_id}/messages", self._create_channel_message),
            ("*", "/channels/{channel_id}/messages/{message_id}", self._channel_message),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, API_PREFIX + path, self._wrap(handler))
            app.router.add_route(method, "/c/{client}" + API_PREFIX + path, self._wrap(handler))

    # ------------------------------------------------------------------ test-facing set-up

    def snowflake(self, at: float | None = None) -> int:
        """A unique Discord snowflake whose timestamp is ``at`` (Unix seconds, default now)."""
        millis = int((time.time() if at is None else at) * 1000) - DISCORD_EPOCH_MS
        self._increment = (self._increment + 1) % 4096
        return (millis << 22) | (1 << 17) | self._increment

    def user(self, user_id: int) -> dict[str, Any]:
        return {
            "id": str(user_id),
            "username": f"user{user_id}",
            "discriminator": "0",
            "global_name": f"User {user_id}",
            "avatar": None,
            "public_flags": 0,
        }

    @property
    def bot_user(self) -> dict[str, Any]:
        return {
            **self.user(self.bot_user_id),
            "username": "detectbot",
            "global_name": None,
            "bot": True,
            "verified": True,
            "mfa_enabled": False,
            "flags": 0,
        }

    def add_attachment(
        self,
        data: bytes,
        filename: str,
        content_type: str | None,
        *,
        size: int | None = None,
        width: int | None = None,
        height: int | None = None,
    ) -> dict[str, Any]:
        """An Attachment dict whose ``url`` serves ``data``; ``size`` may claim more bytes than served."""
        return self._new_attachment(data, filename, content_type, channel_id=0, size=size, width=width, height=height)

    def post_message(
        self, channel_id: int, *, author_id: int, attachments: list[dict[str, Any]], content: str = ""
    ) -> dict[str, Any]:
        """A message some user posted in a channel (the target of a message context menu)."""
        self._channel(channel_id)
        payload = {"content": content}
        return self._new_message(channel_id, self.user(author_id), payload, list(attachments))

    def expire_token(self, token: str) -> None:
        """Make an interaction token behave as if more than 15 minutes old."""
        self._by_token[token].expired = True

    def fail_next(
        self,
        route_pattern: str,
        status: int,
        *,
        retry_after: float | None = None,
        code: int | None = None,
        times: int = 1,
        via: bool = True,
    ) -> None:
        """Answer the next ``times`` requests matching ``route_pattern`` with ``status``.

        The pattern is a prefix or glob on ``"METHOD /path"`` (``"POST /webhooks/*"``), path without
        ``/api/v10`` (CDN downloads are ``"GET /cdn/attachments/..."``); a pattern starting with ``/``
        ignores the method.  429 gets Discord's body and
        ``Retry-After``/``X-RateLimit-*`` headers (``retry_after`` default 0.25 s) plus ``Via`` unless
        ``via=False``, which looks like a Cloudflare ban (text body) that discord.py never retries.
        Note discord.py retries 500/502/504 itself after 1 s, 3 s, ... sleeps.
        """
        self._failures.append(_Failure(route_pattern, status, retry_after, code, times, via))

    # ------------------------------------------------------------------ interactions

    async def create_slash_interaction(
        self,
        command_name: str,
        *,
        user_id: int,
        channel_id: int,
        guild_id: int | None = None,
        options: list[dict[str, Any]] | None = None,
        attachments: list[dict[str, Any]] | None = None,
        locale: str = "en-US",
        created_at: float | None = None,
    ) -> dict[str, Any]:
        """Dispatch a slash-command INTERACTION_CREATE; ``created_at`` is Unix time (default now).

        Without ``options``, each attachment fills the next attachment option (type 11) of the
        registered command, in order.
        """
        attachments = attachments or []
        command = self._find_command(command_name, guild_id, 1)
        if options is None:
            options = self._attachment_options(command_name, command, attachments)
        data: dict[str, Any] = {
            "id": command["id"] if command else str(self.snowflake()),
            "name": command_name,
            "type": 1,
            "options": options,
        }
        if attachments:
            resolved = {a["id"]: {**a, "ephemeral": True} for a in attachments}
            data["resolved"] = {"attachments": resolved}
        self._add_command_guild(data, command)
        state = self._new_interaction(data, user_id, channel_id, guild_id, locale, created_at)
        await self.dispatch("INTERACTION_CREATE", state.interaction)
        return state.interaction

    async def create_context_menu_interaction(
        self,
        command_name: str,
        *,
        target_message: dict[str, Any],
        user_id: int,
        channel_id: int,
        guild_id: int | None = None,
        locale: str = "en-US",
        created_at: float | None = None,
    ) -> dict[str, Any]:
        """Dispatch a message context-menu INTERACTION_CREATE (data.type 3) targeting ``target_message``."""
        command = self._find_command(command_name, guild_id, 3)
        target_id = target_message["id"]
        data: dict[str, Any] = {
            "id": command["id"] if command else str(self.snowflake()),
            "name": command_name,
            "type": 3,
            "target_id": target_id,
            "resolved": {"messages": {target_id: target_message}},
        }
        self._add_command_guild(data, command)
        state = self._new_interaction(data, user_id, channel_id, guild_id, locale, created_at)
        await self.dispatch("INTERACTION_CREATE", state.interaction)
        return state.interaction

    async def create_component_interaction(
        self,
        message: dict[str, Any],
        custom_id: str,
        *,
        user_id: int,
        guild_id: int | None = None,
        locale: str = "en-US",
        created_at: float | None = None,
        values: list[str] | None = None,
    ) -> dict[str, Any]:
        """Dispatch a MESSAGE_COMPONENT INTERACTION_CREATE (type 3): ``user_id`` presses the component ``custom_id``
        (a button) on ``message``, a message the fake holds; or picks ``values`` in it (a select menu: they must be
        among its options).

        As Discord does, the interaction carries the message as it is now, and only a component the message
        shows can be pressed (LookupError otherwise). Callback type 7 (UPDATE_MESSAGE) edits that message; after
        6 or 7 it is the interaction's ``@original``; 4 and 5 answer with a new message, as for a command.
        """
        current = self._messages.get(int(message["id"]))
        component = _component(current["components"] if current else [], custom_id)
        if current is None or component is None:
            raise LookupError(f"message {message['id']} shows no component with custom_id {custom_id!r}")
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": int(component["type"])}
        if values is not None:
            offered = {str(option["value"]) for option in component.get("options") or []}
            if int(component["type"]) != 3 or not set(values) <= offered:
                raise LookupError(f"component {custom_id!r} offers no such choice: {values}")
            data["values"] = values
        channel_id = int(current["channel_id"])
        state = self._new_interaction(data, user_id, channel_id, guild_id, locale, created_at, kind=3)
        state.interaction["message"] = copy.deepcopy(current)
        await self.dispatch("INTERACTION_CREATE", state.interaction)
        return state.interaction

    async def redispatch(self, interaction: dict[str, Any]) -> None:
        """Send the same INTERACTION_CREATE again (Discord may deliver an event twice)."""
        await self.dispatch("INTERACTION_CREATE", interaction)

    def interaction_state(self, interaction_id: int | str) -> InteractionState:
        return self._interactions[int(interaction_id)]

    def channel_messages(self, channel_id: int) -> list[dict[str, Any]]:
        found = [m for m in self._messages.values() if m["channel_id"] == str(channel_id)]
        return sorted(found, key=lambda m: int(m["id"]))

    def commands(self, guild_id: int | None = None) -> list[dict[str, Any]]:
        return list(self._commands.get(guild_id, []))

    def _find_command(self, name: str, guild_id: int | None, command_type: int) -> dict[str, Any] | None:
        scopes = [guild_id, None] if guild_id is not None else [None]
        for scope in scopes:
            for command in self._commands.get(scope, []):
                if command["name"] == name and command["type"] == command_type:
                    return command
        return None

    @staticmethod
    def _add_command_guild(data: dict[str, Any], command: dict[str, Any] | None) -> None:
        if command is not None and "guild_id" in command:
            data["guild_id"] = command["guild_id"]

    @staticmethod
    def _attachment_options(
        name: str, command: dict[str, Any] | None, attachments: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        names = [o["name"] for o in (command or {}).get("options", []) if o.get("type") == 11]
        if len(names) < len(attachments):
            raise ValueError(f"/{name} has fewer than {len(attachments)} attachment options; pass options=")
        return [{"name": n, "type": 11, "value": a["id"]} for n, a in zip(names, attachments, strict=False)]

    def _new_interaction(
        self,
        data: dict[str, Any],
        user_id: int,
        channel_id: int,
        guild_id: int | None,
        locale: str,
        created_at: float | None,
        *,
        kind: int = 2,  # 2 APPLICATION_COMMAND, 3 MESSAGE_COMPONENT
    ) -> InteractionState:
        created = time.time() if created_at is None else created_at
        interaction_id = self.snowflake(created)
        token = f"aW50ZXJhY3Rpb246{secrets.token_urlsafe(64)}"  # "interaction:" in base64, then noise
        interaction: dict[str, Any] = {
            "id": str(interaction_id),
            "application_id": str(self.application_id),
            "type": kind,
            "data": data,
            "channel": self._channel(channel_id, guild_id=guild_id, dm_user_id=user_id),
            "channel_id": str(channel_id),
            "token": token,
            "version": 1,
            "locale": locale,
            "app_permissions": ALL_PERMISSIONS,
            "entitlements": [],
            "attachment_size_limit": MAX_ATTACHMENT_BYTES,
        }
        interaction |= self._interaction_origin(user_id, guild_id)
        state = InteractionState(interaction=interaction, created_at=created)
        self._interactions[interaction_id] = state
        self._by_token[token] = state
        return state

    def _interaction_origin(self, user_id: int, guild_id: int | None) -> dict[str, Any]:
        if guild_id is None:
            return {
                "user": self.user(user_id),
                "context": 1,
                "authorizing_integration_owners": {"1": str(user_id)},
            }
        member = {
            "user": self.user(user_id),
            "roles": [],
            "joined_at": _iso(time.time() - 86_400),
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "nick": None,
            "avatar": None,
            "permissions": str(self.member_permissions.get(user_id, int(ALL_PERMISSIONS))),
        }
        return {
            "guild_id": str(guild_id),
            "guild": {"id": str(guild_id), "locale": "en-US", "features": []},
            "guild_locale": "en-US",
            "member": member,
            "context": 0,
            "authorizing_integration_owners": {"0": str(guild_id)},
        }

    # ------------------------------------------------------------------ recording and waiting

    def calls_matching(self, pattern: str) -> list[Call]:
        return [c for c in self.calls if _matches(pattern, c.method, c.path)]

    async def wait_for_call(
        self,
        pattern: str,
        predicate: Callable[[Call], bool] | None = None,
        *,
        timeout: float = 10.0,
        count: int = 1,
    ) -> list[Call]:
        """Wait until ``count`` answered calls match; return all of them, oldest first."""
        return await self.recorder.wait_for(
            lambda c: _matches(pattern, c.method, c.path) and (predicate is None or predicate(c)),
            count=count, timeout=timeout, what=f"call(s) matching {pattern!r}",
        )  # fmt: skip

    async def wait_until_identified(
        self,
        timeout: float = 10.0,
        *,
        count: int = 1,
    ) -> dict[str, Any]:
        """Wait for the ``count``-th IDENTIFY (answered with READY); return its ``d``."""
        return await self._wait_for_op(2, "IDENTIFY", timeout, count)

    async def wait_until_resumed(
        self,
        timeout: float = 10.0,
        *,
        count: int = 1,
    ) -> dict[str, Any]:
        """Wait for the ``count``-th RESUME (answered with replay + RESUMED); return its ``d``."""
        return await self._wait_for_op(6, "RESUME", timeout, count)

    async def _wait_for_op(self, op: int, name: str, limit_s: float, count: int) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            found = [f.d for f in self.gateway_frames if f.op == op]
            return found[count - 1] if len(found) >= count else None

        def describe() -> str:
            ops = [f.op for f in self.gateway_frames]
            return f"no {count} {name} frame(s) within {limit_s}s; gateway ops seen: {ops}"

        return await self._wait_until(probe, limit_s, describe)

    async def _wait_until(self, probe: Callable[[], T | None], limit_s: float, describe: Callable[[], str]) -> T:
        try:
            await self.recorder.wait_until(lambda: probe() is not None, timeout=limit_s, what="it")
        except TimeoutError:
            raise TimeoutError(describe()) from None
        result = probe()
        assert result is not None
        return result

    # ------------------------------------------------------------------ HTTP plumbing

    def _wrap(self, handler: _Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def serve(request: web.Request) -> web.StreamResponse:
            body = await _read_body(request)
            client = request.match_info.get("client", "")
            path = request.path.removeprefix(f"/c/{client}" if client else "").removeprefix(API_PREFIX)
            rejected = self._take_failure(request.method, path) or self._reject_body(body)
            response = rejected or await handler(request, body)
            call = self._call(request, path, body, response.status, client)
            await self.recorder.held(call)
            self.recorder.record(call)
            return response

        return serve

    @staticmethod
    def _call(request: web.Request, path: str, body: _Body, status: int, client: str = "") -> Call:
        headers = {h: request.headers[h] for h in _RECORDED_HEADERS if h in request.headers}
        files = [(u.field, u.filename, u.data) for u in body.files]
        query = dict(request.query)
        return Call(request.method, path, query, body.json, files, headers, status, time.monotonic(), client)

    def _take_failure(self, method: str, path: str) -> web.Response | None:
        for failure in self._failures:
            if _matches(failure.pattern, method, path):
                failure.remaining -= 1
                if failure.remaining <= 0:
                    self._failures.remove(failure)
                return self._failure_response(failure)
        return None

    @staticmethod
    def _failure_response(failure: _Failure) -> web.Response:
        if failure.status != 429:
            return discord_error(failure.status, failure.code)
        if not failure.via:
            return web.Response(status=429, text="error code: 1015")
        retry_after = 0.25 if failure.retry_after is None else failure.retry_after
        headers = {
            "Retry-After": str(max(1, math.ceil(retry_after))),
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
            "X-RateLimit-Reset-After": f"{retry_after:.3f}",
            "X-RateLimit-Bucket": hashlib.sha1(failure.pattern.encode()).hexdigest()[:32],
            "X-RateLimit-Scope": "user",
            "Via": "1.1 google",
        }
        body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": False}
        if failure.code is not None:
            body["code"] = failure.code
        return json_response(body, status=429, headers=headers)

    @staticmethod
    def _reject_body(body: _Body) -> web.Response | None:
        if body.invalid_json:
            return discord_error(400, 50109)
        if any(len(u.data) > MAX_ATTACHMENT_BYTES for u in body.files):
            return discord_error(413, 40005)
        return None

    def _unauthorized(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") != f"Bot {self.token}":
            return discord_error(401, 0, "401: Unauthorized")
        return None

    async def _unknown_route(self, request: web.Request, body: _Body) -> web.StreamResponse:
        return discord_error(404, 0, "404: Not Found")

    # ------------------------------------------------------------------ REST: identity and commands

    async def _gateway_info(self, request: web.Request, body: _Body) -> web.StreamResponse:
        return json_response({"url": self.gateway_url})

    async def _gateway_bot(self, request: web.Request, body: _Body) -> web.StreamResponse:
        if denied := self._unauthorized(request):
            return denied
        limit = {"total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 1}
        return json_response({"url": self.gateway_url, "shards": 1, "session_start_limit": limit})

    async def _users_me(self, request: web.Request, body: _Body) -> web.StreamResponse:
        return self._unauthorized(request) or json_response(self.bot_user)

    async def _create_dm(self, request: web.Request, body: _Body) -> web.StreamResponse:
        """Open (or find) the direct-message channel with a person (``{"recipient_id": "…"}``)."""
        if denied := self._unauthorized(request):
            return denied
        user_id = _int(str(body.payload.get("recipient_id", "")))
        if user_id is None:
            return discord_error(400, 50035)
        return json_response(self._channel(self.dm_channel_id(user_id), dm_user_id=user_id))

    def dm_channel_id(self, user_id: int) -> int:
        """The id of the bot's direct-message channel with ``user_id`` (one per person, stable)."""
        return self._dm_channels.setdefault(user_id, self.snowflake())

    def dm_messages(self, user_id: int) -> list[dict[str, Any]]:
        """What the bot wrote to ``user_id`` in private, oldest first."""
        return self.channel_messages(self.dm_channel_id(user_id))

    async def _application_me(self, request: web.Request, body: _Body) -> web.StreamResponse:
        if denied := self._unauthorized(request):
            return denied
        app: dict[str, Any] = {
            "id": str(self.application_id),
            "name": "detectbot",
            "icon": None,
            "description": "",
            "summary": "",
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": hashlib.sha256(self.token.encode()).hexdigest(),
            "flags": 0,
            "owner": self.user(self.application_id + 7),
            "team": None,
            "bot": self.bot_user,
            "interactions_endpoint_url": None,
            "redirect_uris": [],
            "tags": [],
        }
        return json_response(app)

    def _command_scope(self, request: web.Request) -> tuple[int | None, web.Response | None]:
        if denied := self._unauthorized(request):
            return None, denied
        if _int(request.match_info["app_id"]) != self.application_id:
            return None, discord_error(403, 50001)
        return _int(request.match_info.get("guild_id")), None

    async def _get_commands(self, request: web.Request, body: _Body) -> web.StreamResponse:
        guild_id, denied = self._command_scope(request)
        return denied or json_response(self.commands(guild_id))

    async def _put_commands(self, request: web.Request, body: _Body) -> web.StreamResponse:
        guild_id, denied = self._command_scope(request)
        if denied:
            return denied
        if not isinstance(body.json, list):
            return _form_error("_root", "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType")
        previous = {(c["name"], c["type"]): c["id"] for c in self._commands.get(guild_id, [])}
        stored = [self._command(c, guild_id, previous) for c in body.json]
        self._commands[guild_id] = stored
        return json_response(stored)

    def _command(
        self, sent: dict[str, Any], guild_id: int | None, previous: dict[tuple[str, int], str]
    ) -> dict[str, Any]:
        command_type = int(sent.get("type", 1))
        command_id = previous.get((sent["name"], command_type)) or str(self.snowflake())
        command: dict[str, Any] = {
            "default_member_permissions": None,
            "dm_permission": True,
            "nsfw": False,
            "integration_types": [0],
            "contexts": None,
            **sent,
            "id": command_id,
            "application_id": str(self.application_id),
            "version": str(self.snowflake()),
            "type": command_type,
            "description": sent.get("description", ""),
        }
        if guild_id is not None:
            command["guild_id"] = str(guild_id)
        return command

    # ------------------------------------------------------------------ REST: interactions and webhooks

    async def _callback(self, request: web.Request, body: _Body) -> web.StreamResponse:
        state = self._interactions.get(_int(request.match_info["interaction_id"]) or 0)
        now = time.time()
        if state is None or state.token != request.match_info["token"]:
            return discord_error(404, 10062)
        if now - state.created_at > CALLBACK_DEADLINE_S:
            return discord_error(404, 10062)
        if state.acknowledged:
            return discord_error(400, 40060)
        callback_type = body.payload.get("type")
        if callback_type not in _CALLBACK_TYPES:
            choices = sorted(_CALLBACK_TYPES)
            return _form_error("type", "BASE_TYPE_CHOICES", f"Value must be one of {choices}.")
        data = body.payload.get("data") or {}
        if callback_type == 4 and (invalid := _validate_message(data, body.files, allow_empty=False)):
            return invalid
        state.callbacks.append(body.payload)
        if callback_type in (4, 5):
            state.original = self._interaction_message(state, data, body.files, loading=callback_type == 5)
        elif callback_type in (6, 7) and "message" in state.interaction:  # a component's message is @original
            state.original = self._messages.get(int(state.interaction["message"]["id"]))
            if callback_type == 7 and state.original is not None:
                self._edit_message(state.original, data, body.files)
        if request.query.get("with_response") not in ("1", "true", "True"):
            return web.Response(status=204)
        return json_response(self._callback_response(state, callback_type))

    def _callback_response(self, state: InteractionState, callback_type: int) -> dict[str, Any]:
        interaction: dict[str, Any] = {"id": str(state.id), "type": state.interaction["type"]}
        resource: dict[str, Any] = {"type": callback_type}
        if state.original is not None:
            flags = state.original["flags"]
            interaction |= {
                "response_message_id": state.original["id"],
                "response_message_loading": bool(flags & FLAG_LOADING),
                "response_message_ephemeral": bool(flags & FLAG_EPHEMERAL),
            }
            resource["message"] = state.original
        return {"interaction": interaction, "resource": resource}

    def _interaction_message(
        self, state: InteractionState, payload: dict[str, Any], uploads: list[_Upload], *, loading: bool
    ) -> dict[str, Any]:
        interaction = state.interaction
        flags = int(payload.get("flags") or 0) & FLAG_EPHEMERAL
        channel_id = int(interaction["channel_id"])
        attachments = self._store_uploads(channel_id, payload, uploads)
        user = interaction.get("user") or interaction["member"]["user"]
        metadata = {
            "id": interaction["id"],
            "type": interaction["type"],
            "user": user,
            "authorizing_integration_owners": interaction["authorizing_integration_owners"],
        }
        extra = {
            "webhook_id": str(self.application_id),
            "application_id": str(self.application_id),
            "interaction_metadata": metadata,
        }
        message_type = 23 if interaction["data"].get("type") == 3 else 20
        flags |= FLAG_LOADING if loading else 0
        return self._new_message(
            channel_id,
            self.bot_user,
            payload,
            attachments,
            message_type=message_type,
            flags=flags,
            extra=extra,
        )

    def _webhook_state(self, request: web.Request) -> tuple[InteractionState | None, web.Response | None]:
        if _int(request.match_info["webhook_id"]) != self.application_id:
            return None, discord_error(404, 10015)
        state = self._by_token.get(request.match_info["token"])
        if state is None or not state.token_valid(time.time()):
            return None, discord_error(401, 50027)
        return state, None

    async def _webhook_execute(self, request: web.Request, body: _Body) -> web.StreamResponse:
        state, denied = self._webhook_state(request)
        if state is None:
            return denied or discord_error(404, 10015)
        if not state.acknowledged:
            return discord_error(404, 10015)
        if invalid := _validate_message(body.payload, body.files, allow_empty=False):
            return invalid
        if state.original is not None and state.is_loading:
            message = self._edit_message(state.original, body.payload, body.files)
        else:
            message = self._interaction_message(state, body.payload, body.files, loading=False)
            state.followups.append(message)
        if request.query.get("wait") in ("1", "true", "True"):
            return json_response(message)
        return web.Response(status=204)

    async def _webhook_message(self, request: web.Request, body: _Body) -> web.StreamResponse:
        state, denied = self._webhook_state(request)
        if state is None:
            return denied or discord_error(404, 10015)
        wanted = request.match_info["message_id"]
        if wanted == "@original":
            message = state.original
        else:
            message = next((m for m in [state.original, *state.followups] if m and m["id"] == wanted), None)
        if message is None:
            return discord_error(404, 10008)
        return await self._message_verb(request, body, message, state)

    async def _message_verb(
        self, request: web.Request, body: _Body, message: dict[str, Any], state: InteractionState | None
    ) -> web.StreamResponse:
        if request.method == "GET":
            return json_response(message)
        if request.method == "DELETE":
            self._delete_message(message, state)
            return web.Response(status=204)
        if request.method != "PATCH":
            return discord_error(405, 0)
        if invalid := _validate_message(body.payload, body.files, allow_empty=True):
            return invalid
        return json_response(self._edit_message(message, body.payload, body.files))

    def _delete_message(self, message: dict[str, Any], state: InteractionState | None) -> None:
        self._messages.pop(int(message["id"]), None)
        if state is not None:
            if state.original is message:
                state.original = None
            state.followups = [m for m in state.followups if m is not message]

    # ------------------------------------------------------------------ REST: channels and messages

    def _channel(
        self, channel_id: int, *, guild_id: int | None = None, dm_user_id: int | None = None
    ) -> dict[str, Any]:
        if channel_id in self._channels:
            return self._channels[channel_id]
        channel: dict[str, Any] = {"id": str(channel_id), "last_message_id": None, "flags": 0}
        if guild_id is None and dm_user_id is not None:
            channel |= {"type": 1, "recipients": [self.user(dm_user_id)]}
        else:
            channel |= {
                "type": 0,
                "guild_id": str(guild_id or self.default_guild_id),
                "name": f"channel-{channel_id}",
                "position": 0,
                "permission_overwrites": [],
                "nsfw": False,
                "parent_id": None,
                "topic": None,
                "rate_limit_per_user": 0,
            }
        self._channels[channel_id] = channel
        return channel

    def _channel_or_error(self, request: web.Request) -> tuple[int, web.Response | None]:
        channel_id = _int(request.match_info["channel_id"])
        if channel_id is None:
            return 0, discord_error(404, 10003)
        return channel_id, self._unauthorized(request)

    async def _get_channel(self, request: web.Request, body: _Body) -> web.StreamResponse:
        channel_id, denied = self._channel_or_error(request)
        return denied or json_response(self._channel(channel_id))

    async def _create_channel_message(self, request: web.Request, body: _Body) -> web.StreamResponse:
        channel_id, denied = self._channel_or_error(request)
        if denied:
            return denied
        if invalid := _validate_message(body.payload, body.files, allow_empty=False):
            return invalid
        self._channel(channel_id)
        attachments = self._store_uploads(channel_id, body.payload, body.files)
        extra: dict[str, Any] = {}
        message_type = 0
        if reference := body.payload.get("message_reference"):
            extra["message_reference"] = reference
            message_type = 19
        message = self._new_message(
            channel_id, self.bot_user, body.payload, attachments, message_type=message_type, extra=extra
        )
        return json_response(message)

    async def _channel_message(self, request: web.Request, body: _Body) -> web.StreamResponse:
        channel_id, denied = self._channel_or_error(request)
        if denied:
            return denied
        message = self._messages.get(_int(request.match_info["message_id"]) or 0)
        if message is None or message["channel_id"] != str(channel_id):
            return discord_error(404, 10008)
        if request.method == "PATCH" and message["author"]["id"] != str(self.bot_user_id):
            return discord_error(403, 50005)
        return await self._message_verb(request, body, message, None)

    def _new_message(
        self,
        channel_id: int,
        author: dict[str, Any],
        payload: dict[str, Any],
        attachments: list[dict[str, Any]],
        *,
        message_type: int = 0,
        flags: int = 0,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        message_id = self.snowflake()
        message: dict[str, Any] = {
            "id": str(message_id),
            "channel_id": str(channel_id),
            "type": message_type,
            "content": payload.get("content") or "",
            "author": author,
            "attachments": attachments,
            "embeds": payload.get("embeds") or [],
            "components": payload.get("components") or [],
            "mentions": [],
            "mention_roles": [],
            "mention_everyone": False,
            "pinned": False,
            "tts": bool(payload.get("tts")),
            "timestamp": _iso(time.time()),
            "edited_timestamp": None,
            "flags": flags,
            **(extra or {}),
        }
        if "nonce" in payload:
            message["nonce"] = payload["nonce"]
        self._messages[message_id] = message
        self._channel(channel_id)["last_message_id"] = str(message_id)
        return message

    def _edit_message(self, message: dict[str, Any], payload: dict[str, Any], uploads: list[_Upload]) -> dict[str, Any]:
        """Apply an edit; the first edit of a loading (deferred) message fills it rather than 'editing'."""
        new = self._store_uploads(int(message["channel_id"]), payload, uploads)
        if "content" in payload:
            message["content"] = payload["content"] or ""
        for key in ("embeds", "components"):
            if key in payload:
                message[key] = payload[key] or []
        kept = message["attachments"]
        if payload.get("attachments") is not None:
            listed = {str(a.get("id")) for a in payload["attachments"]}
            kept = [a for a in kept if a["id"] in listed]
        message["attachments"] = kept + new
        if message["flags"] & FLAG_LOADING:
            message["flags"] &= ~FLAG_LOADING
        else:
            message["edited_timestamp"] = _iso(time.time())
        return message

    # ------------------------------------------------------------------ attachments and CDN

    def _store_uploads(self, channel_id: int, payload: dict[str, Any], uploads: list[_Upload]) -> list[dict[str, Any]]:
        listed = {str(a.get("id")): a for a in payload.get("attachments") or [] if isinstance(a, dict)}
        stored = []
        for position, upload in enumerate(uploads):
            match = _FILES_FIELD.fullmatch(upload.field)
            meta = listed.get(match.group(1) if match else str(position), {})
            filename = meta.get("filename") or upload.filename
            content_type = upload.content_type
            if content_type in (None, "application/octet-stream"):
                content_type = mimetypes.guess_type(filename)[0]
            attachment = self._new_attachment(upload.data, filename, content_type, channel_id=channel_id)
            if meta.get("description"):
                attachment["description"] = meta["description"]
            stored.append(attachment)
        return stored

    def _new_attachment(
        self,
        data: bytes,
        filename: str,
        content_type: str | None,
        *,
        channel_id: int,
        size: int | None = None,
        width: int | None = None,
        height: int | None = None,
    ) -> dict[str, Any]:
        attachment_id = self.snowflake()
        now = int(time.time())
        signature = hashlib.sha256(f"{attachment_id}{now}".encode()).hexdigest()
        tail = f"attachments/{channel_id}/{attachment_id}/{quote(filename)}?ex={now + 86_400:x}&is={now:x}"
        tail += f"&hm={signature}&"
        detected_width, detected_height = _image_size(data)
        attachment: dict[str, Any] = {
            "id": str(attachment_id),
            "filename": filename,
            "size": len(data) if size is None else size,
            "url": f"{self.cdn_url}/{tail}",
            "proxy_url": f"{self.base_url}/media/{tail}",
        }
        if content_type is not None:
            attachment["content_type"] = content_type
        width, height = width or detected_width, height or detected_height
        if width is not None and height is not None:
            attachment |= {"width": width, "height": height}
        self._attachments[attachment_id] = (attachment, data)
        return attachment

    async def _cdn(self, request: web.Request, body: _Body) -> web.StreamResponse:
        found = self._attachments.get(_int(request.match_info["attachment_id"]) or 0)
        if found is None:
            return web.Response(status=404, text="404: Not Found")
        attachment, data = found
        return web.Response(body=data, content_type=attachment.get("content_type", "application/octet-stream"))

    # ------------------------------------------------------------------ gateway

    async def dispatch(self, event: str, data: Any) -> None:
        """Send a DISPATCH (op 0) to every live session; sessions that are disconnected get it on RESUME."""
        for session in list(self._sessions.values()):
            if session.alive:
                await self._dispatch_to(session, event, data)

    async def drop_connections(self, code: int = 4000) -> None:
        """Close every gateway socket (as Discord does on trouble); discord.py reconnects and RESUMEs."""
        for ws in [ws for ws in self._sockets if not ws.closed]:
            self._closed_by_us.add(ws)
            await ws.close(code=code, message=b"fake discord dropped the connection")
            for session in self._sessions.values():
                if session.ws is ws:
                    session.ws = None  # from now on dispatches wait in the backlog for RESUME

    @property
    def live_sessions(self) -> int:
        return sum(1 for s in self._sessions.values() if s.alive and s.ws is not None)

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        self._sockets.add(ws)
        try:
            hello = {"heartbeat_interval": self.heartbeat_interval_ms, "_trace": ["fake-discord"]}
            await ws.send_str(json.dumps({"op": 10, "d": hello, "s": None, "t": None}))
            async for message in ws:
                if message.type is WSMsgType.TEXT:
                    await self._on_frame(ws, json.loads(message.data))
        finally:
            self._sockets.discard(ws)
            self._detach(ws)
        return ws

    def _detach(self, ws: web.WebSocketResponse) -> None:
        """A client that closes with 1000/1001 ends its session (Discord invalidates it)."""
        clean_close = ws.close_code in (1000, 1001) and ws not in self._closed_by_us
        for session in self._sessions.values():
            if session.ws is ws:
                session.ws = None
                session.alive = session.alive and not clean_close
        self._closed_by_us.discard(ws)

    async def _on_frame(self, ws: web.WebSocketResponse, frame: dict[str, Any]) -> None:
        op, data = frame.get("op"), frame.get("d")
        if op == 1:
            await ws.send_str(json.dumps({"op": 11, "d": None, "s": None, "t": None}))
        elif op == 2:
            await self._identify(ws, data)
        elif op == 6:
            await self._resume(ws, data)
        self.gateway_frames.append(GatewayFrame(op, data, time.monotonic()))
        self.recorder.notify()

    async def _identify(self, ws: web.WebSocketResponse, data: Any) -> None:
        if not isinstance(data, dict) or data.get("token") != self.token:
            self._closed_by_us.add(ws)
            await ws.close(code=4004, message=b"Authentication failed.")
            return
        session = _Session(session_id=secrets.token_hex(16), identify=data, ws=ws)
        self._sessions[session.session_id] = session
        ready = {
            "v": 10,
            "user": self.bot_user,
            "guilds": [],
            "session_id": session.session_id,
            "session_type": "normal",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(self.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "_trace": ["fake-discord"],
        }
        if "shard" in data:  # AutoShardedClient
            ready["shard"] = data["shard"]
        await self._dispatch_to(session, "READY", ready)

    async def _resume(self, ws: web.WebSocketResponse, data: Any) -> None:
        session = self._sessions.get(data.get("session_id", "")) if isinstance(data, dict) else None
        if session is None or not session.alive or data.get("token") != self.token:
            await ws.send_str(json.dumps({"op": 9, "d": False, "s": None, "t": None}))
            return
        session.ws = ws
        last_seen = int(data.get("seq") or 0)
        for frame in session.backlog:
            if frame["s"] > last_seen:
                await ws.send_str(json.dumps(frame))
        await self._dispatch_to(session, "RESUMED", {"_trace": ["fake-discord"]})

    @staticmethod
    async def _dispatch_to(session: _Session, event: str, data: Any) -> None:
        session.seq += 1
        frame = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.backlog.append(frame)
        if session.ws is not None and not session.ws.closed:
            with contextlib.suppress(ConnectionError):
                await session.ws.send_str(json.dumps(frame))
