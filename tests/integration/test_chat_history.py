"""/history and its one-tap re-runs, on Telegram and on Discord: the person's last photos in this chat, each with
re-runs; a lower confidence runs the stored photo again as a new job (no upload) and finds at least as much; the
re-run says it is one; only the sender may re-run."""

from __future__ import annotations

from sqlalchemy import func, select

from db.models import Blob, Job
from queue_gateway.public import texts
from tests.chat import ChatDriver, StartChat, matches
from tests.images import jpeg

CROWD = "py:tests.detectors:crowd"  # one person per 100 px of width, with confidences down to 0.25; a car, a dog


async def test_history_lists_three_photos_and_a_lower_confidence_finds_at_least_as_much(start_chat: StartChat) -> None:
    chat: ChatDriver = await start_chat()
    await chat.start_worker(CROWD)
    person = chat.person(1, language="ru")
    await chat.settings(person, conf=0.6, classes="all")  # their photos run at 0.6
    sent = [await chat.send_photo(person, jpeg(width, 300)) for width in (500, 600, 700)]
    firsts = [await chat.result(one) for one in sent]
    listing = await chat.command(person, "history")
    lines = listing.text.splitlines()
    assert lines[0] == texts.ntext("history_header", 3, "ru") and len(lines) == 4, lines
    assert all(matches("history_line", "ru", number=n)(line) for n, line in enumerate(lines[1:], start=1)), lines
    lower = [data for _, data in listing.buttons if data.startswith("rerun:lower:")]
    assert len(lower) == 3 and len([d for _, d in listing.buttons if d.startswith("rerun:")]) == 12

    async with chat.gateway.sessions() as session:
        blobs_before = await session.scalar(select(func.count()).select_from(Blob).where(Blob.kind == "input"))
    status, again = await chat.rerun(person, listing, lower[0])  # #1: the newest photo (700 px wide)
    assert status.text.startswith(texts.text("rerun_status", "ru", mode=texts.text("rerun_lower", "ru"))), status
    assert again is not None and again.image is not None
    mode = texts.text("rerun_lower", "ru")
    assert again.caption.startswith(texts.text("rerun_caption", "ru", mode=mode, caption="")), again.caption
    before = firsts[-1].caption
    assert _persons(again.caption) > _persons(before), (again.caption, before)  # at least as many: here, more

    async with chat.gateway.sessions() as session:
        rerun = (await session.scalars(select(Job).where(Job.rerun_of.is_not(None)))).one()
        blobs_after = await session.scalar(select(func.count()).select_from(Blob).where(Blob.kind == "input"))
    assert rerun.rerun_mode == "lower" and rerun.params["conf"] == 0.3  # half of 0.6
    assert blobs_after == blobs_before + 1  # its own copy of the stored photo: nothing was uploaded again


async def test_only_the_sender_runs_their_photo_again(start_chat: StartChat) -> None:
    chat: ChatDriver = await start_chat()
    await chat.start_worker(CROWD)
    owner, stranger = chat.member(1, 4), chat.member(2, 4)
    sent = await chat.send_photo(owner, jpeg(400, 300))
    await chat.result(sent)
    listing = await chat.command(owner, "history")
    assert listing.buttons
    if chat.platform == "telegram":  # a Discord /history is shown to its asker only: nobody else can press it
        refused, result = await chat.rerun(stranger, listing, listing.buttons[0][1])
        assert refused.text == texts.text("rerun_not_yours") and result is None
    theirs = await chat.command(stranger, "history")
    assert theirs.text == texts.text("history_empty") and not theirs.buttons


def _persons(caption: str) -> int:
    """How many persons a Russian caption counts ("…: 5 человек, 1 машина")."""
    for part in caption.split(": ", 1)[-1].split(", "):
        count, _, label = part.partition(" ")
        if label.startswith("челов"):
            return int(count)
    return 0
