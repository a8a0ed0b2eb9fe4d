"""The Discord bot end to end: fake Discord + real gateway + real RabbitMQ + real worker + real discord.py."""

from __future__ import annotations

import io
import logging
import random
import time
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web
from PIL import Image

from queue_gateway.notify.discord import MAX_ATTACHMENT_BYTES, fit
from queue_gateway.public import texts
from tests.clips import decoded as clip_frames
from tests.clips import gif, numbered, video
from tests.discord_stack import CHANNEL, FOLLOWUP, GUILD, ORIGINAL, USER, Stack, _content, bot_settings, make_bot
from tests.fakes.discord_api import FLAG_EPHEMERAL, FakeDiscord
from tests.images import jpeg, png

MiB = 1024 * 1024


@pytest.fixture
async def stack(start_discord) -> Stack:
    return await start_discord()


def decoded(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def edits(fake: FakeDiscord) -> list[str]:
    return [_content(c) for c in fake.calls_matching(ORIGINAL) if c.status == 200]


async def test_detect_defers_then_follows_up_with_the_annotated_photo(start_discord, database_url: str) -> None:
    stack: Stack = await start_discord(database_url=database_url)
    fake = stack.fake
    started = time.monotonic()
    interaction = await stack.slash(fake.add_attachment(jpeg(640, 480), "street.jpg", "image/jpeg"))

    callback, *_ = await fake.wait_for_call(f"POST /interactions/{interaction['id']}/*")
    assert (callback.status, callback.json) == (200, {"type": 5})
    assert callback.at - started < 3.0
    followup, *_ = await fake.wait_for_call(FOLLOWUP, timeout=30)
    assert followup.status == 200 and "Authorization" not in followup.headers
    [(_, filename, data)] = followup.files
    assert filename.endswith(".jpg") and decoded(data).size == (640, 480)
    assert _content(followup) == "1 bus, 1 person"
    await stack.status("Done in ")

    state = fake.interaction_state(interaction["id"])
    assert (state.original_content or "").startswith("Done in ")
    assert [m["content"] for m in state.followups] == ["1 bus, 1 person"]  # its own message, not the status
    said = edits(fake)
    assert said[0] == texts.text("received") and said[-1].startswith("Done in ")
    assert said[1].startswith("Queued — #1 in line, about ") or said[1] == texts.text("queued_now"), said
    job = await stack.delivered()
    assert job.status_message_id == "@original"
    assert (job.delivery_receipt or {})["route"] == "followup"


async def test_detect_objects_on_a_message_answers_its_photos_in_order(stack: Stack) -> None:
    fake = stack.fake
    attachments = [
        fake.add_attachment(jpeg(300, 200), "first.jpg", "image/jpeg"),
        fake.add_attachment(b"%PDF-1.4\n", "notes.pdf", "application/pdf"),
        fake.add_attachment(png(320, 240), "second.png", "image/png"),
    ]
    target = fake.post_message(CHANNEL, author_id=USER, attachments=attachments, content="two photos")
    await fake.create_context_menu_interaction(
        "Detect objects", target_message=target, user_id=USER, channel_id=CHANNEL, guild_id=GUILD
    )

    followup, *_ = await fake.wait_for_call(FOLLOWUP, timeout=30)
    assert [decoded(data).size for _, _, data in followup.files] == [(300, 200), (320, 240)]
    assert _content(followup) == "1. 1 bus, 1 person\n2. 1 bus, 1 person"
    await stack.status("Done in ")
    assert any(e.startswith("Queued 2 photos — #1 in line") for e in edits(fake)), edits(fake)
    assert len(fake.calls_matching(FOLLOWUP)) == 1
    jobs = await stack.jobs()
    assert len(jobs) == 2 and all(j.origin and j.origin["message_id"] == target["id"] for j in jobs)


async def test_detect_objects_on_a_message_with_clips_answers_each_clip_on_its_own(stack: Stack) -> None:
    fake = stack.fake
    attachments = [
        fake.add_attachment(jpeg(300, 200), "photo.jpg", "image/jpeg"),
        fake.add_attachment(gif(numbered(10, size=(160, 120)), fps=10), "wave.gif", "image/gif"),
        fake.add_attachment(video(numbered(20, size=(320, 240)), fps=10, codec="libvpx", container="webm"),
                            "walk.webm", "video/webm"),
    ]  # fmt: skip
    target = fake.post_message(CHANNEL, author_id=USER, attachments=attachments, content="a photo and two clips")
    await fake.create_context_menu_interaction(
        "Detect objects", target_message=target, user_id=USER, channel_id=CHANNEL, guild_id=GUILD
    )
    await stack.status("Done in ")
    photo, wave, walk = await fake.wait_for_call(FOLLOWUP, timeout=30, count=3)  # the photos, then a clip a message
    [(_, name, data)] = photo.files
    assert name.endswith(".jpg") and decoded(data).size == (300, 200)
    assert _content(photo) == "1 bus, 1 person"
    for call, frames, seconds in ((wave, 10, "1.0"), (walk, 20, "2.0")):
        [(_, name, data)] = call.files
        assert name.endswith((".mp4", ".gif"))  # the smaller of the two
        assert len(clip_frames(data)[0]) == frames
        assert _content(call) == f"up to 1 bus, 1 person · {seconds} s"
    assert all(job.media == ("photo" if job.image_format == "JPEG" else "clip") for job in await stack.jobs())


async def test_a_result_faster_than_the_queued_edit_does_not_land_in_the_status(
    start_discord, http: aiohttp.ClientSession, tmp_path
) -> None:
    """The gateway's follow-up goes out before the bot has shown "queued": it must not fill the status message."""
    stack = await start_discord(worker=False)
    fake = stack.fake
    async with HoldingProxy(stack.gateway.url, until=lambda: fake.wait_for_call(FOLLOWUP, timeout=30)) as proxy:
        await stack.bot.stop()  # restart the bot behind the proxy: it gets its submit answer only after the result
        bot = make_bot(bot_settings(fake, stack.gateway, gateway_url=proxy.url, data_dir=tmp_path / "bot2"), http)
        await bot.start()
        try:
            await stack.start_worker()
            interaction = await stack.slash(fake.add_attachment(jpeg(200, 150), "quick.jpg", "image/jpeg"))
            followup, *_ = await fake.wait_for_call(FOLLOWUP, timeout=30)
            queued = await stack.status(("Queued", texts.text("queued_now")))
            done = await stack.status("Done in ")
        finally:
            await bot.stop()
    assert followup.at < queued.at < done.at
    state = fake.interaction_state(interaction["id"])
    assert [m["content"] for m in state.followups] == ["1 bus, 1 person"]
    assert [a["filename"] for m in state.followups for a in m["attachments"]] == [followup.files[0][1]]
    assert (state.original_content or "").startswith("Done in ") and state.original_attachments == []


class HoldingProxy:
    """Forwards the bot's calls to the gateway, holding back the answer to ``POST /v1/jobs`` until ``until()``."""

    def __init__(self, target: str, *, until: Callable[[], Awaitable[object]]) -> None:
        self._target = target
        self._until = until
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.url = ""

    async def __aenter__(self) -> HoldingProxy:
        app = web.Application(client_max_size=64 * MiB)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._session = aiohttp.ClientSession()
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None and self._session is not None
        await self._runner.cleanup()
        await self._session.close()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        url = f"{self._target}{request.path_qs}"
        async with self._session.request(request.method, url, data=await request.read(), headers=headers) as r:
            body, status, content_type = await r.read(), r.status, r.content_type
        if request.method == "POST" and request.path == "/v1/jobs":
            await self._until()
        return web.Response(body=body, status=status, content_type=content_type)


@pytest.mark.parametrize("command", ["slash", "menu"])
async def test_expired_token_delivers_as_a_channel_message(start_discord, command: str) -> None:
    stack = await start_discord(worker=False)
    fake = stack.fake
    photo = fake.add_attachment(jpeg(400, 300), "late.jpg", "image/jpeg")
    if command == "slash":
        interaction = await stack.slash(photo)
        target = None
    else:
        target = fake.post_message(CHANNEL, author_id=USER, attachments=[photo])
        interaction = await fake.create_context_menu_interaction(
            "Detect objects", target_message=target, user_id=USER, channel_id=CHANNEL, guild_id=GUILD
        )
    await stack.status("Queued")
    fake.expire_token(interaction["token"])  # the result comes after the 15 minutes
    await stack.start_worker()

    # the result, with its image (the status may have moved to a channel message of its own before it)
    sent, *_ = await fake.wait_for_call(f"POST /channels/{CHANNEL}/messages", lambda c: bool(c.files), timeout=30)
    assert sent.status == 200 and sent.headers["Authorization"] == f"Bot {fake.token}"
    assert _content(sent) == f"<@{USER}> 1 bus, 1 person"
    assert decoded(sent.files[0][2]).size == (400, 300)
    reference = (sent.json or {}).get("message_reference")
    assert str((reference or {}).get("message_id")) == (target["id"] if target else "None")
    assert [c.status for c in fake.calls_matching(FOLLOWUP)] == [401]
    job = await stack.delivered()
    assert (job.delivery_receipt or {})["route"] == "channel"
    assert (job.delivery_receipt or {})["sent"] == [fake.channel_messages(CHANNEL)[-1]["id"]]


async def test_too_large_followup_is_shrunk_and_sent_again(stack: Stack) -> None:
    fake = stack.fake
    fake.fail_next(FOLLOWUP, 413, code=40005)
    await stack.slash(fake.add_attachment(jpeg(1280, 960), "big.jpg", "image/jpeg"))

    sent, *_ = await fake.wait_for_call(FOLLOWUP, lambda c: c.status == 200, timeout=30)
    refused = fake.calls_matching(FOLLOWUP)[0]
    assert refused.status == 413 and refused.at < sent.at
    before, after = refused.files[0][2], sent.files[0][2]
    assert len(after) < len(before) and len(after) <= MAX_ATTACHMENT_BYTES
    width, height = decoded(after).size
    assert width < 1280 and abs(width / height - 4 / 3) < 0.02
    assert len(fake.calls_matching(FOLLOWUP)) == 2
    await stack.delivered()


@pytest.mark.parametrize("via", [True, False], ids=["retried-by-discord.py", "retried-by-the-gateway"])
async def test_rate_limited_followup_is_delivered_once(stack: Stack, via: bool) -> None:
    fake = stack.fake
    fake.fail_next(FOLLOWUP, 429, retry_after=0.5, via=via)
    interaction = await stack.slash(fake.add_attachment(jpeg(), "busy.jpg", "image/jpeg"))

    await fake.wait_for_call(FOLLOWUP, lambda c: c.status == 200, timeout=30)
    await stack.delivered()
    assert [c.status for c in fake.calls_matching(FOLLOWUP)] == [429, 200]
    assert len(fake.interaction_state(interaction["id"]).followups) == 1


async def test_same_interaction_twice_gives_one_job_and_one_delivery(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    fake = stack.fake
    interaction = await stack.slash(fake.add_attachment(jpeg(), "twice.jpg", "image/jpeg"))
    callbacks = f"POST /interactions/{interaction['id']}/*"
    await fake.wait_for_call(callbacks)
    await fake.redispatch(interaction)  # Discord delivers the same INTERACTION_CREATE again

    _, repeat, *_ = await fake.wait_for_call(callbacks, count=2)
    assert (repeat.status, repeat.json) == (400, {"type": 5})
    await stack.delivered()
    assert await stack.job_count() == 1
    assert len(fake.calls_matching(FOLLOWUP)) == 1
    assert texts.text("unavailable") not in edits(fake)
    assert [c["type"] for c in fake.interaction_state(interaction["id"]).callbacks] == [5]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []  # a repeat, not an error


async def test_pdf_gets_the_hint_and_nothing_is_queued(stack: Stack) -> None:
    fake = stack.fake
    await stack.slash(fake.add_attachment(b"%PDF-1.4\n%%EOF\n", "report.pdf", "application/pdf"))
    edit, *_ = await fake.wait_for_call(ORIGINAL)
    assert _content(edit) == texts.text("discord_hint")
    assert fake.calls_matching("GET /cdn/*") == []
    assert await stack.job_count() == 0


async def test_attachment_over_the_cap_gets_a_polite_refusal_and_is_not_downloaded(stack: Stack) -> None:
    fake = stack.fake
    await stack.slash(fake.add_attachment(jpeg(), "huge.jpg", "image/jpeg", size=30 * MiB))
    edit, *_ = await fake.wait_for_call(ORIGINAL)
    assert _content(edit) == "That file is 30 MB; the limit is 20 MB. Please send a smaller photo."
    assert fake.calls_matching("GET /cdn/*") == []
    assert await stack.job_count() == 0


async def test_guild_scoped_sync_and_help(start_discord) -> None:
    stack = await start_discord(worker=False, discord_guild_id=GUILD)
    fake = stack.fake
    assert {c["name"] for c in fake.commands(GUILD)} == {
        "detect",
        "Detect objects",
        "help",
        "settings",
        "forget",
        "privacy",
        "history",
        "stats",
        "dlq",
    }
    assert fake.commands() == []
    detect = next(c for c in fake.commands(GUILD) if c["name"] == "detect")
    assert [(o["name"], o["type"], o["required"]) for o in detect["options"]] == [("image", 11, True)]
    assert detect["options"][0]["description"] == "A photo (JPEG, PNG, WebP), a GIF or a short video (MP4, WebM, MOV)"

    interaction = await fake.create_slash_interaction(
        "help", user_id=USER, channel_id=CHANNEL, guild_id=GUILD, locale="ru"
    )
    callback, *_ = await fake.wait_for_call(f"POST /interactions/{interaction['id']}/*")
    assert callback.json["type"] == 4 and callback.json["data"]["flags"] & FLAG_EPHEMERAL
    assert callback.json["data"]["content"] == texts.text("discord_help", "ru")


async def test_no_log_line_contains_the_token(start_discord, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    stack = await start_discord()
    fake = stack.fake
    fake.fail_next(FOLLOWUP, 401, code=50027)  # falls back to a channel message: the gateway logs in with the token
    interaction = await stack.slash(fake.add_attachment(jpeg(), "secret.jpg", "image/jpeg"))
    await fake.wait_for_call(f"POST /channels/{CHANNEL}/messages", timeout=30)
    await stack.delivered()

    messages = [r.getMessage() + (r.exc_text or "") for r in caplog.records]
    assert any(r.name.startswith("discord.") for r in caplog.records)
    assert [m for m in messages if fake.token in m] == []
    assert [m for m in messages if interaction["token"] in m] == []  # 15-minute credentials, masked too


def test_fit_shrinks_an_oversized_image_keeping_its_shape() -> None:
    rng = random.Random(7)
    noise = Image.frombytes("RGB", (600, 400), bytes(rng.getrandbits(8) for _ in range(600 * 400 * 3)))
    buffer = io.BytesIO()
    noise.save(buffer, "PNG")
    big = buffer.getvalue()
    assert len(big) > 500_000

    small = fit(big, 200_000)
    assert len(small) <= 200_000
    width, height = decoded(small).size
    assert width < 600 and abs(width / height - 1.5) < 0.02
    assert fit(small, 200_000) is small  # what fits is sent as it is
