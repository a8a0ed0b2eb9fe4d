"""The Discord fake driven by the real discord.py: gateway, interactions, webhooks and REST."""

from __future__ import annotations

import asyncio
import io
import struct
import time
import warnings
import zlib
from collections.abc import AsyncIterator

import aiohttp
import pytest

with warnings.catch_warnings():
    # discord.py 2.7.1 imports the stdlib 'audioop' (voice), deprecated in Python 3.11 (see discord_api).
    warnings.filterwarnings("ignore", "'audioop' is deprecated", DeprecationWarning)
    import discord
    from discord import app_commands
    from discord.gateway import DiscordWebSocket
    from discord.http import Route

from tests.clips import numbered, video
from tests.fakes.discord_api import FLAG_EPHEMERAL, MAX_ATTACHMENT_BYTES, FakeDiscord

USER_ID = 1_190_000_000_000_000_042
GUILD_ID = 1_190_000_000_000_000_500
CHANNEL_ID = 1_190_000_000_000_000_600


def _png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


PNG = _png(4, 3)


class DetectClient(discord.Client):
    """A minimal bot: /detect and a "Detect objects" message menu; HTTP failures are queued, not logged."""

    def __init__(self) -> None:
        super().__init__(intents=discord.Intents.default(), guild_ready_timeout=0.05)
        self.tree = app_commands.CommandTree(self)
        self.tree.command(name="detect", description="Detect objects in an image")(detect)
        self.tree.add_command(app_commands.ContextMenu(name="Detect objects", callback=detect_message))
        self.tree.command(name="ask", description="Ask first, with buttons")(ask)
        self.ready = asyncio.Event()
        self.failures: asyncio.Queue[discord.HTTPException] = asyncio.Queue()

    async def setup_hook(self) -> None:
        await self.tree.sync()

    async def on_ready(self) -> None:
        self.ready.set()


async def detect(interaction: discord.Interaction[DetectClient], image: discord.Attachment) -> None:
    try:
        await interaction.response.defer(thinking=True)
        data = await image.read()
        annotated = discord.File(io.BytesIO(data), filename=f"detected-{image.filename}")
        await interaction.followup.send(content=f"2 objects in {image.filename}", file=annotated)
    except discord.HTTPException as exc:
        interaction.client.failures.put_nowait(exc)


async def detect_message(interaction: discord.Interaction[DetectClient], message: discord.Message) -> None:
    try:
        await interaction.response.defer(thinking=True)
        image = message.attachments[0]
        annotated = discord.File(io.BytesIO(await image.read()), filename=f"detected-{image.filename}")
        await interaction.edit_original_response(content="1 object", attachments=[annotated])
    except discord.HTTPException as exc:
        interaction.client.failures.put_nowait(exc)


class Confirm(discord.ui.View):
    """Two buttons: "Go" rewrites the message it is on (callback 7), "Why?" answers privately (callback 4)."""

    def __init__(self) -> None:
        super().__init__(timeout=None)

    @discord.ui.button(label="Go", custom_id="ask:go")
    async def go(self, interaction: discord.Interaction[DetectClient], _button: discord.ui.Button[Confirm]) -> None:
        await interaction.response.edit_message(content=f"going, says {interaction.user.id}", view=None)

    @discord.ui.button(label="Why?", custom_id="ask:why")
    async def why(self, interaction: discord.Interaction[DetectClient], _button: discord.ui.Button[Confirm]) -> None:
        await interaction.response.send_message(f"because ({interaction.locale})", ephemeral=True)


