"""API keys and their roles (``Authorization: Bearer …`` or ``X-API-Key``), compared in constant time.

``DETECTBOT_API_KEYS="client-key,bot:BOT-KEY,admin:ADMIN-KEY"``; a bare key is a client key:

- **client** submits photos and reads only the jobs it submitted (another client's job is 404);
- **bot** may also set a chat ``origin``, name status messages, forget a person, read stats and dead jobs,
  requeue (for its admins' commands: the bot itself checks ``DETECTBOT_ADMIN_IDS``) and read any job;
- **admin** may do everything.

Workers need no key: their signed links are their capability.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

from aiohttp import web
from pydantic import SecretStr

from queue_gateway.errors import Forbidden, Unauthorized


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
    """Who is asking: the key's role and a fingerprint that names the key without revealing it."""

    role: Role
    fingerprint: str

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


class ApiKeys:
    def __init__(self, entries: Iterable[SecretStr]) -> None:
        self._keys = [(role, _as_bytes(key)) for role, key in parse_keys(entries)]
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

    def valid(self, request: web.Request) -> bool:
        try:
            self.caller(request)
        except Unauthorized:
            return False
        return True
