"""A Discord bot that died after deferring an interaction finishes it when it starts again (its inbox)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp

from bots.shared.inbox import Inbox
from tests.discord_stack import CHANNEL, FOLLOWUP, GUILD, ORIGINAL, USER, Stack, _content
from tests.images import jpeg


async def test_an_interaction_deferred_before_a_crash_is_answered_after_the_restart(
    start_discord, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    stack: Stack = await start_discord()
    fake = stack.fake
    await stack.bot.stop()  # the bot is gone; Discord still delivers the interaction to nobody
    photo = fake.add_attachment(jpeg(400, 300), "late.jpg", "image/jpeg")
    interaction = await fake.create_slash_interaction(
        "detect", user_id=USER, channel_id=CHANNEL, guild_id=GUILD, attachments=[photo]
    )
    # what the bot that died did before it died: defer, and write the request to its inbox
    url = f"{fake.api_base}/interactions/{interaction['id']}/{interaction['token']}/callback"
    async with http.post(url, json={"type": 5}) as response:
        assert response.status in (200, 204)
    Inbox(tmp_path / "discord-bot" / "discord-inbox", max_age_s=600).put(
        interaction["id"],
        {
            "interaction_id": interaction["id"],
            "application_id": str(fake.application_id),
            "token": interaction["token"],
            "created_at": time.time(),
            "channel_id": str(CHANNEL),
            "user_id": str(USER),
            "language": "en-US",
            "attachments": [{"url": photo["url"], "filename": "late.jpg", "size": photo["size"]}],
            "target": None,
        },
    )
    restarted: Stack = await start_discord()  # the same data dir: it finds the inbox
    followup, *_ = await fake.wait_for_call(FOLLOWUP, timeout=30)
    assert _content(followup) == "1 bus, 1 person"
    await restarted.status("Done in ")
    assert await restarted.job_count() == 1
    assert not list((tmp_path / "discord-bot" / "discord-inbox").glob("*.json"))  # handed over: gone
    edits = [json.dumps(c.json) for c in fake.calls_matching(ORIGINAL)]
    assert any("queuing" in e for e in edits)


async def test_the_request_is_in_the_inbox_before_discord_hears_the_defer(start_discord, tmp_path: Path) -> None:
    """A bot killed while its defer is on the way (or just after) has the request to finish when it restarts."""
    stack: Stack = await start_discord()
    fake = stack.fake
    defer = fake.hold_next("POST /interactions/*")  # Discord took it in; the bot waits for the answer
    photo = fake.add_attachment(jpeg(400, 300), "p.jpg", "image/jpeg")
    interaction = await fake.create_slash_interaction(
        "detect", user_id=USER, channel_id=CHANNEL, guild_id=GUILD, attachments=[photo]
    )
    await asyncio.wait_for(defer.arrived.wait(), 10)
    inbox = tmp_path / "discord-bot" / "discord-inbox"
    kept = [json.loads(path.read_text())["payload"] for path in inbox.glob("*.json")]
    assert [entry["interaction_id"] for entry in kept] == [interaction["id"]]
    assert kept[0]["attachments"][0]["url"] == photo["url"]
    defer.release()
    await stack.delivered()
    assert not list(inbox.glob("*.json"))
