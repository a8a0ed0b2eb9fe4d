"""API keys and their roles (``Authorization: Bearer …`` or ``X-API-Key``), compared in constant time.

``DETECTBOT_API_KEYS="client-key,bot:BOT-KEY,admin:ADMIN-KEY"``; a bare key is a client key:

- **client** submits photos and reads only the jobs it submitted (another client's job is 404);
- **bot** may also set a chat ``origin``, name status messages, forget a person, read stats and dead jobs,
  requeue (for its admins' commands: the bot itself checks ``DETECTBOT_ADMIN_IDS``) and read any job;
- **admin** may do everything.

Workers need no key: their signed links are their capability. With ``DETECTBOT_WEB_UPLOADS=open`` a browser of
the web page presents a signed browser token instead (:class:`WebTokens`): a client of its own.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

from aiohttp import web
from pydantic import SecretStr

from queue_gateway.errors import Forbidden, Unauthorized
from queue_gateway.signing import Action, SignatureError, Signer


class Role(IntEnum):
    """Each role may do what the ones below it may."""

    CLIENT = 1
    BOT = 2
    ADMIN = 3

    @classmethod
    def named(cls, name: str) -> Role:
        try:
            return cls[name.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown key role {name!r}: use client, bot or admin (DETECTBOT_API_KEYS)") from None


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking: the key's role and a fingerprint that names the key without revealing it.

    A browser of the open web page is a client with a ``user_ref`` (``web:<id>``, its per-person limits) and
    the platform ``web``.
    """

    role: Role
    fingerprint: str
    user_ref: str | None = None
    platform: str = "http"

    def at_least(self, role: Role) -> bool:
        return self.role >= role

    def may_see(self, owner: str | None) -> bool:
        """Bots and admins see every job; a client only its own."""
        return self.role >= Role.BOT or owner == self.fingerprint


def fingerprint(key: str) -> str:
    return hashlib.sha256(_as_bytes(key)).hexdigest()[:16]


def _as_bytes(text: str) -> bytes:
    return text.encode("utf-8", "backslashreplace")  # a header may hold anything; never raise on it


def parse_keys(entries: Iterable[SecretStr]) -> list[tuple[Role, str]]:
    """``bot:KEY`` → (BOT, KEY); a bare ``KEY`` is a client key."""
    parsed = []
    for entry in entries:
        value = entry.get_secret_value().strip()
        role, sep, key = value.partition(":")
        if sep and role.strip().lower() in ("client", "bot", "admin"):
            parsed.append((Role.named(role), key.strip()))
        else:
            parsed.append((Role.CLIENT, value))
    return [(role, key) for role, key in parsed if key]


class WebTokens:
    """Browser tokens of the open web page, ``web1.<id>.<expiry>.<signature>``: HMAC-signed, nothing stored.

    A token names a client of its own (fingerprint and user_ref ``web:<id>``): it sees only its own jobs, and
    the intake's per-person limits apply to it.
    """

    PREFIX = "web1."
    ID_HEX = 16  # 64 random bits; "web:" + 16 hex characters fits the jobs' owner column (40)

    def __init__(self, signer: Signer, ttl_s: int) -> None:
        self._signer = signer
        self._ttl_s = ttl_s

    def issue(self) -> tuple[str, int]:
        """A new token and its expiry (Unix time)."""
        token_id = secrets.token_hex(self.ID_HEX // 2)
        expires = int(time.time()) + self._ttl_s
        return f"{self.PREFIX}{token_id}.{expires}.{self._signer.sign(Action.WEB_SESSION, token_id, expires)}", expires

    @classmethod
    def looks_like(cls, presented: str) -> bool:
        return presented.startswith(cls.PREFIX)

    def client_id(self, presented: str) -> str:
        """``web:<id>`` for a valid token; :class:`SignatureError` for a forged, altered or expired one."""
        parts = presented[len(self.PREFIX) :].split(".")
        if len(parts) != 3:
            raise SignatureError("malformed token")
        token_id, exp, sig = parts
        if len(token_id) != self.ID_HEX or not all(c in "0123456789abcdef" for c in token_id):
            raise SignatureError("malformed token")
        self._signer.verify(Action.WEB_SESSION, token_id, exp, sig)  # constant-time comparison
        return f"web:{token_id}"


class ApiKeys:
    def __init__(self, entries: Iterable[SecretStr], *, web_tokens: WebTokens | None = None) -> None:
        self._keys = [(role, _as_bytes(key)) for role, key in parse_keys(entries)]
        self._web_tokens = web_tokens  # browser tokens are accepted only when the page is open to anyone
        if not self._keys:
            raise ValueError("set DETECTBOT_API_KEYS: the gateway needs at least one API key for its clients")

    @staticmethod
    def presented(request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("bearer "):
            return header[7:].strip()
        return request.headers.get("X-API-Key")

    def caller(self, request: web.Request, *, at_least: Role = Role.CLIENT) -> Caller:
        """The caller behind the request's key; 401 without a valid key, 403 when its role is too low."""
        presented = self.presented(request)
        if not presented:
            raise Unauthorized()
        if self._web_tokens is not None and WebTokens.looks_like(presented):
            return self._web_caller(self._web_tokens, presented, at_least)
        candidate = _as_bytes(presented)
        role: Role | None = None
        # compare against every key so the time taken does not tell which one nearly matched
        for key_role, key in self._keys:
            if hmac.compare_digest(candidate, key) and (role is None or key_role > role):
                role = key_role
        if role is None:
            raise Unauthorized("That API key is not valid here.")
        if role < at_least:
            raise Forbidden(f"This API key may not do that (it is a {role.name.lower()} key).")
        return Caller(role, fingerprint(presented))

    @staticmethod
    def _web_caller(tokens: WebTokens, presented: str, at_least: Role) -> Caller:
        try:
            client_id = tokens.client_id(presented)
        except SignatureError:
            raise Unauthorized("That browser token is not valid (or has expired). Reload the page.") from None
        if at_least > Role.CLIENT:
            raise Forbidden("A browser token may only send photos and follow them.")
        return Caller(Role.CLIENT, client_id, user_ref=client_id, platform="web")

    def valid(self, request: web.Request) -> bool:
        try:
            self.caller(request)
        except Unauthorized:
            return False
        return True
