"""The gateway's composition root: ``create_app(settings)`` builds everything; cleanup contexts own resources.

Resources open and close in pairs (aiohttp's ``cleanup_ctx``): the database, then the broker with intake, the
outbox relay and the dead-letter consumer, then delivery to chats with retention. Every background task runs
under one :class:`~queue_gateway.runtime.supervise.Supervisor`, which restarts a task that crashes and tells
``/readyz`` about it meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from sqlalchemy.engine import make_url

from db.blobstore import FileBlobStore
from db.engine import create_engine, session_factory
from db.migrate import upgrade_engine
from queue_gateway import admin_api, api, health, history_api, openapi, worker_api
from queue_gateway.appkeys import (
    api_keys_key,
    cutter_key,
    database_key,
    delivery_key,
    endpoints_key,
    intake_key,
    link_key,
    longpolls_key,
    metrics_key,
    pace_key,
    recent_results_key,
    retention_key,
    settings_key,
    sightings_key,
    signer_key,
    supervisor_key,
    wakeups_key,
    worker_watch_key,
)
from queue_gateway.auth import ApiKeys, ClientAddresses
from queue_gateway.blobs import RecentResults
from queue_gateway.crops import Cutter
from queue_gateway.database import Database, is_outage
from queue_gateway.dead_letters import DeadLetterConsumer
from queue_gateway.errors import error_middleware, tracing_middleware
from queue_gateway.intake import Intake, Limits, Rates
from queue_gateway.longpoll import LongPolls
from queue_gateway.metrics import GatewayMetrics
from queue_gateway.notify.admins import AdminAlerts
from queue_gateway.notify.base import Notifier
from queue_gateway.notify.loop import DeliveryLoop, Pacer
from queue_gateway.notify.progress import ProgressUpdater
from queue_gateway.pace import Pace
from queue_gateway.publisher import BrokerLink, Publisher
from queue_gateway.relay import OutboxRelay
from queue_gateway.retention import Retention
from queue_gateway.runtime import process, redact
from queue_gateway.runtime.config import secret_values
from queue_gateway.runtime.errors import CannotStart
from queue_gateway.runtime.supervise import Supervisor
from queue_gateway.settings import GatewaySettings, webhook_keys
from queue_gateway.signing import Signer
from queue_gateway.wakeups import Wakeups
from queue_gateway.web import routes as web_page
from queue_gateway.webhooks import WebhookSender
from queue_gateway.worker_sightings import Sightings
from queue_gateway.worker_watch import WorkerWatch, follow_workers

log = logging.getLogger(__name__)

ROLLUP_FLUSH_S = 1.0  # the /stats counters of the transitions are written this often (a crash loses at most these)
STARTUP_RETRY_S = 30.0  # how long the gateway waits for its database at start before it gives up


class StartupError(CannotStart):
    """The gateway cannot start; the message is one sentence that names the setting to check."""


def create_app(settings: GatewaySettings) -> web.Application:
    """Build the gateway: HTTP routes, database, broker link, intake, relay, dead letters, delivery."""
    if settings.listens_beyond_this_machine() and (weak := settings.weak_secrets()):
        raise StartupError(f"refusing to serve on {settings.host}, reachable from other machines: {weak[0]}")
    signing_key = settings.signing_key()
    signer = Signer(signing_key)
    web_tokens = web_page.web_tokens(settings, signer)  # browser tokens, only when the web page is open to anyone
    try:
        addresses = ClientAddresses(settings.trusted_proxies)
        api_keys = ApiKeys(settings.api_keys, web_tokens=web_tokens, addresses=addresses)
    except ValueError as exc:
        raise StartupError(str(exc)) from None
    redact.install([*secret_values(settings), signing_key.decode(errors="replace")])
    app = web.Application(
        middlewares=[tracing_middleware, error_middleware], client_max_size=settings.max_upload_bytes + 1024 * 1024
    )
    app[settings_key] = settings
    app[signer_key] = signer
    app[api_keys_key] = api_keys
    app[wakeups_key] = Wakeups()
    app[metrics_key] = GatewayMetrics()
    app[pace_key] = Pace()
    app[sightings_key] = Sightings()
    app[worker_watch_key] = WorkerWatch(notice_s=settings.no_worker_notice_s)
    app[cutter_key] = Cutter()
    app[recent_results_key] = RecentResults()
    app[supervisor_key] = Supervisor()
    web_page.setup(app, web_tokens)  # what /, /admin, /static/…, /v1/web/session and /v1/texts serve
    tables = (api.endpoints, history_api.endpoints, admin_api.endpoints, worker_api.endpoints, web_page.endpoints,
              health.endpoints, openapi.endpoints)  # fmt: skip
    app[endpoints_key] = [endpoint for table in tables for endpoint in table.all]
    for table in tables:
        table.add_to(app)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_broker)
    app.cleanup_ctx.append(_delivery)
    return app


def build_notifiers(settings: GatewaySettings) -> dict[str, Notifier]:
    """One notifier per platform whose token is configured (each library imported only when it is)."""
    notifiers: dict[str, Notifier] = {}
    if settings.telegram_token is not None:
        from queue_gateway.notify.telegram import TelegramNotifier, make_bot

        process.use_ptb_timedelta()
        bot = make_bot(
            settings.telegram_token.get_secret_value(), settings.telegram_api_url, settings.telegram_file_url
        )
        notifiers["telegram"] = TelegramNotifier(bot)
    if settings.discord_token is not None:
        from queue_gateway.notify.discord import DiscordNotifier

        process.use_discord(settings.discord_api_url)
        notifiers["discord"] = DiscordNotifier(settings.discord_token.get_secret_value())
    return notifiers


def database_name(url: str) -> str:
    """The database URL without its password, for logs and messages."""
    return make_url(url).render_as_string(hide_password=True)


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    engine = create_engine(settings.database_url)
    try:
        blobs = await prepare_database(engine, settings)
        app[database_key] = Database(session_factory(engine), blobs, retry_s=settings.database_retry_s)
        polls = LongPolls(
            app[database_key],
            app[wakeups_key],
            max_waiting=settings.max_waiting_polls,
            per_client=settings.max_waiting_polls_per_client,
        )
        app[longpolls_key] = polls
        app[supervisor_key].spawn("long-polls", polls.run)
        app[supervisor_key].spawn("rollups", lambda: app[database_key].flush_rollups_every(ROLLUP_FLUSH_S))
        try:
            yield
        finally:
            await app[supervisor_key].stop("long-polls", "rollups")
    finally:
        await engine.dispose()


async def open_blob_store(settings: GatewaySettings) -> FileBlobStore:
    """The blob store's directory, created if need be; one sentence naming the setting when it cannot be used."""
    store = settings.blob_store()
    try:
        await asyncio.to_thread(store.prepare)
    except OSError as exc:
        raise StartupError(
            f"cannot use the blob directory {store.root}: {exc.strerror or exc} (check DETECTBOT_BLOB_DIR, and that "
            "its volume is mounted and writable)"
        ) from None
    return store


