"""The worker's only way out: the signed URLs in a job message, retried with backoff on transient errors."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import urljoin

import aiohttp
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_delay, wait_exponential_jitter

from queue_gateway.public.contract import ResultMeta
from queue_gateway.runtime import tracing
from worker.errors import Gone, Refused, Unreachable

log = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT_STATUSES = {408, 425, 429, 500, 502, 503, 504}


class GatewayLink:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        worker: str,
        retry_window_s: float,
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/") + "/"
        self._headers = {"X-Detectbot-Worker": worker}
        self._retry_window_s = retry_window_s

    def url(self, signed: str) -> str:
        return urljoin(self._base, signed.lstrip("/")) if not signed.startswith("http") else signed

    async def fetch_input(self, signed_url: str, *, delivery: int = 1) -> bytes:
        """The job's photo; ``delivery`` is the broker's delivery number of the message (a retried fetch of the
        same delivery is not another attempt)."""
        headers = self._headers | {"X-Detectbot-Delivery": str(delivery)}

        async def attempt() -> bytes:
            async with self._session.get(self.url(signed_url), headers=headers | tracing.headers()) as response:
                await _raise_for(response)
                return await response.read()

        return await self._retrying(attempt)

    async def post_result(self, signed_url: str, meta: ResultMeta, image: bytes | None, *, retry: bool = True) -> None:
        async def attempt() -> None:
            form = aiohttp.FormData()
            form.add_field("meta", meta.model_dump_json(), content_type="application/json")
            if image is not None:
                form.add_field("image", image, filename="result.jpg", content_type="image/jpeg")
            headers = self._headers | tracing.headers()
            async with self._session.post(self.url(signed_url), data=form, headers=headers) as response:
                await _raise_for(response)

        if not retry:
            try:
                await attempt()
            except (aiohttp.ClientError, TimeoutError, _Transient) as exc:
                raise Unreachable(f"gateway unreachable: {exc or type(exc).__name__}") from exc
            return
        await self._retrying(attempt)

    async def _retrying(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Try until it works, for up to the retry window; then ``Unreachable``."""
        try:
            async for trying in AsyncRetrying(
                retry=retry_if_exception_type((aiohttp.ClientError, TimeoutError, _Transient)),
                stop=stop_after_delay(self._retry_window_s),
                wait=wait_exponential_jitter(multiplier=0.5, max=10.0, jitter=0.5),
                before_sleep=_log_retry,
                reraise=True,
            ):
                with trying:
                    return await attempt()
        except (aiohttp.ClientError, TimeoutError, _Transient) as exc:
            raise Unreachable(f"gateway unreachable: {exc or type(exc).__name__}") from exc
        raise AssertionError("unreachable")  # pragma: no cover - AsyncRetrying returns or raises


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome is not None else None
    log.warning("gateway request failed (%s); retrying", error or "?")


class _Transient(Exception):
    pass


async def _raise_for(response: aiohttp.ClientResponse) -> None:
    if response.status < 300:
        return
    body = (await response.text())[:300]
    if response.status in (404, 410):
        raise Gone(f"{response.status}: {body}")
    if response.status in TRANSIENT_STATUSES:
        raise _Transient(f"HTTP {response.status}")
    raise Refused(f"HTTP {response.status}: {body}")
