"""API keys and their roles (``Authorization: Bearer …`` or ``X-API-Key``), compared in constant time.

``DETECTBOT_API_KEYS="client-key,telegram:TG-BOT-KEY,discord:DC-BOT-KEY,admin:ADMIN-KEY"``; a bare key is a client
key. The trust model is written down in ``docs/security.md``; in short:

- **client** submits photos and reads, cancels and deletes only the jobs it submitted (another's job is 404); its
  photos count against the per-key limits (``key:<fingerprint>``);
- **bot** (``telegram:KEY`` or ``discord:KEY``: one platform; ``bot:KEY``: both) may also set a chat ``origin`` of
  its platform, name status messages, forget a person, read and change chat settings, read stats, and list and
  requeue dead jobs — all only for its own platform's chats (for its admins' commands: the bot itself checks
  ``DETECTBOT_ADMIN_IDS`` and the chat's admins). It never sees HTTP clients' or web visitors' jobs;
- **admin** may do everything.

Workers need no key: their signed links are their capability. With ``DETECTBOT_WEB_UPLOADS=open`` a browser of
the web page presents a signed browser token instead (:class:`WebTokens`): a client of its own, whose limits key on
its address (``web:<address digest>``), so a new token does not reset them.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from aiohttp import web
from pydantic import SecretStr

from queue_gateway.errors import Forbidden, Unauthorized
from queue_gateway.signing import Action, SignatureError, Signer

CHAT_PLATFORMS = frozenset({"telegram", "discord"})


class Role(IntEnum):
    """Each role may do what the ones below it may (a bot only for its own platforms)."""

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
class KeyEntry:
    role: Role
    key: str
    platforms: frozenset[str] = frozenset()  # the chat platforms a bot key acts for


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking: the key's role, a fingerprint that names the key without revealing it, whose limits its
    photos count against (``user_ref``), and the chat platforms it may act for.

    A browser of the open web page is a client with the platform ``web``; an HTTP client's ``platform`` is ``http``.
    """

    role: Role
    fingerprint: str
    user_ref: str | None = None
    platform: str = "http"
    platforms: frozenset[str] = field(default_factory=frozenset)

    def at_least(self, role: Role) -> bool:
        return self.role >= role

    def acts_for(self, platform: str) -> bool:
        """Whether this caller may act on the chats of ``platform`` (an admin on every one)."""
        return self.role is Role.ADMIN or (self.role is Role.BOT and platform in self.platforms)

    def may_see(self, owner: str | None, platform: str) -> bool:
        """A job this caller submitted, a job of a platform it acts for, or any job for an admin."""
        return self.role is Role.ADMIN or owner == self.fingerprint or self.acts_for(platform)


def fingerprint(key: str) -> str:
    return hashlib.sha256(_as_bytes(key)).hexdigest()[:16]


def _as_bytes(text: str) -> bytes:
    return text.encode("utf-8", "backslashreplace")  # a header may hold anything; never raise on it


def parse_keys(entries: Iterable[SecretStr]) -> list[KeyEntry]:
    """``bot:KEY`` → a bot key for both chat platforms; ``telegram:KEY`` one for Telegram; a bare ``KEY`` a client's."""
    parsed = []
    for entry in entries:
        value = entry.get_secret_value().strip()
        prefix, sep, key = value.partition(":")
        prefix = prefix.strip().lower()
        if sep and prefix in CHAT_PLATFORMS:
            parsed.append(KeyEntry(Role.BOT, key.strip(), frozenset({prefix})))
        elif sep and prefix == "bot":
            parsed.append(KeyEntry(Role.BOT, key.strip(), CHAT_PLATFORMS))
        elif sep and prefix in ("client", "admin"):
            parsed.append(
                KeyEntry(Role.named(prefix), key.strip(), CHAT_PLATFORMS if prefix == "admin" else frozenset())
            )
        else:
            parsed.append(KeyEntry(Role.CLIENT, value))
    return [entry for entry in parsed if entry.key]


