"""The web page's pieces that need no browser: browser tokens, language negotiation, the page's catalogue."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from queue_gateway.auth import WebTokens
from queue_gateway.lang import negotiate
from queue_gateway.public import texts
from queue_gateway.public.contract import ErrorCode
from queue_gateway.signing import SignatureError, SignatureExpired, Signer
from queue_gateway.web.routes import STATIC, AddressLimit, Assets, catalogue

SIGNER = Signer(b"unit-test-signing-secret-0123456789")


def test_a_browser_token_names_its_own_client() -> None:
    tokens = WebTokens(SIGNER, ttl_s=60)
    token, expires = tokens.issue()
    other, _ = tokens.issue()
    assert WebTokens.looks_like(token) and expires > 0
    client = tokens.client_id(token)
    assert client.startswith("web:") and len(client) == 20 and client != tokens.client_id(other)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t[:-2] + ("xx" if not t.endswith("xx") else "yy"),  # signature
        lambda t: t.replace(".", ".9", 2)[:-1],  # expiry moved
        lambda t: "web1." + "f" * 16 + t[len("web1.") + 16 :],  # another id
        lambda t: t + ".extra",
        lambda t: "web1.not-hex-at-all!.1.abc",
    ],
)
def test_a_forged_or_altered_token_is_refused(tamper: object) -> None:
    tokens = WebTokens(SIGNER, ttl_s=60)
    token, _ = tokens.issue()
    with pytest.raises(SignatureError):
        tokens.client_id(tamper(token))  # type: ignore[operator]


def test_an_expired_token_is_refused_and_another_secret_means_nothing() -> None:
    expired, _ = WebTokens(SIGNER, ttl_s=-5).issue()
    with pytest.raises(SignatureExpired):
        WebTokens(SIGNER, ttl_s=60).client_id(expired)
    token, _ = WebTokens(SIGNER, ttl_s=60).issue()
    with pytest.raises(SignatureError):
        WebTokens(Signer(b"another-secret-0123456789abcdef"), ttl_s=60).client_id(token)


def test_language_from_the_page_then_accept_language() -> None:
    assert "ru" in texts.languages()
    assert negotiate("ru-RU,en", None) == "ru"
    assert negotiate("fr-FR,en-GB", "ru") == "en"
    assert negotiate(None, "de;q=0.9, ru;q=0.8, en;q=0.1") == "ru"
    assert negotiate(None, "en;q=0.2, ru;q=0.9") == "ru"
    assert negotiate(None, "ru;q=nonsense, en") == "en"
    assert negotiate("", "") == negotiate(None, None) == "en"


def test_the_page_catalogue_holds_the_pages_own_labels_only() -> None:
    for lang in ("en", "ru"):
        found = catalogue(lang)
        assert set(found.texts) == {key for key in texts.MESSAGES if key.startswith("web_")}
        assert found.texts["web_key_invalid"] == texts.text("web_key_invalid", lang)
        assert found.lang == lang and "ru" in found.languages


def test_no_page_script_renders_a_sentence_the_gateway_renders() -> None:
    """The stats lines, a failure's reason, an estimate, an error: the gateway sends them rendered; the scripts
    only show them (one renderer per sentence)."""
    scripts = {name: STATIC.joinpath(name).read_text() for name in ("app.js", "admin.js", "api.js", "i18n.js")}
    statuses = {"received", "queued", "processing", "done", "delivered", "failed", "dead", "cancelled"}
    codes = {str(code) for code in ErrorCode}
    shared = [key for key in texts.MESSAGES if not key.startswith("web_") and key not in statuses | codes]  # ids
    for name, source in scripts.items():
        for key in shared:
            assert f'"{key}"' not in source and f"`{key}" not in source and f"'{key}'" not in source, (name, key)
        for ported in ("plural(", "eta(", "statsText", "failureText", "Intl.PluralRules"):
            assert ported not in source, (name, ported)


def test_static_files_are_all_known_types() -> None:
    assets = Assets(STATIC)
    assert {"index.html", "admin.html", "app.js", "admin.js", "api.js", "i18n.js", "style.css"} <= set(assets.files)
    assert assets.files["app.js"].content_type == "text/javascript; charset=utf-8"
    assert len({asset.etag for asset in assets.files.values()}) == len(assets.files)


def test_browser_tokens_per_address_reset_each_minute() -> None:
    limit = AddressLimit(per_minute=2)
    assert [limit.take("a", 120.0), limit.take("a", 121.0), limit.take("b", 122.0)] == [0, 0, 0]
    assert limit.take("a", 150.0) == 31  # until the next minute, rounded up
    assert limit.take("a", 180.0) == 0


def test_every_page_script_parses() -> None:
    """node --check on each script: a syntax error fails here, not in a visitor's browser."""
    node = shutil.which("node")
    assert node, "node is needed for this check (Debian's nodejs package)"
    for script in sorted(STATIC.glob("*.js")):
        checked = subprocess.run([node, "--check", str(script)], capture_output=True, text=True, timeout=60)
        assert checked.returncode == 0, (script.name, checked.stderr)
