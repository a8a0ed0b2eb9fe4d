"""Discord admin commands end to end: /stats, /dlq with requeue, /forget."""

from __future__ import annotations

import io
import time

from PIL import Image
from pydantic import SecretStr
from sqlalchemy import select

from db.models import Blob
from tests.discord_stack import CHANNEL, FOLLOWUP, GUILD, USER, Stack
from tests.fakes.discord_api import FLAG_EPHEMERAL
from tests.images import jpeg, poison_png
from tests.seed import Seeded, seed_jobs
from tests.services import ADMIN_KEY

ADMIN = 1_190_000_000_000_000_777


async def admin_stack(start_discord, **overrides) -> Stack:
    return await start_discord(admin_ids=[ADMIN], admin_api_key=SecretStr(ADMIN_KEY), **overrides)


async def command(stack: Stack, name: str, *, user: int, options: list[dict] | None = None) -> dict:
    return await stack.fake.create_slash_interaction(
        name, user_id=user, channel_id=CHANNEL, guild_id=GUILD, options=options
    )


async def test_stats_for_an_admin_match_the_seeded_jobs(start_discord) -> None:
    stack = await admin_stack(start_discord, worker=False)
    now = time.time()
    async with stack.gateway.sessions.begin() as session:
        await seed_jobs(
            session,
            [
                *[Seeded("discord", "delivered", now - 600, 1.0, 2.0, 0.5, ("cat",)) for _ in range(3)],
                Seeded("telegram", "failed", now - 900),
            ],
        )
    interaction = await command(stack, "stats", user=ADMIN)
    answer = await stack.fake.wait_for_call(f"POST /webhooks/*/{interaction['token']}*", timeout=30)
    assert answer.json["flags"] & FLAG_EPHEMERAL
    text = answer.json["content"]
    assert "Jobs: 4 received, 3 done (3 delivered), 1 failed, 0 dead" in text
    assert "By platform: discord 3, telegram 1" in text
    assert "Top classes: cat 3" in text
    ((_, filename, png),) = answer.files
    assert filename == "stats.png"
    with Image.open(io.BytesIO(png)) as chart:
        assert chart.format == "PNG"


async def test_admin_commands_from_anyone_else_reveal_nothing(start_discord) -> None:
    stack = await admin_stack(start_discord, worker=False)
    registered = {c["name"]: c for c in stack.fake.commands()}
    assert registered["stats"]["default_member_permissions"] == registered["dlq"]["default_member_permissions"]
    assert registered["stats"]["default_member_permissions"] not in (None, "0")  # hidden from ordinary members
    for name in ("stats", "dlq"):
        interaction = await command(stack, name, user=USER)
        callback = await stack.fake.wait_for_call(f"POST /interactions/{interaction['id']}/*")
        assert callback.json["type"] == 4
        assert callback.json["data"]["content"] == "Unknown command. Send a photo, or /help."
        assert callback.json["data"]["flags"] & FLAG_EPHEMERAL
    assert stack.fake.calls_matching(FOLLOWUP) == []


async def test_dlq_lists_a_poisoned_job_and_requeue_delivers_it(start_discord) -> None:
    stack = await admin_stack(start_discord, worker=False)
    crashing = await stack.start_worker("py:tests.detectors:crash_on_poison")
    poisoned = await stack.slash(stack.fake.add_attachment(poison_png(), "poison.png", "image/png"))
    told = await stack.fake.wait_for_call(f"POST /webhooks/*/{poisoned['token']}*", timeout=60)
    assert "failed several times" in told.json["content"]
    listing = await command(stack, "dlq", user=ADMIN)
    shown = await stack.fake.wait_for_call(f"POST /webhooks/*/{listing['token']}*", timeout=30)
    assert "it stopped the worker 3 times in a row" in shown.json["content"]
    job_prefix = shown.json["content"].split("• ", 1)[1][:8]
    await crashing.stop()
    await stack.start_worker("py:tests.detectors:fixed")
    requeue = await command(stack, "dlq", user=ADMIN, options=[{"name": "requeue", "type": 3, "value": job_prefix}])
    confirmed = await stack.fake.wait_for_call(f"POST /webhooks/*/{requeue['token']}*", timeout=30)
    assert confirmed.json["content"].startswith(f"Requeued job {job_prefix}")
    result = await stack.fake.wait_for_call(
        f"POST /webhooks/*/{poisoned['token']}*", lambda c: bool(c.files), timeout=60
    )
    assert result.json["content"] == "1 bus, 1 person"


async def test_forget_deletes_only_that_persons_photos(start_discord) -> None:
    stack = await admin_stack(start_discord)
    mine = await stack.slash(stack.fake.add_attachment(jpeg(), "a.jpg", "image/jpeg"))
    theirs = await stack.fake.create_slash_interaction(
        "detect",
        user_id=ADMIN,
        channel_id=CHANNEL,
        guild_id=GUILD,
        attachments=[stack.fake.add_attachment(jpeg(), "b.jpg", "image/jpeg")],
    )
    for interaction in (mine, theirs):
        await stack.fake.wait_for_call(f"POST /webhooks/*/{interaction['token']}*", lambda c: bool(c.files), timeout=60)
    forget = await command(stack, "forget", user=USER)
    answer = await stack.fake.wait_for_call(f"POST /webhooks/*/{forget['token']}*", timeout=30)
    assert answer.json["content"] == "Deleted 1 of your photos and results."
    async with stack.gateway.sessions() as session:
        left = {blob.job_id for blob in (await session.execute(select(Blob))).scalars()}
    assert len(left) == 1
