"""The worker's only way out: the signed URLs in a job message, retried with backoff on transient errors."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import urljoin

import aiohttp

from queue_gateway.contract import ResultMeta

log = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT_STATUSES = {408, 425, 429, 500, 502, 503, 504}


class Gone(Exception):
    """The gateway has nothing left to do for this job (finished, dead or deleted)."""


class Refused(Exception):
    """The gateway refused the request for good (bad signature, bad request)."""


class Unreachable(Exception):
    """The gateway kept failing for the whole retry window."""


class GatewayLink:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        worker: str,
        retry_window_s: float,
        api_key: str | None = None,
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/") + "/"
        self._headers = {"X-Detectbot-Worker": worker}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._retry_window_s = retry_window_s

    def url(self, signed: str) -> str:
        return urljoin(self._base, signed.lstrip("/")) if not signed.startswith("http") else signed

    async def fetch_input(self, signed_url: str) -> bytes:
        async def attempt() -> bytes:
            async with self._session.get(self.url(signed_url), headers=self._headers) as response:
                await _raise_for(response)
                return await response.read()

        return await self._retrying(attempt)

    async def post_result(self, signed_url: str, meta: ResultMeta, image: bytes | None) -> None:
        async def attempt() -> None:
            form = aiohttp.FormData()
            form.add_field("meta", meta.model_dump_json(), content_type="application/json")
            if image is not None:
                form.add_field("image", image, filename="result.jpg", content_type="image/jpeg")
            async with self._session.post(self.url(signed_url), data=form, headers=self._headers) as response:
                await _raise_for(response)

        await self._retrying(attempt)

    async def _retrying(self, attempt: Callable[[], Awaitable[T]]) -> T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._retry_window_s
        delay = 0.5
        while True:
            try:
                return await attempt()
            except (aiohttp.ClientError, TimeoutError, _Transient) as exc:
                if loop.time() + delay > deadline:
                    raise Unreachable(f"gateway unreachable: {exc}") from exc
                log.warning("gateway request failed (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, 10.0)


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
