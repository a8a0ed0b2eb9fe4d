"""An HTTP client for the gateway's public API, used by the bots and the ``detectbot submit`` CLI, and its errors::

    GatewayClientError       never raised itself
    ├── GatewayRefused       the gateway answered 4xx: this request will not work as it is (``code`` says why)
    └── GatewayDown          the gateway could not be reached, or answered 5xx: try again later

A bot's handler lets them reach its one error handler, which answers the person in their language.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from pydantic import ValidationError

from queue_gateway.public.contract import (
    CancelBody,
    CancelResponse,
    ChatSettingsBody,
    CropsIndex,
    DeadJobsResponse,
    DeletedResponse,
    DetectParams,
    DiscordOrigin,
    ErrorBody,
    ForgetBody,
    ForgetResponse,
    HistoryResponse,
    JobView,
    PrivacyResponse,
    RequeueResponse,
    RerunBody,
    RerunMode,
    StatsResponse,
    StatusMessageBody,
    StatusMessageResponse,
    SubmitResponse,
    TelegramOrigin,
)
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
        webhook_url: str | None = None,
    ) -> SubmitResponse:
        form = aiohttp.FormData()  # a file object: aiohttp streams it in chunks instead of one write of it all
        form.add_field("image", io.BytesIO(image), filename=filename, content_type="application/octet-stream")
        if params is not None:
            form.add_field("params", params.model_dump_json(exclude_none=True), content_type="application/json")
        if origin is not None:
            form.add_field("origin", origin.model_dump_json(exclude_none=True), content_type="application/json")
        if webhook_url is not None:
            form.add_field("webhook_url", webhook_url)
        headers = dict(self._headers)
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        body = await self._request("POST", "/v1/jobs", data=form, headers=headers)
        return SubmitResponse.model_validate(body)

    async def job(self, job_id: str, *, wait: float = 0.0, lang: str | None = None) -> JobView:
        query = urlencode({k: v for k, v in (("wait", f"{wait:g}" if wait else None), ("lang", lang)) if v})
        return JobView.model_validate(await self._json("GET", f"/v1/jobs/{job_id}" + (f"?{query}" if query else "")))

    async def result_image(self, job_id: str) -> bytes:
        return await self._bytes(f"/v1/jobs/{job_id}/result")

    async def crops(
        self, job_id: str, *, user_id: str | None = None, lang: str | None = None
    ) -> tuple[CropsIndex, list[bytes]]:
        """The job's objects cut out: the index (captions in ``lang``) and each JPEG, in its order. ``user_id``:
        the person asking, who must have sent the photo (leave it out for a chat's admin)."""
        query = urlencode({k: v for k, v in (("user_id", user_id), ("lang", lang)) if v})
        data = await self._bytes(f"/v1/jobs/{job_id}/crops" + (f"?{query}" if query else ""))
        with zipfile.ZipFile(io.BytesIO(data)) as zipped:
            index = CropsIndex.model_validate_json(zipped.read("index.json"))
            return index, [zipped.read(item.file) for item in index.objects]

    async def cancel(self, job_id: str, *, user_id: str | None = None) -> CancelResponse:
        body = CancelBody(user_id=user_id).model_dump(exclude_none=True)
        return CancelResponse.model_validate(await self._json("POST", f"/v1/jobs/{job_id}/cancel", body=body))

    async def delete(self, job_id: str) -> DeletedResponse:
        return DeletedResponse.model_validate(await self._json("DELETE", f"/v1/jobs/{job_id}"))

    async def name_status_message(self, job_id: str, message_id: str) -> StatusMessageResponse:
        body = StatusMessageBody(message_id=message_id).model_dump()
        return StatusMessageResponse.model_validate(
            await self._json("POST", f"/v1/jobs/{job_id}/status-message", body=body)
        )

    async def stats(self, lang: str | None) -> StatsResponse:
        return StatsResponse.model_validate(await self._json("GET", f"/v1/stats?{_lang(lang)}"))

    async def stats_chart(self) -> bytes:
        return await self._bytes("/v1/stats/chart.png")

    async def dead_jobs(self, *, limit: int, lang: str | None) -> DeadJobsResponse:
        return DeadJobsResponse.model_validate(await self._json("GET", f"/v1/dead-jobs?limit={limit}&{_lang(lang)}"))

    async def requeue(self, job_id: str) -> RequeueResponse:
        return RequeueResponse.model_validate(await self._json("POST", f"/v1/jobs/{job_id}/requeue"))

    async def forget(self, platform: str, user_id: str, lang: str | None) -> ForgetResponse:
        body = ForgetBody.model_validate({"platform": platform, "user_id": user_id}).model_dump()
        return ForgetResponse.model_validate(await self._json("POST", f"/v1/forget?{_lang(lang)}", body=body))

    async def history(self, platform: str, user_id: str, chat: str, lang: str | None) -> HistoryResponse:
        """A person's last photos in a chat, with the re-runs each offers."""
        query = urlencode({"chat": chat, "lang": lang or "en"})
        path = f"/v1/people/{platform}/{quote(user_id, safe='')}/history?{query}"
        return HistoryResponse.model_validate(await self._json("GET", path))

    async def rerun(
        self,
        job_id: str,
        mode: RerunMode,
        *,
        user_id: str | None = None,
        origin: Origin | None = None,
        idempotency_key: str | None = None,
        lang: str | None = None,
    ) -> SubmitResponse:
        """Run a finished job's stored photo again as a new job; ``origin``: where a bot's re-run answers."""
        body = RerunBody(mode=mode, user_id=user_id, origin=origin).model_dump(mode="json", exclude_none=True)
        headers = dict(self._headers) | ({"Idempotency-Key": idempotency_key} if idempotency_key else {})
        path = f"/v1/jobs/{job_id}/rerun?{_lang(lang)}"
        return SubmitResponse.model_validate(await self._request("POST", path, json=body, headers=headers))

    async def privacy(self, lang: str | None) -> PrivacyResponse:
        return PrivacyResponse.model_validate(await self._json("GET", f"/v1/privacy?{_lang(lang)}"))

    async def settings(self, path: str) -> ChatSettingsBody:
        """A chat's (``/v1/chats/…``) or a person's (``/v1/people/…``) settings."""
        return ChatSettingsBody.model_validate(await self._json("GET", path))

    async def change_settings(self, path: str, changes: dict[str, Any]) -> ChatSettingsBody:
        body = ChatSettingsBody.model_validate(changes).model_dump(exclude_unset=True)
        return ChatSettingsBody.model_validate(await self._json("PATCH", path, body=body))

    async def _json(self, method: str, path: str, *, body: dict[str, Any] | None = None) -> Any:
        kwargs: dict[str, Any] = {"headers": self._headers}
        if body is not None or method in ("POST", "PATCH"):
            kwargs["json"] = body or {}
        return await self._request(method, path, **kwargs)

    async def _bytes(self, path: str) -> bytes:
        try:
            async with self._session.get(f"{self._base}{path}", headers=self._headers) as resp:
                if resp.status != 200:
                    raise _error(resp.status, await resp.text())
                return await resp.read()
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise GatewayDown(f"cannot reach the gateway at {self._base}: {exc or type(exc).__name__}") from exc

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


def _lang(lang: str | None) -> str:
    return urlencode({"lang": lang or "en"})


def _error(status: int, text: str) -> GatewayRefused | GatewayDown:
    try:
        body = ErrorBody.model_validate_json(text)
        code, message, retry_after, limit = str(body.error), body.message, body.retry_after, body.limit
    except ValidationError:
        code, message, retry_after, limit = "error", text[:200] or f"HTTP {status}", None, None
    if status >= 500 and code != "busy":  # the gateway (or its database) is briefly away
        return GatewayDown(f"the gateway answered {status}: {message}", retry_after)
    return GatewayRefused(status, code, message, retry_after, limit)
