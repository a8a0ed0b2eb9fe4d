"""The process-global settings of the libraries we use, each assigned here and nowhere else.

- python-telegram-bot reads ``PTB_TIMEDELTA`` to hand out ``retry_after`` as a ``timedelta``
  (:func:`use_ptb_timedelta`).
- discord.py sends every REST call (webhooks and interaction callbacks included) to the class attribute
  ``discord.http.Route.BASE`` and opens its websocket at ``DiscordWebSocket.DEFAULT_GATEWAY``
  (:func:`use_discord`).
- The logging record factory belongs to :mod:`queue_gateway.runtime.redact`.

Each helper is idempotent and refuses a conflicting value: two parts of one process that disagree about where
Discord is would otherwise silently talk to whichever spoke last.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

_DISCORD_API = "https://discord.com/api/v10"
_DISCORD_GATEWAY = "wss://gateway.discord.gg/"


class ConflictingSetting(RuntimeError):
    """Two parts of this process asked for different values of one process-global setting."""


def use_ptb_timedelta() -> None:
    """python-telegram-bot: ``RetryAfter.retry_after`` (and friends) as ``timedelta``, without a warning."""
    current = os.environ.get("PTB_TIMEDELTA")
    if current is not None and current.lower() not in ("1", "true"):
        raise ConflictingSetting(f"PTB_TIMEDELTA is {current!r}; detectbot needs it true")
    os.environ["PTB_TIMEDELTA"] = "true"


_discord: dict[str, str] = {}  # "api", "gateway": what this process pointed discord.py at


def use_discord(api_url: str = _DISCORD_API, gateway_url: str | None = None) -> None:
    """Point discord.py's REST calls at ``api_url`` (and its websocket at ``gateway_url``), for the whole process."""
    wanted = {"api": api_url.rstrip("/")} | ({"gateway": gateway_url} if gateway_url else {})
    for key, value in wanted.items():
        if _discord.get(key, value) != value:
            raise ConflictingSetting(f"discord.py's {key} URL is already {_discord[key]}, not {value}")
    _discord.update(wanted)
    _assign_discord(_discord["api"], _discord.get("gateway", _DISCORD_GATEWAY))


@contextlib.contextmanager
def discord_released() -> Iterator[None]:
    """Tests: forget where discord.py was pointed, and put back discord.py's own URLs afterwards."""
    saved = dict(_discord)
    _discord.clear()
    try:
        yield
    finally:
        _discord.clear()
        _discord.update(saved)
        _assign_discord(saved.get("api", _DISCORD_API), saved.get("gateway", _DISCORD_GATEWAY))


def _assign_discord(api_url: str, gateway_url: str) -> None:
    import yarl
    from discord.gateway import DiscordWebSocket
    from discord.http import Route

    Route.BASE = api_url
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)
