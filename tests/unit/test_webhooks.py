"""Webhooks without the network: the signature (checked by the standardwebhooks package), the event, the URL
checks and the resolver that guards every connection, the backoff, and the durable row's states on SQLite."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError

from db import operations, webhooks
from db.common import now
from queue_gateway.database import Database
from queue_gateway.settings import webhook_keys
from queue_gateway.signing import Action, Signer
from queue_gateway.webhooks import (
    MAX_BACKOFF_S,
    BadWebhookUrl,
    PublicResolver,
    backoff_s,
    check_url,
    event_body,
    is_public,
    parse_url,
    signature,
)
from tests.services import WEBHOOK_SECRET
from tests.unit.doubles import add_jobs, finished, new_job, sqlite_database

KEYS = webhook_keys(SecretStr(WEBHOOK_SECRET))
SIGNER = Signer(b"unit-signing-secret-0123456789ab")


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    async for found in sqlite_database(tmp_path):
        yield found


def test_the_signature_is_what_standard_webhooks_receivers_verify() -> None:
    body = b'{"type":"job.finished","data":{"caption":"4 \xd1\x87\xd0\xb5\xd0\xbb."}}'
    stamp = int(now())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(stamp),
        "webhook-signature": signature(KEYS, "msg_1", stamp, body),
    }
    assert Verifier(WEBHOOK_SECRET).verify(body, headers)["type"] == "job.finished"
    with pytest.raises(WebhookVerificationError):
        Verifier(WEBHOOK_SECRET).verify(body.replace(b"4", b"5"), headers)  # altered on the way
    with pytest.raises(WebhookVerificationError):
        Verifier(WEBHOOK_SECRET).verify(body, headers | {"webhook-id": "msg_2"})  # replayed as another event


def test_while_rotating_each_try_carries_a_signature_of_each_secret() -> None:
    old = "whsec_" + "b2xkLXdlYmhvb2stc2VjcmV0LTAxMjM0NTY3ODlhYg=="
    keys = webhook_keys(SecretStr(f"{WEBHOOK_SECRET},{old}"))
    stamp, body = int(now()), b"{}"
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(stamp),
        "webhook-signature": signature(keys, "msg_1", stamp, body),
    }
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (WEBHOOK_SECRET, old):  # a receiver on the new secret and one still on the old both verify
        Verifier(secret).verify(body, headers)


@pytest.mark.parametrize("secret", ["secret", "whsec_", "whsec_not*base64", "whsec_" + "QUJD" * 2, "QUJD" * 10])
def test_a_malformed_secret_is_refused_with_how_to_make_one(secret: str) -> None:
    with pytest.raises(ValueError, match="whsec_ followed by the base64"):
        webhook_keys(SecretStr(secret))


@pytest.mark.parametrize(
    ("address", "public"),
    [("93.184.215.14", True), ("2606:4700::1111", True), ("127.0.0.1", False), ("10.1.2.3", False),
     ("172.16.0.1", False), ("192.168.1.1", False), ("169.254.169.254", False), ("100.64.0.1", False),
     ("0.0.0.0", False), ("::1", False), ("fe80::1%eth0", False), ("fd00::1", False), ("::ffff:127.0.0.1", False),
     ("::ffff:10.0.0.1", False), ("224.0.0.1", False)],
)  # fmt: skip
def test_only_public_addresses_are_public(address: str, public: bool) -> None:
    assert is_public(address) is public


@pytest.mark.parametrize(
    "url",
    ["", "ftp://example.com/", "file:///etc/passwd", "http://", "http://user:pw@example.com/", "https://example.com/#x",
     "http://example.com:99999/", "http://exa mple.com/", "http://ex\u00e4mple.com/", "https://example.com/a\nb",
     "https://example.com/" + "a" * 2000],
)  # fmt: skip
def test_urls_that_are_not_plain_http_are_refused(url: str) -> None:
    with pytest.raises(BadWebhookUrl):
        parse_url(url)


async def test_hosts_are_resolved_and_private_ones_refused_unless_allowed() -> None:
    assert await check_url("https://93.184.215.14/hooks?token=x", allow_private=False) == (
        "https://93.184.215.14/hooks?token=x", "93.184.215.14")  # fmt: skip
    for url in ("http://localhost:8080/x", "http://127.0.0.1/x", "http://[::1]/x", "http://169.254.169.254/"):
        with pytest.raises(BadWebhookUrl, match="private"):
            await check_url(url, allow_private=False)
        assert (await check_url(url, allow_private=True))[0] == url
    with pytest.raises(BadWebhookUrl, match="could not be resolved"):
        await check_url("http://no-such-host.invalid/x", allow_private=True)


async def test_the_senders_resolver_refuses_a_name_that_now_points_inward() -> None:
    guarded = PublicResolver(allow_private=False)
    try:
        with pytest.raises(OSError, match="no public address"):
            await guarded.resolve("localhost", 80)  # a name checked at submission could be re-pointed since
    finally:
        await guarded.close()
    allowed = PublicResolver(allow_private=True)
    try:
        assert {entry["host"] for entry in await allowed.resolve("localhost", 80)} <= {"127.0.0.1", "::1"}
    finally:
        await allowed.close()


def test_the_backoff_doubles_with_jitter_up_to_an_hour() -> None:
    for attempts, middle in ((1, 5.0), (2, 10.0), (3, 20.0), (6, 160.0)):
        assert 0.8 * middle <= backoff_s(attempts, 5.0) <= 1.2 * middle
    assert backoff_s(40, 5.0) <= 1.2 * MAX_BACKOFF_S
    tries, elapsed = 0, 0.0
    while elapsed < 24 * 3600:  # the default window: about thirty tries, the last ones an hour apart
        tries += 1
        elapsed += backoff_s(tries, 5.0)
    assert 25 <= tries <= 40


async def test_a_webhook_waits_for_its_job_then_is_leased_once_and_retried_until_its_window_ends(
    database: Database,
) -> None:
    new = new_job(platform="http")
    new.webhook = webhooks.Target(url="https://example.com/h", host="example.com", base_url="http://gw")
    async with database.sessions.begin() as session:
        await add_jobs(session, database, [new])
    assert await database.read(lambda s: webhooks.due(s, limit=10)) == []  # its job is still in line
    await database.write(lambda s: operations.cancel(s, new.id))
    (item,) = await database.read(lambda s: webhooks.due(s, limit=10))
    assert item.job.id == new.id and item.hook.state == webhooks.WAITING
    assert await database.read(lambda s: webhooks.due(s, limit=10, skip_hosts=["example.com"])) == []
    assert await database.write(lambda s: webhooks.lease(s, [new.id], owner="a", seconds=30)) == [new.id]
    assert await database.write(lambda s: webhooks.lease(s, [new.id], owner="b", seconds=30)) == []  # held
    assert await database.read(lambda s: webhooks.due(s, limit=10)) == []
    at = now()
    state = await database.write(
        lambda s: webhooks.retry(s, item.hook, status=500, error="HTTP 500", after=60, window_s=3600, at=at)
    )
    assert state == webhooks.PENDING
    assert await database.read(lambda s: webhooks.due(s, limit=10)) == []  # not before its time
    (again,) = await database.read(lambda s: webhooks.due(s, limit=10, at=at + 61))
    assert again.hook.attempts == 1 and again.hook.first_attempt_at == at and again.hook.last_status == 500
    state = await database.write(
        lambda s: webhooks.retry(
            s, again.hook, status=None, error="TimeoutError", after=60, window_s=3600, at=at + 3600
        )
    )
    assert state == webhooks.FAILED  # tried for the whole window
    (failed,) = await database.read(lambda s: webhooks.failing(s, limit=5))
    assert failed.attempts == 2 and failed.last_error == "TimeoutError"
    assert await database.read(webhooks.count_pending) == 0


async def test_a_restarted_sender_takes_back_what_it_held(database: Database) -> None:
    new = new_job(platform="http")
    new.webhook = webhooks.Target(url="https://example.com/h", host="example.com", base_url="http://gw")
    await finished(database, new)
    assert await database.write(lambda s: webhooks.lease(s, [new.id], owner="gw-a", seconds=300)) == [new.id]
    assert await database.write(lambda s: webhooks.release_leases(s, "gw-b")) == 0
    assert await database.write(lambda s: webhooks.release_leases(s, "gw-a")) == 1
    assert [d.hook.job_id for d in await database.read(lambda s: webhooks.due(s, limit=5))] == [new.id]


async def test_the_event_is_the_job_view_in_its_language_with_its_own_signed_links(database: Database) -> None:
    new = new_job(platform="http", language="ru")
    new.webhook = webhooks.Target(url="https://example.com/h", host="example.com", base_url="http://gw:8080")
    await finished(database, new)
    (item,) = await database.read(lambda s: webhooks.due(s, limit=5))
    event = json.loads(event_body(item.job, item.hook, SIGNER, view_link_ttl_s=3600))
    assert event["type"] == "job.finished" and event["timestamp"].endswith("Z")
    data = event["data"]
    assert data["status"] == "done" and data["language"] == "ru" and "webhook" not in data
    assert data["caption"] == "1 человек" and data["eta_s"] == 0.0 and data["waiting_for_worker"] is False
    assert data["status_url"].startswith(f"http://gw:8080/v1/jobs/{new.id}?exp=")
    exp, sig = (part.split("=", 1)[1] for part in data["status_url"].split("?", 1)[1].split("&"))
    SIGNER.verify(Action.VIEW, new.id, exp, sig)  # a link the gateway itself accepts