async def prepare_database(engine: object, settings: GatewaySettings) -> FileBlobStore:
    """Open the blob store, then reach the database (and migrate it) with bounded retries; one sentence naming the
    setting when either cannot be used. Returns the blob store."""
    blobs = await open_blob_store(settings)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(STARTUP_RETRY_S, settings.database_retry_s)
    delay = 0.5
    while True:
        try:
            if settings.auto_migrate:
                await upgrade_engine(engine, blobs=blobs)  # type: ignore[arg-type]
            else:
                async with engine.connect():  # type: ignore[attr-defined]
                    pass
            return blobs
        except Exception as exc:
            if not is_outage(exc) or loop.time() + delay > deadline:
                raise StartupError(
                    f"cannot use the database {database_name(settings.database_url)}: {_first_line(exc)} "
                    "(check DETECTBOT_DATABASE_URL, and that the database is running)"
                ) from exc
            log.warning("database %s not reachable yet (%s); retrying", database_name(settings.database_url),
                        type(exc).__name__)  # fmt: skip
            await asyncio.sleep(delay)  # a start-up retry pause, not a wait for work
            delay = min(delay * 2, 5.0)


async def _broker(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    database = app[database_key]
    supervisor = app[supervisor_key]
    wakeups = app[wakeups_key]
    link = BrokerLink(settings.amqp_url, settings.topology())
    publisher = Publisher(
        link, app[signer_key], url_ttl_s=settings.worker_link_ttl_s, timeout_s=settings.publish_timeout_s
    )
    limits = Limits(
        person=Rates(
            max_in_line=settings.max_inflight_per_user,
            per_minute=settings.max_per_minute_per_user,
            per_day=settings.daily_quota_per_user,
            fair_share=settings.fair_share_per_user,
        ),
        key=Rates(
            max_in_line=settings.max_inflight_per_key,
            per_minute=settings.max_per_minute_per_key,
            per_day=settings.daily_quota_per_key,
            fair_share=settings.fair_share_per_key,
        ),
    )
    publishing: set[str] = set()  # intake's publishes in flight, which an urgent relay pass must not repeat
    relay = OutboxRelay(
        database, publisher, interval_s=settings.relay_interval_s, grace_s=settings.relay_grace_s,
        fair_share=limits.fair_share, link_ttl_s=settings.worker_link_ttl_s, publishing=publishing,
    )  # fmt: skip
    app[link_key] = link
    app[intake_key] = Intake(
        database,
        publisher,
        busy_retry_after_s=settings.busy_retry_after_s,
        result_cache=settings.result_cache,
        limits=limits,
        on_changed=wakeups.job_changed,
        on_unpublished=lambda: relay.wake(urgent=True),
        on_held=relay.hold,
        publishing=publishing,
    )
    link.on_connected.append(lambda: relay.wake(urgent=True))
    dead_letters = DeadLetterConsumer(
        database, app[metrics_key], lambda job_id: wakeups.job_changed(job_id, deliverable=True)
    )
    await link.start()
    wakeups.listeners.append(lambda _job_id: relay.wake_if_holding())
    names = ("intake", "outbox-relay", "dead-letters")
    supervisor.spawn("intake", app[intake_key].run)
    supervisor.spawn("outbox-relay", relay.run)
    supervisor.spawn("dead-letters", lambda: _consume_dead_letters(link, dead_letters))
    try:
        yield
    finally:
        await supervisor.stop(*names)
        await link.close()


async def _consume_dead_letters(link: BrokerLink, consumer: DeadLetterConsumer) -> None:
    await link.connected.wait()
    assert link.declared is not None
    await consumer.start(link.declared.dead_letters)
    await asyncio.Event().wait()  # aio-pika restores the consumer after reconnects; nothing else to do here


async def _delivery(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    supervisor = app[supervisor_key]
    notifiers = build_notifiers(settings)
    loop = DeliveryLoop(
        app[database_key],
        notifiers,
        app[wakeups_key],
        owner=settings.name,
        lease_s=settings.delivery_lease_s,
        concurrency=settings.delivery_concurrency,
        max_attempts=settings.delivery_max_attempts,
        pacer=Pacer(settings.chat_min_interval_s),
        metrics=app[metrics_key],
        recent=app[recent_results_key],
    )
    app[delivery_key] = loop
    retention = Retention(
        app[database_key], days=settings.retention_days, every_s=settings.retention_check_s,
        history_days=settings.history_days, grace_s=settings.blob_grace_s,
    )  # fmt: skip
    app[retention_key] = retention
    progress = ProgressUpdater(
        app[database_key], notifiers, app[pace_key], chat_interval_s=settings.chat_min_interval_s,
        watch=app[worker_watch_key],
    )  # fmt: skip
    app[wakeups_key].listeners.append(progress.job_changed)
    alerts = AdminAlerts(
        app[database_key], app[worker_watch_key], notifiers, settings.admin_ids, alert_s=settings.no_worker_alert_s
    )
    names = ["delivery", "delivery-leases", "retention", "workers", "progress"]
    supervisor.spawn("progress", progress.run)
    supervisor.spawn("delivery", loop.run)
    supervisor.spawn("delivery-leases", loop.keep_leases)
    supervisor.spawn("retention", retention.run)
    supervisor.spawn(
        "workers",
        lambda: follow_workers(
            _consumers(app[link_key]), app[worker_watch_key], app[metrics_key], [app[pace_key].set_workers],
            alerts.check, every_s=settings.workers_check_s,
        ),
    )  # fmt: skip
    if settings.webhook_secret is not None:
        sender = WebhookSender(
            app[database_key], app[signer_key], webhook_keys(settings.webhook_secret), app[metrics_key],
            owner=settings.name, view_link_ttl_s=settings.view_link_ttl_s, timeout_s=settings.webhook_timeout_s,
            retry_s=settings.webhook_retry_s, backoff_first_s=settings.webhook_backoff_s,
            concurrency=settings.webhook_concurrency, per_host=settings.webhook_per_host,
            allow_private=settings.webhook_allow_private,
        )  # fmt: skip
        app[wakeups_key].listeners.append(sender.wake)
        names.append("webhooks")
        supervisor.spawn("webhooks", sender.run)
    try:
        yield
    finally:
        await supervisor.stop(*names)
        for notifier in notifiers.values():
            await notifier.close()


def _consumers(link: BrokerLink) -> Callable[[], Awaitable[int | None]]:
    async def count() -> int | None:
        found = await link.queue_stats()
        return found[1] if found is not None else None

    return count


def _first_line(exc: BaseException) -> str:
    cause = exc.__cause__ or exc
    text = str(getattr(cause, "orig", None) or cause).strip().splitlines()
    return (text[0] if text else type(cause).__name__)[:200]
