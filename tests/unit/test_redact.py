"""Secrets never reach a log line, whoever formats the record and whenever."""

from __future__ import annotations

import logging

import pytest

from queue_gateway.runtime import redact

TOKEN = "987654321:AAH-secret-token-material-xxxxxxxxxxxxx"


def test_configured_and_token_shaped_secrets_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    redact.install(["my-api-key-123456"])
    log = logging.getLogger("tests.redact")
    with caplog.at_level(logging.INFO):
        log.info("HTTP Request: POST https://api.telegram.org/bot%s/getMe", TOKEN)
        log.info("calling with key my-api-key-123456")
        try:
            raise RuntimeError(f"The token `{TOKEN}` was rejected by the server.")
        except RuntimeError:
            log.exception("start failed")
    text = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert TOKEN not in text and "my-api-key-123456" not in text
    assert text.count(redact.MASK) == 3


def test_mutable_arguments_are_frozen_at_log_time(caplog: pytest.LogCaptureFixture) -> None:
    redact.install([])
    payload = {"file_path": "photos/file_1.jpg"}
    with caplog.at_level(logging.INFO):
        logging.getLogger("tests.redact").info("result %s", payload)
    payload["file_path"] = f"https://api.telegram.org/file/bot{TOKEN}/photos/file_1.jpg"  # changed afterwards
    assert TOKEN not in caplog.records[0].getMessage()
    assert "photos/file_1.jpg" in caplog.records[0].getMessage()


def test_a_secret_in_a_chained_cause_is_masked_too(caplog: pytest.LogCaptureFixture) -> None:
    redact.install([])
    with caplog.at_level(logging.ERROR):
        try:
            try:
                raise ConnectionError(f"POST https://api.telegram.org/bot{TOKEN}/sendPhoto failed")
            except ConnectionError as cause:
                raise RuntimeError("delivery failed") from cause  # the top message names no secret
        except RuntimeError:
            logging.getLogger("tests.redact").exception("giving up")
    text = caplog.records[-1].exc_text or ""
    assert "delivery failed" in text and "direct cause" in text
    assert TOKEN not in text and redact.MASK in text


def test_the_bare_key_of_a_role_entry_is_a_secret_too(caplog: pytest.LogCaptureFixture) -> None:
    from pydantic import SecretStr

    from queue_gateway.runtime.config import secret_values
    from queue_gateway.settings import GatewaySettings

    settings = GatewaySettings(api_keys=[SecretStr("telegram:tg-bot-key-0123456789"), SecretStr("plain-client-key-42")])
    redact.install(secret_values(settings))
    with caplog.at_level(logging.INFO):
        logging.getLogger("tests.redact").info("Authorization: Bearer tg-bot-key-0123456789 and plain-client-key-42")
    message = caplog.records[-1].getMessage()
    assert "tg-bot-key-0123456789" not in message and "plain-client-key-42" not in message
