"""API keys (``Authorization: Bearer …`` or ``X-API-Key``), compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from aiohttp import web
from pydantic import SecretStr

from queue_gateway.errors import ApiError


class ApiKeys:
    def __init__(self, keys: Iterable[SecretStr], admin_keys: Iterable[SecretStr]) -> None:
        self._admin = [k.get_secret_value().encode() for k in admin_keys]
        self._keys = [k.get_secret_value().encode() for k in keys] + self._admin

    @staticmethod
    def presented(request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("bearer "):
            return header[7:].strip()
        return request.headers.get("X-API-Key")

    def check(self, request: web.Request, *, admin: bool = False) -> str:
        """Return a short fingerprint of the caller's key, or raise 401."""
        presented = self.presented(request)
        if not presented:
            raise ApiError(401, "unauthorized", "An API key is required (Authorization: Bearer <key>).")
        candidate = presented.encode()
        allowed = self._admin if admin else self._keys
        # compare against every key so the time taken does not tell which one nearly matched
        matched = [hmac.compare_digest(candidate, key) for key in allowed]
        if not any(matched):
            raise ApiError(401, "unauthorized", "That API key is not valid here.")
        return hashlib.sha256(candidate).hexdigest()[:12]

    def valid(self, request: web.Request) -> bool:
        try:
            self.check(request)
        except ApiError:
            return False
        return True
