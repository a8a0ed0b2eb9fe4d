"""What every process reads first: the ``DETECTBOT_`` settings base (logging, tracing), and the helpers that keep
settings safe to show (one line per bad setting, URLs without passwords, the secrets to redact)."""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "DETECTBOT_"


class DetectbotSettings(BaseSettings):
    """The base of every service's settings: ``DETECTBOT_*`` variables, or lines of a ``.env`` file."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", env_ignore_empty=True)

    log_level: str = "INFO"  # DEBUG, INFO, WARNING, ERROR (also --log-level)
    log_format: Literal["text", "json"] = "text"  # json: one JSON object per line, with the job id
    tracing: Literal["off", "console", "otlp"] = "off"  # OpenTelemetry; otlp: OTEL_EXPORTER_OTLP_ENDPOINT
    # auto: uvloop (libuv's event loop) where it is installed, as it is by default on Linux and macOS; asyncio: the
    # standard library's loop (for debugging, or a platform without uvloop)
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"


def safe_url(url: str) -> str:
    """A URL without its password, for logs and messages."""
    from yarl import URL

    parsed = URL(url)
    return str(parsed.with_password(None)) if parsed.password else url


def settings_problem(exc: ValidationError) -> str:
    """One line per bad setting, naming its environment variable: ``DETECTBOT_PORT: …``."""
    lines = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "settings"
        name = f"{ENV_PREFIX}{field.upper()}" if error["loc"] else "settings"
        got = error.get("input")
        shown = "" if got is None or isinstance(got, dict) or _secret_like(field) else f" (got {str(got)[:60]!r})"
        lines.append(f"{name}: {error['msg']}{shown}")
    return "; ".join(lines)


def _secret_like(field: str) -> bool:
    return any(word in field for word in ("token", "key", "secret", "password", "url"))


def secret_values(settings: BaseSettings) -> list[str]:
    """The plain values of every secret a settings object holds (``SecretStr`` fields, alone or in lists), and the
    bare key of each ``role:KEY`` entry, which is what a request presents."""
    found: list[str] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        for item in value if isinstance(value, list | tuple) else [value]:
            if isinstance(item, SecretStr):
                secret = item.get_secret_value()
                found.append(secret)
                found.append(secret.partition(":")[2].strip())
    return [secret for secret in found if secret]
