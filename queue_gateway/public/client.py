"""An HTTP client for the gateway's public API, used by the bots and the ``detectbot submit`` CLI, and its errors::

    GatewayClientError       never raised itself
    ├── GatewayRefused       the gateway answered 4xx: this request will not work as it is (``code`` says why)
    └── GatewayDown          the gateway could not be reached, or answered 5xx: try again later

A bot's handler lets them reach its one error handler, which answers the person in their language.
"""

from __future__ import annotations

import io
import json
from typing import Any

import aiohttp

from queue_gateway.public.contract import DetectParams, DiscordOrigin, SubmitResponse, TelegramOrigin
from queue_gateway.runtime import tracing

Origin = TelegramOrigin | DiscordOrigin


class GatewayClientError(Exception):
    """Anything that stops a call to the gateway from doing what was asked."""


class GatewayRefused(GatewayClientError):
    """The gateway answered with an error; ``code`` is stable, ``message`` is the gateway's English sentence."""

    def __init__(
        self, status: int, code: str, message: str, retry_after: int | None = None, limit: int | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.limit = limit


class GatewayDown(GatewayClientError):
    """The gateway could not be reached, or it is briefly unable to answer (5xx)."""

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class GatewayClient:
    def __init__(self, session: aiohttp.ClientSession, base_url: str, api_key: str | None) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    @property
    def base_url(self) -> str:
        return self._base

    async def submit(
        self,
        image: bytes,
        *,
        filename: str = "photo.jpg",
        params: DetectParams | None = None,
        origin: Origin | None = None,
        idempotency_key: str | None = None,
    ) -> SubmitResponse:
        form = aiohttp.FormData()  # a file object: aiohttp streams it in chunks instead of one write of it all
        form.add_field("image", io.BytesIO(image), filename=filename, content_type="application/octet-stream")
        if params is not None:
            form.add_field("params", params.model_dump_json(exclude_none=True), content_type="application/json")
        if origin is not None:
            form.add_field("origin", origin.model_dump_json(exclude_none=True), content_type="application/json")
        headers = dict(self._headers)
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        body = await self._request("POST", "/v1/jobs", data=form, headers=headers)
        return SubmitResponse.model_validate(body)

    async def job(self, job_id: str, *, wait: float = 0.0) -> dict[str, Any]:
        query = f"?wait={wait:g}" if wait else ""
        result: dict[str, Any] = await self._request("GET", f"/v1/jobs/{job_id}{query}", headers=self._headers)
        return result

    async def result_image(self, job_id: str) -> bytes:
        return await self.get_bytes(f"/v1/jobs/{job_id}/result")

    async def get_bytes(self, path: str) -> bytes:
        try:
            async with self._session.get(f"{self._base}{path}", headers=self._headers) as resp:
                if resp.status != 200:
                    raise _error(resp.status, await resp.text())
                return await resp.read()
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise GatewayDown(f"cannot reach the gateway at {self._base}: {exc or type(exc).__name__}") from exc

    async def get_json(self, path: str) -> Any:
        return await self._request("GET", path, headers=self._headers)

    async def post_json(self, path: str, payload: dict[str, Any] | None = None) -> Any:
        return await self._request("POST", path, json=payload or {}, headers=self._headers)

    async def patch_json(self, path: str, payload: dict[str, Any]) -> Any:
        return await self._request("PATCH", path, json=payload, headers=self._headers)

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        kwargs["headers"] = {**kwargs.get("headers", {}), **tracing.headers()}
        try:
            async with self._session.request(method, f"{self._base}{path}", **kwargs) as resp:
                text = await resp.text()
                if resp.status >= 400:
                    raise _error(resp.status, text)
                return json.loads(text) if text else {}
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise GatewayDown(f"cannot reach the gateway at {self._base}: {exc or type(exc).__name__}") from exc


def _error(status: int, text: str) -> GatewayRefused | GatewayDown:
    try:
        body = json.loads(text)
        code, message = str(body.get("error", "error")), str(body.get("message", text))
        retry_after, limit = body.get("retry_after"), body.get("limit")
    except (ValueError, AttributeError):
        code, message, retry_after, limit = "error", text[:200] or f"HTTP {status}", None, None
    if status >= 500 and code != "busy":  # the gateway (or its database) is briefly away
        return GatewayDown(f"the gateway answered {status}: {message}", retry_after)
    return GatewayRefused(status, code, message, retry_after, limit)
