"""API keys and roles: ``client-key,bot:BOT-KEY,admin:ADMIN-KEY``; a bare key is a client key."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request
from pydantic import SecretStr

from queue_gateway.auth import ApiKeys, Role, parse_keys
from queue_gateway.errors import Forbidden, Unauthorized


def keys(*entries: str) -> ApiKeys:
    return ApiKeys([SecretStr(entry) for entry in entries])


def with_key(key: str | None) -> object:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return make_mocked_request("GET", "/v1/stats", headers=headers)


def test_roles_are_parsed_and_a_bare_key_is_a_client_key() -> None:
    parsed = parse_keys([SecretStr(e) for e in ("plain", "bot:b0t", "admin: adm ", "client:c", "weird:thing", "bot:")])
    assert parsed == [
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


def test_a_client_sees_only_its_own_jobs_and_a_bot_every_job() -> None:
    api = keys("client-a", "client-b", "bot:bot-key")
    a = api.caller(with_key("client-a"))  # type: ignore[arg-type]
    b = api.caller(with_key("client-b"))  # type: ignore[arg-type]
    bot = api.caller(with_key("bot-key"))  # type: ignore[arg-type]
    assert a.fingerprint != b.fingerprint and "client-a" not in a.fingerprint
    assert a.may_see(a.fingerprint) and not a.may_see(b.fingerprint) and not a.may_see(None)
    assert bot.may_see(a.fingerprint) and bot.may_see(None)


def test_the_gateway_needs_a_key() -> None:
    with pytest.raises(ValueError, match="DETECTBOT_API_KEYS"):
        keys()
    with pytest.raises(ValueError, match="DETECTBOT_API_KEYS"):
        keys("bot:")
