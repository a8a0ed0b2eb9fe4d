""".env.example lists every setting of every service, and only settings that exist."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from bots.discord.settings import DiscordSettings
from bots.telegram.settings import TelegramSettings
from queue_gateway.settings import GatewaySettings
from worker.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_in_the_example_and_nothing_else() -> None:
    listed = set(re.findall(r"^(DETECTBOT_[A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    known = {
        f"DETECTBOT_{name.upper()}"
        for cls in (GatewaySettings, WorkerSettings, TelegramSettings, DiscordSettings)
        for name in cls.model_fields
    }
    assert known - listed == set(), "add these to .env.example"
    assert listed - known == set(), "these are not settings"


def test_the_example_as_a_dot_env_gives_the_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Empty values mean "unset": copying the file as it is changes nothing (and sets no empty token)."""
    for name in [n for n in os.environ if n.startswith("DETECTBOT_")]:
        monkeypatch.delenv(name)
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text())
    monkeypatch.chdir(tmp_path)
    for cls in (WorkerSettings, TelegramSettings, DiscordSettings):
        assert cls() == cls(_env_file=None), cls.__name__  # type: ignore[call-arg]
    gateway = GatewaySettings(api_keys=["k"])  # type: ignore[list-item]
    assert gateway.telegram_token is None and gateway.signing_secret is None and gateway.port == 8080
