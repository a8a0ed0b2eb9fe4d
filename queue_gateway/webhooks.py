"""Completion webhooks, after the Standard Webhooks specification (https://www.standardwebhooks.com).

When a job that carries a ``webhook_url`` finishes, the gateway POSTs ``{"type": "job.finished", "timestamp": …,
"data": <the job view>}`` signed with ``DETECTBOT_WEBHOOK_SECRET`` (headers ``webhook-id``, ``webhook-timestamp``,
``webhook-signature``). Each webhook is a durable row (:mod:`db.webhooks`): leased while it is sent, so replicas
never send one twice at once; retried with exponential backoff for ``webhook_retry_s`` after its first try, with
the same ``webhook-id`` every time; a 410 stops it. A receiver's host gets ``webhook_per_host`` tries at once, so a
burst is paced and a slow or dead receiver holds only its own slots.

The URL is checked when the job is submitted (http or https, a host that resolves to public addresses only) and
again at every connection (the resolver refuses private addresses, so a name cannot be re-pointed inward later).
Redirects are not followed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import functools
import hashlib
import hmac
import ipaddress
import json
import logging
import random
import socket
import time
from collections import Counter
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from sqlalchemy.ext.asyncio import AsyncSession

from db import webhooks
from db.models import Job, Webhook
from queue_gateway.database import Database
from queue_gateway.job_json import job_view, view_link
from queue_gateway.metrics import GatewayMetrics
from queue_gateway.runtime.supervise import woken
from queue_gateway.signing import Signer
from queue_gateway.typed_job import TypedJob

log = logging.getLogger(__name__)

EVENT_TYPE = "job.finished"
MAX_URL_CHARS = 2000
RESOLVE_TIMEOUT_S = 5.0
MAX_BACKOFF_S = 3600.0  # at most an hour between two tries
PASS_GAP_S = 0.2  # a burst of finished jobs settles into one pass
GAUGE_EVERY_S = 5.0


class BadWebhookUrl(ValueError):
    """A webhook URL the gateway will not send to; the message says why."""


# --- the URL ----------------------------------------------------------------------------------------------


def is_public(address: str) -> bool:
    """Whether an address is on the public internet (not loopback, private, link-local, metadata, reserved …)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def parse_url(raw: str) -> tuple[str, str]:
    """``(url, host)`` of a webhook URL as given, or BadWebhookUrl: http(s), a host, no credentials."""
    url = raw.strip()
    if not url or len(url) > MAX_URL_CHARS or not url.isprintable() or not url.isascii() or " " in url:
        raise BadWebhookUrl(f"the webhook URL must be an http or https URL of at most {MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise BadWebhookUrl("the webhook URL is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadWebhookUrl("the webhook URL must start with http:// or https:// and name a host")
    if parts.username or parts.password:
        raise BadWebhookUrl("the webhook URL may not hold a user name or password (verify the signature instead)")
    if parts.fragment:
        raise BadWebhookUrl("the webhook URL may not hold a fragment (#…)")
    del port  # only checked
    return url, parts.hostname


async def check_url(raw: str, *, allow_private: bool) -> tuple[str, str]:
    """``(url, host)``, once the host resolves to public addresses only (or any, with ``allow_private``)."""
    url, host = parse_url(raw)
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT_S):
                found = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError, UnicodeError):
            raise BadWebhookUrl(f"the webhook host {host} could not be resolved") from None
        addresses = [str(info[4][0]) for info in found]
    if not allow_private and not all(is_public(address) for address in addresses):
        raise BadWebhookUrl(
            f"the webhook host {host} is a loopback, private, link-local or reserved address; the gateway only "
            "sends webhooks to public addresses (its operator may allow others: DETECTBOT_WEBHOOK_ALLOW_PRIVATE)"
        )
    return url, host


class PublicResolver(AbstractResolver):
    """The sender's resolver: only public addresses (unless allowed), so a name re-pointed inward after it was
    checked (DNS rebinding) is refused at connection time too."""

    def __init__(self, *, allow_private: bool) -> None:
        self._inner = ThreadedResolver()
        self._allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        allowed = [entry for entry in found if self._allow_private or is_public(entry["host"])]
        if not allowed:
            raise OSError(f"{host} resolves to no public address")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


