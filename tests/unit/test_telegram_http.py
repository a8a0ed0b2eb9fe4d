"""PTB's requests over aiohttp: what python-telegram-bot needs of a request besides the happy path (the fake's own
tests run every Bot API call through it) — its timeouts and network errors as PTB's own exceptions, which PTB and
our retries act on, files and parameters in one multipart body, and no use before it is initialized."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from telegram import Bot
from telegram.error import NetworkError, TimedOut

from queue_gateway.runtime.telegram_http import AiohttpRequest
from tests.fakes.telegram_api import FakeTelegram


@pytest.fixture
async def silent() -> AsyncIterator[str]:
    """A server that takes requests and never answers them."""
    never = asyncio.Event()

    async def hang(_request: web.Request) -> web.Response:
        await never.wait()
        return web.Response()

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hang)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    never.set()
    await runner.cleanup()


async def test_a_silent_server_is_timed_out_as_ptb_expects(silent: str) -> None:
    async with AiohttpRequest(read_timeout=0.3) as request:
        with pytest.raises(TimedOut):
            await request.do_request(f"{silent}/bot1:x/getMe", "POST")


async def test_a_refused_connection_is_a_network_error() -> None:
    async with AiohttpRequest() as request:
        with pytest.raises(NetworkError) as caught:
            await request.do_request("http://127.0.0.1:9/bot1:x/getMe", "POST")  # nothing listens on port 9
    assert not isinstance(caught.value, TimedOut) and "aiohttp" in str(caught.value)


async def test_it_must_be_initialized_and_can_be_again_after_shutdown() -> None:
    request = AiohttpRequest()
    with pytest.raises(RuntimeError):
        await request.do_request("http://127.0.0.1:9/x", "POST")
    await request.initialize()
    await request.shutdown()
    await request.initialize()  # PTB initializes a bot again after a shutdown (Application restarts)
    assert request.read_timeout == 5.0
    await request.shutdown()


async def test_parameters_and_files_arrive_in_one_multipart_body() -> None:
    async with FakeTelegram() as fake, Bot(fake.token, base_url=fake.base_url, request=AiohttpRequest()) as bot:
        fake.send_text_update(42, "hi")
        sent = await bot.send_document(42, b"\x00\x01binary", filename="a b.bin", caption="ünïcode, & = ?")
        [call] = fake.calls_of("sendDocument")
    assert call.files["document"] == b"\x00\x01binary" and call.file_names["document"] == "a b.bin"
    assert call.params["caption"] == "ünïcode, & = ?" and sent.caption == "ünïcode, & = ?"
