"""Capability URLs: HMAC-SHA256 over (action, job id, expiry). Forged, altered or expired → rejected."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from enum import StrEnum
from urllib.parse import urlencode


class Action(StrEnum):
    INPUT = "input"  # a worker downloads the job's image
    RESULT = "result"  # a worker uploads the result
    VIEW = "view"  # the submitter reads status and the annotated image
    WEB_SESSION = "web-session"  # a browser of the open web page, as a client of its own
    WEB_VISITOR = "web-visitor"  # the digest of a visitor's address (their limits), never the address itself


class SignatureError(Exception):
    """A signed link that does not hold: forged, altered or malformed (the HTTP layer answers 403)."""


class SignatureMissing(SignatureError):
    """No signature at all (401)."""


class SignatureExpired(SignatureError):
    """A genuine link past its expiry (401)."""


class Signer:
    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the signing secret must be at least 16 bytes")
        self._key = key

    def sign(self, action: Action, job_id: str, expires: int) -> str:
        message = f"{action}:{job_id}:{expires}".encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def query(self, action: Action, job_id: str, ttl_s: int) -> str:
        """``exp=…&sig=…`` for a URL valid ``ttl_s`` seconds from now."""
        expires = int(time.time()) + ttl_s
        return urlencode({"exp": expires, "sig": self.sign(action, job_id, expires)})

    def verify(self, action: Action, job_id: str, exp: str | None, sig: str | None) -> None:
        if not exp or not sig:
            raise SignatureMissing("missing signature")
        if not (exp.isascii() and exp.isdigit() and len(exp) <= 12):
            raise SignatureError("malformed expiry")
        expires = int(exp)
        presented = sig.encode("utf-8", "backslashreplace")  # a query may hold anything; never raise on it
        if not hmac.compare_digest(self.sign(action, job_id, expires).encode(), presented):
            raise SignatureError("bad signature")
        if expires < time.time():
            raise SignatureExpired("link expired")