async def ask(interaction: discord.Interaction[DetectClient]) -> None:
    await interaction.response.send_message("Sure?", view=Confirm())


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    server = FakeDiscord()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def bot(fake: FakeDiscord) -> AsyncIterator[DetectClient]:
    with fake.point_discord_py_here():
        client = DetectClient()
        runner = asyncio.create_task(client.start(fake.token))
        ready = asyncio.create_task(client.ready.wait())
        try:
            await asyncio.wait({runner, ready}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
            if runner.done():
                runner.result()  # start() ended before on_ready: surface its exception
            assert ready.done(), "on_ready did not fire within 10 s"
            yield client
        finally:
            ready.cancel()
            await client.close()
            await runner


async def test_client_identifies_and_syncs_commands(fake: FakeDiscord, bot: DetectClient) -> None:
    identify = await fake.wait_until_identified()

    assert identify["token"] == fake.token
    assert identify["intents"] == discord.Intents.default().value == 53575421
    assert bot.user is not None and bot.user.id == fake.bot_user_id
    assert bot.application_id == fake.application_id
    startup = [c.key for c in fake.calls]
    assert startup == [
        "GET /users/@me",
        "GET /oauth2/applications/@me",
        f"PUT /applications/{fake.application_id}/commands",
    ]
    commands = {c["name"]: c for c in fake.commands()}
    assert commands["detect"]["type"] == 1
    assert [(o["name"], o["type"], o["required"]) for o in commands["detect"]["options"]] == [("image", 11, True)]
    assert commands["Detect objects"]["type"] == 3
    assert bot.tree.get_command("detect") is not None


async def test_slash_command_defers_downloads_and_follows_up(fake: FakeDiscord, bot: DetectClient) -> None:
    attachment = fake.add_attachment(PNG, "cat photo.png", "image/png")
    assert (attachment["width"], attachment["height"], attachment["size"]) == (4, 3, len(PNG))

    interaction = await fake.create_slash_interaction(
        "detect", user_id=USER_ID, channel_id=CHANNEL_ID, guild_id=GUILD_ID, attachments=[attachment]
    )
    followup, *_ = await fake.wait_for_call("POST /webhooks/*")

    callback = fake.calls_matching(f"POST /interactions/{interaction['id']}/*")[0]
    assert (callback.status, callback.query, callback.json) == (200, {"with_response": "1"}, {"type": 5})
    assert [c.status for c in fake.calls_matching("GET /cdn/attachments/*")] == [200]
    assert followup.status == 200 and followup.query["wait"] == "1"
    assert "Authorization" not in followup.headers
    assert followup.files == [("files[0]", "detected-cat photo.png", PNG)]
    assert followup.json["content"] == "2 objects in cat photo.png"

    state = fake.interaction_state(interaction["id"])
    assert [c["type"] for c in state.callbacks] == [5]
    assert not state.is_loading and state.followups == []  # the first follow-up filled the deferred message
    assert state.original_content == "2 objects in cat photo.png"
    assert [a["filename"] for a in state.original_attachments] == ["detected-cat photo.png"]
    assert fake.channel_messages(CHANNEL_ID) == [state.original]


async def test_a_video_attachment_is_read_and_an_mp4_follow_up_stored_as_a_video(
    fake: FakeDiscord, bot: DetectClient
) -> None:
    clip = video(numbered(5, size=(320, 240)), fps=10)
    attachment = fake.add_attachment(clip, "clip.mp4", "video/mp4")
    assert (attachment["width"], attachment["height"], attachment["content_type"]) == (320, 240, "video/mp4")
    interaction = await fake.create_slash_interaction(
        "detect", user_id=USER_ID, channel_id=CHANNEL_ID, guild_id=GUILD_ID, attachments=[attachment]
    )
    followup, *_ = await fake.wait_for_call("POST /webhooks/*")
    assert followup.files == [("files[0]", "detected-clip.mp4", clip)]
    [stored] = fake.interaction_state(interaction["id"]).original_attachments
    assert (stored["filename"], stored["content_type"], stored["width"]) == ("detected-clip.mp4", "video/mp4", 320)


async def test_context_menu_edits_original_response(fake: FakeDiscord, bot: DetectClient) -> None:
    photo = fake.add_attachment(PNG, "dog.png", "image/png")
    target = fake.post_message(CHANNEL_ID, author_id=USER_ID, attachments=[photo], content="look")

    interaction = await fake.create_context_menu_interaction(
        "Detect objects", target_message=target, user_id=USER_ID, channel_id=CHANNEL_ID, guild_id=GUILD_ID
    )
    edit, *_ = await fake.wait_for_call("PATCH /webhooks/*/messages/@original")

    assert edit.status == 200
    assert edit.json["content"] == "1 object"
    assert edit.json["attachments"] == [{"id": 0, "filename": "detected-dog.png"}]
    assert edit.files == [("files[0]", "detected-dog.png", PNG)]
    state = fake.interaction_state(interaction["id"])
    assert state.original is not None and state.original["type"] == 23 and not state.is_loading
    assert state.original_attachments[0]["content_type"] == "image/png"


async def test_partial_webhook_followups_limits_and_expiry(fake: FakeDiscord) -> None:
    interaction = await fake.create_slash_interaction("detect", user_id=USER_ID, channel_id=CHANNEL_ID, options=[])
    state = fake.interaction_state(interaction["id"])
    callback_url = f"{fake.api_base}/interactions/{interaction['id']}/{interaction['token']}/callback"

    with fake.point_discord_py_here():
        async with aiohttp.ClientSession() as session:
            async with session.post(callback_url, json={"type": 5}) as deferred:
                assert deferred.status == 204  # no ?with_response: Discord answers 204
            assert state.is_loading

            hook = discord.Webhook.partial(fake.application_id, interaction["token"], session=session)
            first = await hook.send("3 objects", file=discord.File(io.BytesIO(PNG), "boxes.png"), wait=True)
            assert state.original is not None and first.id == int(state.original["id"])
            assert not state.is_loading and state.followups == []

            fake.fail_next("POST /webhooks/*", 429, retry_after=0.05)
            second = await hook.send("done", wait=True)
            assert [c.status for c in fake.calls_matching("POST /webhooks/*")] == [200, 429, 200]
            assert [m["id"] for m in state.followups] == [str(second.id)]

            fake.fail_next("POST /webhooks/*", 429, via=False)
            with pytest.raises(discord.HTTPException) as banned:
                await hook.send("no Via header: a Cloudflare ban, not retried", wait=True)
            assert banned.value.status == 429

            huge = discord.File(io.BytesIO(b"\0" * (MAX_ATTACHMENT_BYTES + 1)), "huge.bin")
            with pytest.raises(discord.HTTPException) as too_large:
                await hook.send(file=huge, wait=True)
            assert (too_large.value.status, too_large.value.code) == (413, 40005)

            fake.expire_token(interaction["token"])
            with pytest.raises(discord.HTTPException) as expired:
                await hook.send("too late", wait=True)
            assert (expired.value.status, expired.value.code) == (401, 50027)
            assert expired.value.text == "Invalid Webhook Token"
    assert len(state.followups) == 1


async def test_named_clients_and_held_answers(fake: FakeDiscord) -> None:
    """A client's own REST base names it in the record; a held request takes effect but is answered on release."""
    async with aiohttp.ClientSession() as http:
        base = fake.api_base_for("gw-b")
        hold = fake.hold_next(f"POST /channels/{CHANNEL_ID}/messages")
        headers = {"Authorization": f"Bot {fake.token}"}
        posting = asyncio.create_task(http.post(f"{base}/channels/{CHANNEL_ID}/messages", json={"content": "hi"},
                                                headers=headers))  # fmt: skip
        await asyncio.wait_for(hold.arrived.wait(), 10)
        assert [m["content"] for m in fake.channel_messages(CHANNEL_ID)] == ["hi"]
        assert not posting.done() and fake.calls == []
        hold.release()
        async with await posting as response:
            assert response.status == 200
        fake.drop_hold(fake.hold_next("GET /users/@me"))
        async with http.get(f"{base}/users/@me", headers=headers) as response:
            assert response.status == 200
    assert [(c.key, c.client) for c in fake.calls] == [
        (f"POST /channels/{CHANNEL_ID}/messages", "gw-b"),
        ("GET /users/@me", "gw-b"),
    ]


async def test_channel_message_over_rest_without_gateway(fake: FakeDiscord) -> None:
    with fake.point_discord_py_here():
        client = discord.Client(intents=discord.Intents.default())
        try:
            await client.login(fake.token)
            channel = client.get_partial_messageable(CHANNEL_ID)
            sent = await channel.send("result", file=discord.File(io.BytesIO(PNG), "result.png"))
            await sent.edit(content="result (edited)")
        finally:
            await client.close()

        intruder = discord.Client(intents=discord.Intents.default())
        try:
            with pytest.raises(discord.LoginFailure):
                await intruder.login("not-the-token")
        finally:
            await intruder.close()

    post = fake.calls_matching(f"POST /channels/{CHANNEL_ID}/messages")[0]
    assert post.headers["Authorization"] == f"Bot {fake.token}"
    assert post.files == [("files[0]", "result.png", PNG)]
    [message] = fake.channel_messages(CHANNEL_ID)
    assert message["content"] == "result (edited)" and message["edited_timestamp"] is not None
    assert message["attachments"][0]["filename"] == "result.png"
    assert [c.status for c in fake.calls_matching("GET /users/@me")] == [200, 401]
    assert fake.gateway_frames == []


async def test_buttons_are_pressed_with_component_interactions(fake: FakeDiscord, bot: DetectClient) -> None:
    asked = await fake.create_slash_interaction("ask", user_id=USER_ID, channel_id=CHANNEL_ID, guild_id=GUILD_ID)
    await fake.wait_for_call(f"POST /interactions/{asked['id']}/*")
    message = fake.interaction_state(asked["id"]).original
    assert message is not None
    [row] = message["components"]
    assert [(b["type"], b["label"], b["custom_id"]) for b in row["components"]] == [
        (2, "Go", "ask:go"),
        (2, "Why?", "ask:why"),
    ]
    with pytest.raises(LookupError):
        await fake.create_component_interaction(message, "ask:nothing", user_id=USER_ID)

    why = await fake.create_component_interaction(message, "ask:why", user_id=USER_ID, guild_id=GUILD_ID, locale="ru")
    assert (why["type"], why["data"]) == (3, {"custom_id": "ask:why", "component_type": 2})
    assert why["message"]["id"] == message["id"] and why["message"]["components"] == message["components"]
    answer, *_ = await fake.wait_for_call(f"POST /interactions/{why['id']}/*")
    assert answer.status == 200 and answer.json["type"] == 4
    assert answer.json["data"]["content"] == "because (ru)" and answer.json["data"]["flags"] & FLAG_EPHEMERAL

    go = await fake.create_component_interaction(message, "ask:go", user_id=USER_ID + 1, guild_id=GUILD_ID)
    pressed, *_ = await fake.wait_for_call(f"POST /interactions/{go['id']}/*")
    assert (pressed.status, pressed.json["type"]) == (200, 7)
    state = fake.interaction_state(go["id"])
    assert state.original is not None and state.original["id"] == message["id"]  # the button's message
    assert state.original_content == f"going, says {USER_ID + 1}" and state.original["components"] == []
    with pytest.raises(LookupError):  # the buttons are gone from the message now
        await fake.create_component_interaction(message, "ask:go", user_id=USER_ID)


async def test_late_callback_and_double_ack(fake: FakeDiscord, bot: DetectClient) -> None:
    attachment = fake.add_attachment(PNG, "late.png", "image/png")
    await fake.create_slash_interaction(
        "detect", user_id=USER_ID, channel_id=CHANNEL_ID, attachments=[attachment], created_at=time.time() - 5
    )
    late = await asyncio.wait_for(bot.failures.get(), timeout=10)
    assert isinstance(late, discord.NotFound) and late.code == 10062

    interaction = await fake.create_slash_interaction(
        "detect", user_id=USER_ID, channel_id=CHANNEL_ID, guild_id=GUILD_ID, attachments=[attachment]
    )
    await fake.wait_for_call("POST /webhooks/*")
    await fake.redispatch(interaction)  # Discord may deliver the same INTERACTION_CREATE twice
    twice = await asyncio.wait_for(bot.failures.get(), timeout=10)
    assert (twice.status, twice.code) == (400, 40060)
    assert [c["type"] for c in fake.interaction_state(interaction["id"]).callbacks] == [5]


async def test_resume_replays_events_missed_while_disconnected(fake: FakeDiscord, bot: DetectClient) -> None:
    await fake.wait_until_identified()
    await fake.drop_connections()
    assert fake.live_sessions == 0  # so the interaction below can only arrive by RESUME's replay
    attachment = fake.add_attachment(PNG, "dm.png", "image/png")
    interaction = await fake.create_slash_interaction(
        "detect", user_id=USER_ID, channel_id=CHANNEL_ID + 1, attachments=[attachment]
    )

    resume = await fake.wait_until_resumed()
    await fake.wait_for_call("POST /webhooks/*")

    assert resume["token"] == fake.token and resume["seq"] >= 1
    assert bot.ws is not None and resume["session_id"] == bot.ws.session_id
    assert fake.interaction_state(interaction["id"]).original_content == "2 objects in dm.png"
    assert [f.op for f in fake.gateway_frames].count(2) == 1  # resumed, not re-identified


async def test_json_responses_and_errors_look_like_discord(fake: FakeDiscord) -> None:
    auth = {"Authorization": f"Bot {fake.token}"}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{fake.api_base}/users/@me", headers=auth) as me:
            assert me.headers["Content-Type"] == "application/json"
            assert (await me.json())["id"] == str(fake.bot_user_id)
        async with session.get(f"{fake.api_base}/users/@me") as anonymous:
            assert anonymous.headers["Content-Type"] == "application/json"
            assert (anonymous.status, await anonymous.json()) == (401, {"message": "401: Unauthorized", "code": 0})
        async with session.get(f"{fake.api_base}/gateway") as gateway:
            assert gateway.status == 200
        async with session.get(f"{fake.api_base}/no/such/route") as missing:
            assert missing.status == 404
    with pytest.raises(TimeoutError, match=r"calls answered:\n  GET /users/@me -> 200"):
        await fake.wait_for_call("POST /nothing", timeout=0.05)


async def test_point_discord_py_here_restores_globals(fake: FakeDiscord) -> None:
    before = (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY)
    with fake.point_discord_py_here():
        pointed = (Route.BASE, str(DiscordWebSocket.DEFAULT_GATEWAY))
    after = (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY)
    assert pointed == (fake.api_base, fake.gateway_url)
    assert after == before
