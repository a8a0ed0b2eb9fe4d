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
from queue_gateway.errors import TooManyInLine
from queue_gateway.public import texts
from queue_gateway.public.contract import ErrorCode
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

# Sentences of the catalogue the pages speak besides their own web_* ones.
SHARED_KEYS = (
    "queued", "queued_now", "processing", "done_in", "failed", "dead", "cancelled",
    "reason_crashed", "reason_timeout", "reason_unknown", "no_objects", "busy", "rate_limited", "unavailable",
    "bad_image", "too_late", "not_requeueable", "language_name",
    "stats_header", "stats_jobs", "stats_by_platform", "stats_in_progress", "stats_latency", "stage_queue_wait",
    "stage_processing", "stage_end_to_end", "stats_queue", "stats_queue_unknown", "stats_workers", "stats_dead",
    "stats_top", "dlq_empty", "requeue_button",
)  # fmt: skip
PLURAL_KEYS = ("too_many_in_line", "quota", "eta_seconds", "eta_minutes", "dlq_header")
TEMPLATED_ERRORS = {"busy", "too_many_in_line", "quota"}  # the page fills in Retry-After and the limit
# where the page's words differ from the bots' (a bot's key, a chat)
WEB_ERRORS = {
    "unauthorized": "web_key_invalid",
    "forbidden": "web_forbidden",
    "expired": "web_link_expired",
    "bad_request": "web_bad_request",
    "gone": "web_gone",
    "not_found": "web_gone",
}
# a count standing for each CLDR plural category, for ngettext (the page picks one with Intl.PluralRules)
PLURAL_SAMPLES = {"zero": 0, "one": 1, "two": 2, "few": 3, "many": 5, "other": 10}

routes = web.RouteTableDef()


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
    app.add_routes(routes)


def _asset(request: web.Request, name: str) -> web.Response:
    if request.app[settings_key].web_uploads == "off":
        raise web.HTTPNotFound()
    asset = request.app[assets_key].files.get(name)
    if asset is None:
        raise web.HTTPNotFound()
    headers = {"Cache-Control": "no-cache", "ETag": asset.etag, "X-Content-Type-Options": "nosniff"}
    if name.endswith(".html"):
        headers.update(PAGE_HEADERS)
    if request.headers.get("If-None-Match") == asset.etag:
        return web.Response(status=304, headers=headers)
    return web.Response(body=asset.body, headers={**headers, "Content-Type": asset.content_type})


@routes.get("/")
async def index(request: web.Request) -> web.Response:
    """The upload page."""
    return _asset(request, "index.html")


@routes.get("/admin")
async def admin(request: web.Request) -> web.Response:
    """The admin dashboard (it shows nothing until an admin key is given)."""
    return _asset(request, "admin.html")


@routes.get("/static/{name}")
async def static(request: web.Request) -> web.Response:
    """The pages' scripts, styles and icons."""
    name = request.match_info["name"]
    if name.endswith(".html"):
        raise web.HTTPNotFound()  # the pages have their own addresses
    return _asset(request, name)


@routes.post("/v1/web/session")
async def new_session(request: web.Request) -> web.Response:
    """A signed browser token for the open page (``DETECTBOT_WEB_UPLOADS=open`` only; 404 otherwise)."""
    tokens = request.app.get(tokens_key)
    if tokens is None:
        raise web.HTTPNotFound()
    address = request.app[api_keys_key].addresses.of(request)  # behind a trusted proxy: the visitor's own
    wait = request.app[session_limit_key].take(address, time.time())
    if wait:
        raise TooManyInLine(
            "That is a lot of new sessions from one address. Please wait a minute.",
            retry_after=wait,
            code=ErrorCode.RATE_LIMITED,
        )
    token, expires = tokens.issue()
    return web.json_response({"token": token, "expires_at": expires}, headers={"Cache-Control": "no-store"})


@routes.get("/v1/texts")
async def get_texts(request: web.Request) -> web.Response:
    """The pages' sentences in one language: ``?lang=ru`` (a list is fine), else ``Accept-Language``, else English."""
    lang = negotiate(request.query.get("lang"), request.headers.get("Accept-Language"))
    return web.json_response(
        catalogue(lang), headers={"Cache-Control": "public, max-age=300", "Vary": "Accept-Language"}
    )


def negotiate(wanted: str | None, accept_language: str | None) -> str:
    """The first language we have among ``wanted`` (comma-separated), then ``Accept-Language`` by weight."""
    available = texts.languages()
    candidates = [part.strip() for part in (wanted or "").split(",")]
    weighted: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "").split(",")):
        code, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                weight = 0.0
        weighted.append((-weight, index, code.strip()))
    candidates += [code for weight, _, code in sorted(weighted) if weight < 0]
    for code in candidates:
        short = code.split("-")[0].split("_")[0].lower()
        if short in available:
            return short
    return texts.DEFAULT_LANGUAGE


def catalogue(lang: str) -> dict[str, object]:
    """The web_* sentences, the shared ones the pages use, the error sentences, plural forms and object labels."""
    translation = texts.translation(lang)
    keys = [key for key in texts.MESSAGES if key.startswith("web_")] + list(SHARED_KEYS)
    sentences = {key: translation.gettext(texts.MESSAGES[key]) for key in keys}
    plurals = {
        key: {category: translation.ngettext(*texts.PLURALS[key], count) for category, count in PLURAL_SAMPLES.items()}
        for key in PLURAL_KEYS
    }
    errors = {str(code): texts.for_error(str(code), lang) for code in ErrorCode if str(code) not in TEMPLATED_ERRORS}
    errors.update({code: sentences[key] for code, key in WEB_ERRORS.items()})
    return {
        "lang": lang,
        "languages": list(texts.languages()),
        "texts": sentences,
        "errors": errors,
        "plurals": plurals,
        "labels": {name: texts.label(name, lang) for name in texts.OBJECTS},
    }