# --- the event --------------------------------------------------------------------------------------------


def signature(keys: Sequence[bytes], event_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``, one per key (space-separated while rotating)."""
    signed = f"{event_id}.{timestamp}.".encode() + body
    return " ".join("v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode() for key in keys)


def event_body(job: Job, hook: Webhook, signer: Signer, *, view_link_ttl_s: int) -> bytes:
    """The event: the job exactly as ``GET /v1/jobs/{id}`` shows it (in its own language), less its ``webhook``
    field, which describes this very delivery."""
    expires = int(job.received_at + view_link_ttl_s)
    view = job_view(
        TypedJob.of(job),
        position=0,
        eta_s=0.0,
        language=None,
        status_url=view_link(signer, hook.base_url, job.id, "", expires=expires),
        result_url=view_link(signer, hook.base_url, job.id, "/result", expires=expires),
        crops_url=view_link(signer, hook.base_url, job.id, "/crops", expires=expires),
    )
    finished = job.done_at or job.failed_at or job.dead_at or job.cancelled_at or job.received_at
    event = {
        "type": EVENT_TYPE,
        "timestamp": dt.datetime.fromtimestamp(finished, dt.UTC).isoformat().replace("+00:00", "Z"),
        "data": view.model_dump(mode="json", exclude={"webhook"}),
    }
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()


def backoff_s(attempts: int, first_s: float) -> float:
    """The pause after the ``attempts``-th failed try: doubling from ``first_s``, at most an hour, ±20 %."""
    base = min(first_s * 2 ** min(attempts - 1, 30), MAX_BACKOFF_S)
    return float(base * random.uniform(0.8, 1.2))  # spreads the retries of a burst


# --- the sender -------------------------------------------------------------------------------------------


class WebhookSender:
    """Sends the due webhooks: leased, paced per receiver host, recorded one statement per try."""

    def __init__(
        self,
        database: Database,
        signer: Signer,
        keys: Sequence[bytes],
        metrics: GatewayMetrics,
        *,
        owner: str,
        view_link_ttl_s: int,
        timeout_s: float,
        retry_s: float,
        backoff_first_s: float,
        concurrency: int,
        per_host: int,
        allow_private: bool,
        every_s: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = database
        self._signer = signer
        self._keys = list(keys)
        self._metrics = metrics
        self._owner = owner
        self._view_link_ttl_s = view_link_ttl_s
        self._timeout_s = timeout_s
        self._retry_s = retry_s
        self._backoff_first_s = backoff_first_s
        self._concurrency = concurrency
        self._per_host = per_host
        self._allow_private = allow_private
        self._every_s = every_s
        self._clock = clock
        self._wake = asyncio.Event()
        self._in_flight: dict[str, tuple[str, asyncio.Task[None]]] = {}  # job id: (host, task)
        self._gauge_at = float("-inf")

    def wake(self, _job_id: str | None = None) -> None:
        """A job moved (it may have finished): look for due webhooks now."""
        self._wake.set()

    async def run(self) -> None:
        await self._db.write(lambda s: webhooks.release_leases(s, self._owner))  # what this sender held before
        connector = aiohttp.TCPConnector(
            resolver=PublicResolver(allow_private=self._allow_private), limit=self._concurrency, force_close=True
        )
        async with aiohttp.ClientSession(connector=connector, headers={"User-Agent": "detectbot-webhooks/1"}) as http:
            try:
                while True:
                    self._wake.clear()
                    try:
                        await self.send_due(http)
                    except Exception as exc:  # the database is away: the next pass tries again
                        log.warning("webhook pass failed (%s)", type(exc).__name__)
                    await woken(self._wake, self._every_s)
                    await asyncio.sleep(PASS_GAP_S)  # a burst settles into one pass; not a wait for work
            finally:
                tasks = [task for _, task in self._in_flight.values()]
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                with contextlib.suppress(Exception):  # the next start takes them back anyway
                    await self._db.write(lambda s: webhooks.release_leases(s, self._owner), retry_s=0)

    async def send_due(self, http: aiohttp.ClientSession) -> int:
        """Start a try for each due webhook there is room for; return how many started."""
        await self._update_gauge()
        room = self._concurrency - len(self._in_flight)
        if room <= 0:
            return 0
        busy = Counter(host for host, _ in self._in_flight.values())
        full = sorted(host for host, n in busy.items() if n >= self._per_host)
        found = await self._db.read(lambda s: webhooks.due(s, limit=room * 4, skip_hosts=full), retry_s=0)
        chosen: list[webhooks.Due] = []
        for item in found:
            host = item.hook.host
            if item.hook.job_id in self._in_flight or busy[host] >= self._per_host:
                continue
            busy[host] += 1
            chosen.append(item)
            if len(chosen) >= room:
                break
        ids = [item.hook.job_id for item in chosen]
        lease_s = self._timeout_s + 30.0
        taken = set(await self._db.write(lambda s: webhooks.lease(s, ids, owner=self._owner, seconds=lease_s)))
        started = 0
        for item in chosen:
            if item.hook.job_id not in taken:
                continue  # another replica took it meanwhile
            task = asyncio.create_task(self._try(http, item), name=f"webhook-{item.hook.job_id}")
            self._in_flight[item.hook.job_id] = (item.hook.host, task)
            task.add_done_callback(functools.partial(self._done, item.hook.job_id))
            started += 1
        return started

    def _done(self, job_id: str, _task: asyncio.Task[None]) -> None:
        self._in_flight.pop(job_id, None)
        self._wake.set()  # a slot is free: the next due one may go

    async def _try(self, http: aiohttp.ClientSession, item: webhooks.Due) -> None:
        hook, job = item.hook, item.job
        body = event_body(job, hook, self._signer, view_link_ttl_s=self._view_link_ttl_s)
        stamp = int(self._clock())
        headers = {
            "Content-Type": "application/json",
            "webhook-id": hook.event_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": signature(self._keys, hook.event_id, stamp, body),
        }
        status: int | None = None
        error = ""
        try:
            async with http.post(
                hook.url, data=body, headers=headers, allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self._timeout_s),
            ) as response:  # fmt: skip
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:300] if str(exc) else type(exc).__name__
        if status is not None and 200 <= status < 300:
            await self._db.write(lambda s: webhooks.delivered(s, hook.job_id, status=status))
            self._metrics.webhook_deliveries.labels(outcome="delivered").inc()
            log.info("job %s: webhook delivered to %s (%d, try %d)", job.id, hook.host, status, hook.attempts + 1)
            return
        if status == 410:
            await self._db.write(lambda s: webhooks.gone(s, hook.job_id, status=410))
            self._metrics.webhook_deliveries.labels(outcome="gone").inc()
            log.info("job %s: webhook receiver %s answered 410 Gone; not trying again", job.id, hook.host)
            return
        reason = error or f"HTTP {status}"
        after = backoff_s(hook.attempts + 1, self._backoff_first_s)
        window_s = self._retry_s

        async def record(session: AsyncSession) -> str:
            return await webhooks.retry(session, hook, status=status, error=reason, after=after, window_s=window_s)

        state = await self._db.write(record)
        outcome = "failed" if state == webhooks.FAILED else "retry"
        self._metrics.webhook_deliveries.labels(outcome=outcome).inc()
        if state == webhooks.FAILED:
            log.warning("job %s: webhook to %s failed for good after %d tries (%s)", job.id, hook.host,
                        hook.attempts + 1, reason)  # fmt: skip
        else:
            log.info("job %s: webhook to %s failed (%s); trying again in %.0f s", job.id, hook.host, reason, after)

    async def _update_gauge(self) -> None:
        now = time.monotonic()
        if now - self._gauge_at < GAUGE_EVERY_S:
            return
        self._gauge_at = now
        self._metrics.webhooks_pending.set(await self._db.read(webhooks.count_pending, retry_s=0))
