"""python-telegram-bot's requests over aiohttp: the Bot API called through PTB's own networking interface.

PTB sends every Bot API call through a :class:`telegram.request.BaseRequest`; its default, ``HTTPXRequest``, runs
httpx over httpcore and anyio. Under the E2E load those layers cost the bot more CPU than PTB itself
(benchmarks/PROFILE.md: httpcore 34 %, anyio 10 %, PTB 16 %). This implementation of the same interface uses
aiohttp, which the gateway and the bots already run for everything else; PTB keeps everything above it (the
parameters, files, errors, retries, rate limits). ``benchmarks/bench_telegram_http.py`` measures both.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

DEFAULT_TIMEOUT = 5.0  # PTB's own defaults for each phase of a request


class AiohttpRequest(BaseRequest):
    """A :class:`~telegram.request.BaseRequest` over one :class:`aiohttp.ClientSession` (made on
    :meth:`initialize`, so that it belongs to the running event loop) with at most ``connections`` open at once."""

    __slots__ = ("_connect", "_connections", "_media_write", "_pool", "_read", "_session", "_write")

    def __init__(
        self,
        *,
        connections: int = 16,
        read_timeout: float | None = DEFAULT_TIMEOUT,
        write_timeout: float | None = DEFAULT_TIMEOUT,
        connect_timeout: float | None = DEFAULT_TIMEOUT,
        pool_timeout: float | None = 1.0,
        media_write_timeout: float | None = 20.0,
    ) -> None:
        self._connections = connections
        self._read = read_timeout
        self._write = write_timeout
        self._connect = connect_timeout
        self._pool = pool_timeout
        self._media_write = media_write_timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        return self._read

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections),
                headers={"User-Agent": self.USER_AGENT},
                auto_decompress=True,
            )

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        files = request_data.multipart_data if request_data is not None and request_data.contains_files else None
        read = self._read if read_timeout is BaseRequest.DEFAULT_NONE else read_timeout
        write = write_timeout
        if write is BaseRequest.DEFAULT_NONE:
            write = self._media_write if files else self._write
        connect = self._connect if connect_timeout is BaseRequest.DEFAULT_NONE else connect_timeout
        pool = self._pool if pool_timeout is BaseRequest.DEFAULT_NONE else pool_timeout
        # aiohttp has no timeout for writing alone: the request may take its write and read time together
        total = None if read is None or write is None else read + write + (connect or 0.0) + (pool or 0.0)
        waiting = None if pool is None or connect is None else pool + connect  # for a free connection, then for it
        timeout = aiohttp.ClientTimeout(total=total, connect=waiting, sock_connect=connect, sock_read=read)
        body: Any = None
        if request_data is not None:
            body = _form(request_data, files) if files else request_data.json_parameters
        try:
            async with self._session.request(method, url, data=body, timeout=timeout) as response:
                return response.status, await response.read()
        except TimeoutError as exc:
            raise TimedOut from exc
        except aiohttp.ClientError as exc:
            raise NetworkError(f"aiohttp.{type(exc).__name__}: {exc}") from exc


def _form(request_data: RequestData, files: dict[str, tuple[str, Any, str]]) -> aiohttp.FormData:
    """The parameters and the files as one multipart body, as PTB's own request sends them."""
    form = aiohttp.FormData(quote_fields=False)
    for name, value in request_data.json_parameters.items():
        form.add_field(name, value)
    for name, (filename, content, content_type) in files.items():
        form.add_field(name, content, filename=filename, content_type=content_type)
    return form
