"""The web page's routes: ``/``, ``/admin``, ``/static/…``, ``POST /v1/web/session`` and ``GET /v1/texts``.

Everything the pages need ships in ``static/`` and is served from here (no CDN, nothing from the internet).
The pages talk only to the gateway's own API, with the same checks as any other client:

- ``DETECTBOT_WEB_UPLOADS=key`` (default): the page asks for an API key and sends it as a bearer key;
- ``open``: the page first takes a signed browser token (``POST /v1/web/session``), a client of its own whose
  per-person limits key on ``web:<id>``; token requests are limited per address;
- ``off``: ``/``, ``/admin`` and ``/static/…`` answer 404, and so does ``/v1/web/session``.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from queue_gateway.appkeys import api_keys_key, settings_key
from queue_gateway.auth import WebTokens
from queue_gateway.endpoints import Endpoints, Param, answer
from queue_gateway.errors import JobNotFound, TooManyInLine
from queue_gateway.lang import requested_language
from queue_gateway.public import texts
from queue_gateway.public.contract import ErrorCode, PageTexts, WebSession
from queue_gateway.settings import GatewaySettings
from queue_gateway.signing import Signer

STATIC = Path(__file__).parent / "static"

CONTENT_TYPES = {
    ".html": "text/html",
    ".css": "text/css",
    ".js": "text/javascript",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".png": "image/png",
    ".woff2": "font/woff2",
}
TEXTUAL = {".html", ".css", ".js", ".svg", ".json"}

# The pages run only our own scripts and styles, and reach only this origin (blob: for the annotated images).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the signed links must not leak in a Referer
    "X-Frame-Options": "DENY",
}

endpoints = Endpoints()


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


class Assets:
    """The static files, read once when the app is built (they are small)."""

    def __init__(self, folder: Path) -> None:
        self.files: dict[str, Asset] = {}
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.suffix in CONTENT_TYPES:
                body = path.read_bytes()
                kind = CONTENT_TYPES[path.suffix] + ("; charset=utf-8" if path.suffix in TEXTUAL else "")
                self.files[path.name] = Asset(body, kind, '"' + hashlib.sha256(body).hexdigest()[:20] + '"')


class AddressLimit:
    """At most ``per_minute`` browser tokens per client address a minute (fixed windows; memory stays bounded)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._minute = 0
        self._counts: dict[str, int] = {}

    def take(self, address: str, at: float) -> int:
        """0 when allowed, else the seconds until the next window."""
        minute = int(at // 60)
        if minute != self._minute:
            self._minute, self._counts = minute, {}
        count = self._counts.get(address, 0)
        if count >= self.per_minute:
            return int(60 - at % 60) + 1
        self._counts[address] = count + 1
        return 0


assets_key = web.AppKey("web_assets", Assets)
tokens_key = web.AppKey("web_tokens", WebTokens)
session_limit_key = web.AppKey("web_session_limit", AddressLimit)


def web_tokens(settings: GatewaySettings, signer: Signer) -> WebTokens | None:
    """Browser tokens, only when the page is open to anyone."""
    return WebTokens(signer, settings.web_session_ttl_s) if settings.web_uploads == "open" else None


def setup(app: web.Application, tokens: WebTokens | None) -> None:
    """Add the page's routes (they answer 404 when ``web_uploads`` is off) and what they serve."""
    app[assets_key] = Assets(STATIC)
    app[session_limit_key] = AddressLimit(app[settings_key].web_sessions_per_minute)
    if tokens is not None:
        app[tokens_key] = tokens


class PageOff(JobNotFound):
    """The page is off (``DETECTBOT_WEB_UPLOADS=off``), or there is no such file."""

    message = "There is no such page."


def _asset(request: web.Request, name: str) -> web.Response:
    if request.app[settings_key].web_uploads == "off":
        raise PageOff()
    asset = request.app[assets_key].files.get(name)
    if asset is None:
        raise PageOff()
    headers = {"Cache-Control": "no-cache", "ETag": asset.etag, "X-Content-Type-Options": "nosniff"}
    if name.endswith(".html"):
        headers.update(PAGE_HEADERS)
    if request.headers.get("If-None-Match") == asset.etag:
        return web.Response(status=304, headers=headers)
    return web.Response(body=asset.body, headers={**headers, "Content-Type": asset.content_type})


HTML = {200: "text/html", 404: "text/html"}
NAME = Param("name", "path", {"type": "string", "maxLength": 100}, required=True)
LANG = Param("lang", "query", {"type": "string", "maxLength": 100}, "the languages wanted (else Accept-Language)")


@endpoints.get("/", auth="public", ok=HTML, database=False)
async def index(request: web.Request) -> web.Response:
    """The upload page."""
    return _asset(request, "index.html")


@endpoints.get("/admin", auth="public", ok=HTML, database=False)
async def admin(request: web.Request) -> web.Response:
    """The admin dashboard (it shows nothing until an admin key is given)."""
    return _asset(request, "admin.html")


@endpoints.get("/static/{name}", auth="public", ok={200: "application/octet-stream"}, errors=(PageOff,),
               params=(NAME,), database=False)  # fmt: skip
async def static(request: web.Request) -> web.Response:
    """The pages' scripts, styles and icons."""
    name = request.match_info["name"]
    if name.endswith(".html"):
        raise PageOff()  # the pages have their own addresses
    return _asset(request, name)


@endpoints.post("/v1/web/session", auth="public", ok={200: WebSession}, errors=(PageOff, TooManyInLine), database=False)
async def new_session(request: web.Request) -> web.Response:
    """A signed browser token for the open page (``DETECTBOT_WEB_UPLOADS=open`` only; 404 otherwise)."""
    tokens = request.app.get(tokens_key)
    if tokens is None:
        raise PageOff()
    address = request.app[api_keys_key].addresses.of(request)  # behind a trusted proxy: the visitor's own
    wait = request.app[session_limit_key].take(address, time.time())
    if wait:
        raise TooManyInLine(
            "That is a lot of new sessions from one address. Please wait a minute.",
            retry_after=wait,
            code=ErrorCode.RATE_LIMITED,
        )
    token, expires = tokens.issue()
    return answer(WebSession(token=token, expires_at=expires), headers={"Cache-Control": "no-store"})


@endpoints.get("/v1/texts", auth="public", ok={200: PageTexts}, params=(LANG,), database=False)
async def get_texts(request: web.Request) -> web.Response:
    """The pages' own labels in one language: ``?lang=ru`` (a list is fine), else ``Accept-Language``, else English.
    Every other sentence (a photo's status, an error, the stats) comes rendered in the answers themselves."""
    lang = requested_language(request)
    return answer(catalogue(lang), headers={"Cache-Control": "public, max-age=300", "Vary": "Accept-Language"})


def catalogue(lang: str) -> PageTexts:
    """The web_* labels of the catalogue in ``lang``."""
    translation = texts.translation(lang)
    sentences = {key: translation.gettext(message) for key, message in texts.MESSAGES.items() if key.startswith("web_")}
    return PageTexts(lang=lang, languages=list(texts.languages()), texts=sentences)