class ClientAddresses:
    """The address a request comes from: the peer, or, behind the reverse proxies named in
    ``DETECTBOT_TRUSTED_PROXIES``, the right-most ``X-Forwarded-For`` entry that is not one of them.

    IPv6 addresses count by their /64 network (one household or host is given a whole /64).
    """

    def __init__(self, trusted: Sequence[str] = ()) -> None:
        self._trusted = [ipaddress.ip_network(net, strict=False) for net in trusted]

    def of(self, request: web.BaseRequest) -> str:
        peer = request.remote or ""
        if self._trusted and self._is_trusted(peer):
            hops = [hop.strip() for hop in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",")]
            for hop in reversed([hop for hop in hops if hop]):
                if not self._is_trusted(hop):
                    return _network(hop)
        return _network(peer)

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self._trusted)


def _network(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]  # not an address (a unix socket, a garbled header): itself, bounded
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class WebTokens:
    """Browser tokens of the open web page, ``web1.<id>.<expiry>.<signature>``: HMAC-signed, nothing stored.

    A token names a client of its own (fingerprint ``web:<id>``): it sees only its own jobs. Its limits key on its
    address (``web:@<digest>``: the address is never stored), so a new token does not reset them.
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

    def visitor(self, address: str) -> str:
        """``web:@<digest>``: the limits of whoever browses from ``address`` (keyed, so the address stays unknown)."""
        return f"web:@{self._signer.sign(Action.WEB_VISITOR, address, 0)[:16]}"


class ApiKeys:
    def __init__(
        self,
        entries: Iterable[SecretStr],
        *,
        web_tokens: WebTokens | None = None,
        addresses: ClientAddresses | None = None,
    ) -> None:
        self._keys = [(entry.role, entry.platforms, _as_bytes(entry.key)) for entry in parse_keys(entries)]
        self._web_tokens = web_tokens  # browser tokens are accepted only when the page is open to anyone
        self.addresses = addresses or ClientAddresses()
        if not self._keys:
            raise ValueError("set DETECTBOT_API_KEYS: the gateway needs at least one API key for its clients")

    @staticmethod
    def presented(request: web.BaseRequest) -> str | None:
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("bearer "):
            return header[7:].strip()
        return request.headers.get("X-API-Key")

    def caller(self, request: web.BaseRequest, *, at_least: Role = Role.CLIENT) -> Caller:
        """The caller behind the request's key; 401 without a valid key, 403 when its role is too low."""
        presented = self.presented(request)
        if not presented:
            raise Unauthorized()
        if self._web_tokens is not None and WebTokens.looks_like(presented):
            return self._web_caller(self._web_tokens, request, presented, at_least)
        candidate = _as_bytes(presented)
        found: tuple[Role, frozenset[str]] | None = None
        # compare against every key so the time taken does not tell which one nearly matched
        for role, platforms, key in self._keys:
            if hmac.compare_digest(candidate, key) and (found is None or role > found[0]):
                found = (role, platforms)
        if found is None:
            raise Unauthorized("That API key is not valid here.")
        role, platforms = found
        if role < at_least:
            raise Forbidden(f"This API key may not do that (it is a {role.name.lower()} key).")
        key_print = fingerprint(presented)
        user_ref = f"key:{key_print}" if role is Role.CLIENT else None  # a client's photos count against its limits
        return Caller(role, key_print, user_ref=user_ref, platforms=platforms)

    def _web_caller(self, tokens: WebTokens, request: web.BaseRequest, presented: str, at_least: Role) -> Caller:
        try:
            client_id = tokens.client_id(presented)
        except SignatureError:
            raise Unauthorized("That browser token is not valid (or has expired). Reload the page.") from None
        if at_least > Role.CLIENT:
            raise Forbidden("A browser token may only send photos and follow them.")
        return Caller(Role.CLIENT, client_id, user_ref=tokens.visitor(self.addresses.of(request)), platform="web")

    def valid(self, request: web.BaseRequest) -> bool:
        try:
            self.caller(request)
        except Unauthorized:
            return False
        return True
