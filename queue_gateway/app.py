"""The gateway's composition root: ``create_app(settings)`` builds everything; cleanup contexts own resources."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from aiohttp import web

from db.engine import create_engine, session_factory
from db.migrate import upgrade_engine
from queue_gateway import admin_api, api, health, openapi, redact, worker_api
from queue_gateway.auth import ApiKeys
from queue_gateway.dead_letters import DeadLetterConsumer
from queue_gateway.errors import error_middleware
from queue_gateway.events import JobEvents
from queue_gateway.intake import Intake
from queue_gateway.keys import (
    api_keys_key,
    delivery_key,
    engine_key,
    events_key,
    intake_key,
    link_key,
    metrics_key,
    relay_key,
    retention_key,
    sessions_key,
    settings_key,
    signer_key,
)
from queue_gateway.metrics import GatewayMetrics
from queue_gateway.notify.base import Notifier
from queue_gateway.notify.loop import DeliveryLoop
from queue_gateway.notify.telegram import TelegramNotifier, make_bot
from queue_gateway.publisher import BrokerLink, Publisher
from queue_gateway.relay import OutboxRelay
from queue_gateway.retention import Retention
from queue_gateway.settings import GatewaySettings
from queue_gateway.signing import Signer
from queue_gateway.topology import Topology

log = logging.getLogger(__name__)


def create_app(settings: GatewaySettings) -> web.Application:
    """Build the gateway: HTTP routes, database, broker link, outbox relay, dead-letter consumer."""
    if not settings.api_keys:
        raise ValueError("set DETECTBOT_API_KEYS: the gateway needs at least one API key for its clients")
    app = web.Application(middlewares=[error_middleware], client_max_size=settings.max_upload_bytes + 1024 * 1024)
    app[settings_key] = settings
    app[signer_key] = Signer(settings.signing_key())
    app[api_keys_key] = ApiKeys(settings.api_keys, settings.admin_api_keys)
    app[events_key] = JobEvents()
    app[metrics_key] = GatewayMetrics()
    app.add_routes(api.routes)
    app.add_routes(worker_api.routes)
    app.add_routes(health.routes)
    app.add_routes(admin_api.routes)
    app.add_routes(openapi.routes)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_broker)
    app.cleanup_ctx.append(_delivery)
    return app


def build_notifiers(settings: GatewaySettings) -> dict[str, Notifier]:
    """One notifier per platform whose token is configured."""
    notifiers: dict[str, Notifier] = {}
    if settings.telegram_token is not None:
        os.environ.setdefault("PTB_TIMEDELTA", "true")  # python-telegram-bot: retry_after as a timedelta
        token = settings.telegram_token.get_secret_value()
        redact.install([token])
        bot = make_bot(token, settings.telegram_api_url, settings.telegram_file_url)
        notifiers["telegram"] = TelegramNotifier(bot)
    if settings.discord_token is not None:
        notifiers["discord"] = _discord_notifier(settings)
    return notifiers


def _discord_notifier(settings: GatewaySettings) -> Notifier:
    """discord.py is imported only when Discord is configured; its REST base is process-global.

    ``discord.http.Route.BASE`` governs every REST call discord.py makes (webhooks included), so it is set here,
    at the composition root, from ``DETECTBOT_DISCORD_API_URL``. A Discord bot running in the same process must be
    configured with the same URL.
    """
    from discord.http import Route

    from queue_gateway.notify.discord import DiscordNotifier

    assert settings.discord_token is not None
    token = settings.discord_token.get_secret_value()
    redact.install([token])
    Route.BASE = settings.discord_api_url.rstrip("/")
    return DiscordNotifier(token)


async def _delivery(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    notifiers = build_notifiers(settings)
    loop = DeliveryLoop(
        app[sessions_key],
        notifiers,
        app[events_key],
        concurrency=settings.delivery_concurrency,
        max_attempts=settings.delivery_max_attempts,
        chat_interval_s=settings.chat_min_interval_s,
        metrics=app[metrics_key],
    )
    app[delivery_key] = loop
    retention = Retention(app[sessions_key], days=settings.retention_days, every_s=settings.retention_check_s)
    app[retention_key] = retention
    tasks = Tasks()
    tasks.spawn(loop.run(), "delivery")
    tasks.spawn(retention.run(), "retention")
    yield
    await tasks.cancel_all()
    for notifier in notifiers.values():
        await notifier.close()


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    engine = create_engine(settings.database_url)
    if settings.auto_migrate:
        await upgrade_engine(engine)
    app[engine_key] = engine
    app[sessions_key] = session_factory(engine)
    yield
    await engine.dispose()


async def _broker(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    topology = Topology(settings.queue, delivery_limit=settings.delivery_limit, max_length=settings.max_queue_length)
    link = BrokerLink(settings.amqp_url, topology)
    publisher = Publisher(
        link, app[signer_key], url_ttl_s=settings.signed_url_ttl_s, timeout_s=settings.publish_timeout_s
    )
    sessions = app[sessions_key]
    relay = OutboxRelay(sessions, publisher, interval_s=settings.relay_interval_s, grace_s=settings.relay_grace_s)
    app[link_key] = link
    app[relay_key] = relay
    intake = Intake(
        sessions,
        publisher,
        busy_retry_after_s=settings.busy_retry_after_s,
        result_cache=settings.result_cache,
        on_finished=app[events_key].notify,
    )
    app[intake_key] = intake
    dead_letters = DeadLetterConsumer(sessions, app[metrics_key])
    await link.start()
    tasks = Tasks()
    tasks.spawn(intake.run(), "intake")
    tasks.spawn(_when_connected(link, relay.run()), "outbox-relay")
    tasks.spawn(_when_connected(link, _consume_dead_letters(link, dead_letters)), "dead-letters")
    yield
    await tasks.cancel_all()
    await link.close()


async def _when_connected(link: BrokerLink, work: Coroutine[Any, Any, None]) -> None:
    try:
        await link.connected.wait()
    except asyncio.CancelledError:
        work.close()
        raise
    await work


async def _consume_dead_letters(link: BrokerLink, consumer: DeadLetterConsumer) -> None:
    assert link.declared is not None
    await consumer.start(link.declared.dead_letters)


class Tasks:
    """Background tasks with kept references, cancelled together at shutdown."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s crashed", task.get_name(), exc_info=task.exception())

    async def cancel_all(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
