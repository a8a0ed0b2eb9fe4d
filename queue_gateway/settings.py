"""The gateway's settings: one validated object, built in ``main()`` and passed down."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import secrets
import socket
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from db.blobstore import FileBlobStore
from db.engine import sqlite_url
from queue_gateway.auth import parse_keys
from queue_gateway.public.settings import DiscordConnection, QueueSettings, TelegramConnection

MiB = 1024 * 1024
MIN_KEY_CHARS = 16  # an API key a gateway reachable from other machines accepts
MIN_SECRET_BYTES = 32  # the signing secret of such a gateway
KNOWN_WEAK = frozenset({"change-me", "changeme", "secret", "password", "test", "admin", "example", "key", "token"})


DISCORD_IDS_FROM = 10**15  # Discord's ids (snowflakes) are this large; Telegram's are far smaller


def admin_ref(value: str) -> str:
    """``"telegram:5001"`` for ``"telegram:5001"``, or a bare id by its size (Discord's snowflakes are huge)."""
    platform, _, user_id = value.strip().rpartition(":")
    if not user_id.isdigit() or platform not in ("", "telegram", "discord"):
        raise ValueError(f"{value!r} is not a user id (a number, or telegram:ID / discord:ID)")
    return f"{platform or ('discord' if int(user_id) >= DISCORD_IDS_FROM else 'telegram')}:{int(user_id)}"


def webhook_keys(secret: SecretStr) -> list[bytes]:
    """The signing keys of ``DETECTBOT_WEBHOOK_SECRET`` (``whsec_`` + base64, comma-separated while rotating)."""
    keys = []
    for part in secret.get_secret_value().replace(" ", ",").split(","):
        if not part:
            continue
        try:
            key = base64.b64decode(part.removeprefix("whsec_"), validate=True)
        except binascii.Error:
            key = b""
        if not part.startswith("whsec_") or not 24 <= len(key) <= 64:
            raise ValueError(
                "must be whsec_ followed by the base64 of 24 to 64 random bytes "
                "(make one: python -c \"import base64,os;print('whsec_'+base64.b64encode(os.urandom(32)).decode())\")"
            )
        keys.append(key)
    return keys


def _split(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class GatewaySettings(QueueSettings, TelegramConnection, DiscordConnection):
    data_dir: Path = Path(".detectbot")
    database_url: str = ""  # empty: SQLite under data_dir
    blob_dir: Path | None = None  # photos and results by sha256, shared by the replicas; empty: data_dir/blobs
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    name: str = Field(default_factory=socket.gethostname, max_length=120)  # this replica, for delivery leases

    # "client-key,bot:BOT-KEY,admin:ADMIN-KEY" (a bare key is a client key); see queue_gateway.auth
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    signing_secret: SecretStr | None = None  # empty: generated once and kept in data_dir

    max_upload_bytes: int = 20 * MiB  # Telegram's getFile limit; bigger photos are rare and slow
    max_pixels: int = 25_000_000  # 25 MP: a 6000x4000 camera photo; beyond that is a decompression bomb
    busy_retry_after_s: int = 30
    worker_link_ttl_s: int = Field(default=24 * 3600, ge=60)  # a job's worker links; a requeue makes new ones
    view_link_ttl_s: int = Field(default=7 * 24 * 3600, ge=60)  # a job's status and result links, from submission
    publish_timeout_s: float = 10.0
    relay_interval_s: float = 2.0  # how often the outbox relay looks for jobs a crash left unpublished
    relay_grace_s: float = 5.0  # how old an outbox entry must be before the relay takes it over
    auto_migrate: bool = True
    retention_days: float = 7.0  # photos and results are deleted after this; job rows stay for stats
    retention_check_s: float = 3600.0
    history_days: float = Field(default=30.0, ge=0)  # what was found (not the photo) stays in the sender's /history
    # a stored file no row names is deleted after this (an upload refused, or a crash between storing and recording)
    blob_grace_s: float = Field(default=3600.0, ge=60)
    result_cache: bool = True  # the same photo with the same parameters again: reuse the stored result
    database_retry_s: float = 20.0  # how long a request keeps retrying a database that went away, then 503

    # a person: a chat user, a chat's stand-in sender (anonymous admins, a channel), a web visitor (by address)
    max_inflight_per_user: int = Field(default=3, ge=1)  # photos (an album counts once) in line per person
    max_per_minute_per_user: int = Field(default=30, ge=1)  # photos a person may send a minute (refused ones too)
    daily_quota_per_user: int = Field(default=0, ge=0)  # photos a person may send a day (UTC); 0: no quota
    fair_share_per_user: int = Field(default=2, ge=1)  # a person's photos in the broker's queue; the rest wait
    # an HTTP client key (a program that may serve many people of its own)
    max_inflight_per_key: int = Field(default=500, ge=1)
    max_per_minute_per_key: int = Field(default=600, ge=1)
    daily_quota_per_key: int = Field(default=0, ge=0)
    fair_share_per_key: int = Field(default=8, ge=1)
    # reverse proxies whose X-Forwarded-For is believed (CIDRs); otherwise every visitor behind one shares its address
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_waiting_polls: int = Field(default=1000, ge=1)  # GET /v1/jobs/{id}?wait=… held open at once, in all
    max_waiting_polls_per_client: int = Field(default=10, ge=1)  # … and per key, browser or address
    keepalive_timeout_s: float = Field(default=15.0, gt=0)  # an idle connection is closed after this
    upload_timeout_s: float = Field(default=60.0, gt=0)  # a request body must arrive within this (slow clients)

    delivery_concurrency: int = 8  # chats served at once; one chat is always served in order
    delivery_max_attempts: int = 12  # then the chat is given up on (the result stays available over HTTP)
    delivery_lease_s: float = 15.0  # a delivery in hand, renewed while it runs; another replica takes over after
    chat_min_interval_s: float = 1.0  # Telegram allows about one message per second per chat

    # completion webhooks (docs/webhooks.md), signed with this Standard Webhooks secret: "whsec_" + base64 of 24
    # to 64 random bytes (several, comma-separated, while rotating: each try carries a signature of each)
    webhook_secret: SecretStr | None = None
    webhook_allow_private: bool = False  # also receivers on loopback, private and link-local addresses
    webhook_retry_s: float = Field(default=24 * 3600, ge=0)  # a failing webhook is tried this long after its first try
    webhook_timeout_s: float = Field(default=10.0, gt=0)  # a receiver must answer within this
    webhook_backoff_s: float = Field(default=5.0, gt=0)  # the first pause after a failed try; it doubles each time
    webhook_concurrency: int = Field(default=16, ge=1)  # webhooks sent at once
    webhook_per_host: int = Field(default=2, ge=1)  # … to one receiver's host (a burst is paced, not fired at once)

    # "no worker is running": when the waiting photos say so, when the admins hear, and who they are: Telegram and
    # Discord user ids (told in their private chat with the bot); "telegram:ID" / "discord:ID", or a bare id
    no_worker_notice_s: float = Field(default=30.0, ge=0)
    no_worker_alert_s: float = Field(default=120.0, ge=0)
    workers_check_s: float = Field(default=5.0, gt=0)  # how often the gateway counts the queue's consumers
    admin_ids: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # the web page at / and /admin: "open" (anyone; a signed browser token each), "key" (an API key), "off" (404)
    web_uploads: Literal["open", "key", "off"] = "key"
    web_session_ttl_s: int = Field(default=24 * 3600, ge=60)  # how long a browser token of the open page lasts
    web_sessions_per_minute: int = Field(default=20, ge=1)  # browser tokens one address may take a minute

    @field_validator("api_keys", "trusted_proxies", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return _split(value)

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _admins(cls, value: object) -> object:
        parts = _split(value)
        return [admin_ref(str(part)) for part in parts] if isinstance(parts, list) else parts

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            return None
        if value is not None:
            webhook_keys(value)  # says which part is wrong
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"{network!r} is not an address or a network (e.g. 10.0.0.0/8)") from None
        return value

    @model_validator(mode="after")
    def _defaults(self) -> GatewaySettings:
        if not self.database_url:
            self.database_url = sqlite_url(self.data_dir)
        if self.blob_dir is None:
            self.blob_dir = self.data_dir / "blobs"
        return self

    def blob_store(self) -> FileBlobStore:
        """The blob store these settings name (nothing is created until it is prepared)."""
        return FileBlobStore(self.blob_dir or self.data_dir / "blobs")

    def listens_beyond_this_machine(self) -> bool:
        """Whether the gateway binds to an address other machines can reach (not loopback only)."""
        try:
            return not ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return self.host not in ("localhost", "ip6-localhost")

    def weak_secrets(self) -> list[str]:
        """What a gateway reachable from other machines must not run with: one sentence each, naming the variable."""
        found = []
        for entry in parse_keys(self.api_keys):
            if len(entry.key) < MIN_KEY_CHARS or entry.key.lower() in KNOWN_WEAK or "change" in entry.key.lower():
                found.append(
                    f"a {entry.role.name.lower()} key in DETECTBOT_API_KEYS is short or a known example "
                    f"(use at least {MIN_KEY_CHARS} random characters: openssl rand -hex 16)"
                )
        if self.signing_secret is not None and len(self.signing_secret.get_secret_value()) < MIN_SECRET_BYTES:
            found.append(
                f"DETECTBOT_SIGNING_SECRET is shorter than {MIN_SECRET_BYTES} characters (openssl rand -hex 32)"
            )
        return found

    def signing_key(self) -> bytes:
        """The HMAC key; generated once into the data directory when none is configured."""
        if self.signing_secret is not None:
            return self.signing_secret.get_secret_value().encode()
        path = self.data_dir / "signing.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(secrets.token_urlsafe(32))
            tmp.chmod(0o600)
            tmp.replace(path)
        return path.read_text().strip().encode()
