"""API keys and roles: ``client-key,bot:BOT-KEY,admin:ADMIN-KEY``; a bare key is a client key."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import make_mocked_request
from pydantic import SecretStr

from queue_gateway.app import StartupError, create_app
from queue_gateway.auth import ApiKeys, Role, parse_keys
from queue_gateway.errors import Forbidden, Unauthorized
from queue_gateway.settings import GatewaySettings


def keys(*entries: str) -> ApiKeys:
    return ApiKeys([SecretStr(entry) for entry in entries])


def with_key(key: str | None) -> object:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return make_mocked_request("GET", "/v1/stats", headers=headers)


def test_roles_are_parsed_and_a_bare_key_is_a_client_key() -> None:
    parsed = parse_keys([SecretStr(e) for e in ("plain", "bot:b0t", "admin: adm ", "client:c", "weird:thing", "bot:")])
    assert [(entry.role, entry.key) for entry in parsed] == [
        (Role.CLIENT, "plain"),
        (Role.BOT, "b0t"),
        (Role.ADMIN, "adm"),
        (Role.CLIENT, "c"),
        (Role.CLIENT, "weird:thing"),  # not a role prefix: the whole entry is the key
    ]


def test_each_role_may_do_what_those_below_it_may() -> None:
    api = keys("client-key-1", "bot:bot-key-1", "admin:admin-key-1")
    assert api.caller(with_key("client-key-1")).role is Role.CLIENT  # type: ignore[arg-type]
    assert api.caller(with_key("bot-key-1"), at_least=Role.BOT).role is Role.BOT  # type: ignore[arg-type]
    assert api.caller(with_key("admin-key-1"), at_least=Role.BOT).role is Role.ADMIN  # type: ignore[arg-type]
    with pytest.raises(Forbidden):
        api.caller(with_key("client-key-1"), at_least=Role.BOT)  # type: ignore[arg-type]
    with pytest.raises(Forbidden):
        api.caller(with_key("bot-key-1"), at_least=Role.ADMIN)  # type: ignore[arg-type]


def test_missing_unknown_and_odd_keys_are_401_not_errors() -> None:
    api = keys("client-key-1")
    for presented in (None, "", "nope", "ключ-не-тот", "a" * 10_000):
        with pytest.raises(Unauthorized):
            api.caller(with_key(presented))  # type: ignore[arg-type]


def test_a_client_sees_only_its_own_jobs_and_a_bot_only_its_platforms_chat_jobs() -> None:
    api = keys("client-a", "client-b", "bot:bot-key", "telegram:tg-key", "admin:admin-key")
    a = api.caller(with_key("client-a"))  # type: ignore[arg-type]
    b = api.caller(with_key("client-b"))  # type: ignore[arg-type]
    bot = api.caller(with_key("bot-key"))  # type: ignore[arg-type]
    telegram = api.caller(with_key("tg-key"))  # type: ignore[arg-type]
    admin = api.caller(with_key("admin-key"))  # type: ignore[arg-type]
    assert a.fingerprint != b.fingerprint and "client-a" not in a.fingerprint
    assert a.may_see(a.fingerprint, "http") and not a.may_see(b.fingerprint, "http") and not a.may_see(None, "telegram")
    assert not bot.may_see(a.fingerprint, "http") and not bot.may_see(None, "web")  # never an HTTP client's or a page's
    assert bot.may_see(None, "telegram") and bot.may_see(None, "discord")
    assert telegram.may_see(None, "telegram") and not telegram.may_see(None, "discord")
    assert telegram.acts_for("telegram") and not telegram.acts_for("discord") and not a.acts_for("telegram")
    assert admin.may_see(a.fingerprint, "http") and admin.acts_for("discord")
    assert a.user_ref == f"key:{a.fingerprint}" and bot.user_ref is None  # a client key's photos count against it


def test_the_gateway_needs_a_key() -> None:
    with pytest.raises(ValueError, match="DETECTBOT_API_KEYS"):
        keys()
    with pytest.raises(ValueError, match="DETECTBOT_API_KEYS"):
        keys("bot:")


@pytest.mark.parametrize(
    ("host", "entries", "secret", "refused"),
    [
        ("127.0.0.1", ["bot:change-me"], None, False),  # the README's first steps, on this machine only
        ("0.0.0.0", ["bot:change-me"], None, True),
        ("0.0.0.0", ["short-key"], None, True),
        ("0.0.0.0", ["bot:0123456789abcdef0123456789abcdef"], "sixteen-bytes-ok", True),
        ("0.0.0.0", ["bot:0123456789abcdef0123456789abcdef"], "f" * 64, False),
        ("::", ["admin:0123456789abcdef0123456789abcdef", "plain-client-key-0123456789"], None, False),
    ],
)
def test_a_gateway_others_can_reach_refuses_short_or_example_keys(
    tmp_path: Path, host: str, entries: list[str], secret: str | None, refused: bool
) -> None:
    settings = GatewaySettings(
        host=host,
        data_dir=tmp_path,
        api_keys=[SecretStr(e) for e in entries],
        signing_secret=SecretStr(secret) if secret else None,
    )
    if refused:
        with pytest.raises(StartupError, match="refusing to serve"):
            create_app(settings)
    else:
        create_app(settings)
