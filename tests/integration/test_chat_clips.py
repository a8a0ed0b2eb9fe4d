"""GIFs and short clips in the chats, on both platforms over their wire fakes, with the real gateway, bot and worker:
a GIF of the sample photo panning comes back as an annotated animation whose caption counts the persons seen at
once, the status message follows the worker frame by frame, and a clip over the limit is refused at once with the
limit in the sentence. Telegram also takes videos and video notes, and answers an album of clips clip by clip."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from detectbot.samples import sample_photos
from queue_gateway.public import texts
from tests.chat import StartChat, english_words, matches
from tests.clips import decoded, gif, numbered, panning, video
from tests.conftest import eventually
from tests.conftest_models import cache_dir
from tests.detectors import OFFLINE_MODEL_ENV

SLOW_OFFLINE = "py:tests.detectors:slow_offline"


@pytest.fixture(scope="module")
def bus_panning() -> bytes:
    """A 3 s, 10 fps GIF of bus.jpg panning left to right (made here with Pillow): two persons stay in view."""
    bus = next(path for path in sample_photos(cache_dir()) if path.name == "bus.jpg")
    return gif(panning(bus, seconds=3.0, fps=10), fps=10)


@pytest.mark.slow
async def test_a_gif_comes_back_annotated_with_the_persons_counted_and_its_frames_shown(
    start_chat: StartChat, nanodet_model_path: Path, bus_panning: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(OFFLINE_MODEL_ENV, str(nanodet_model_path))  # the default offline model, napping a while
    monkeypatch.setenv("DETECTBOT_TEST_NAP_S", "0.2")  # a frame: 0.2 s, so the chat sees the worker's progress
    chat = await start_chat()
    await chat.start_worker(SLOW_OFFLINE)
    person = chat.person(1, language="ru")
    sent = await chat.send_clip(person, bus_panning, seconds=3.0, filename="bus.gif", mime_type="image/gif")
    result = await chat.result(sent, timeout=60)

    assert result.image is not None
    frames, about = decoded(result.image)
    assert len(frames) >= 10 and about["duration_s"] > 2.5  # every sampled frame, at the clip's pace
    assert frames[0].shape[:2] == (360, 480)  # a chat shows it small: the long side is 480
    found = re.fullmatch(r"максимум (\d+) человека?(, .+)? · 3\.0 с", result.caption)
    assert found is not None and int(found.group(1)) >= 2, result.caption  # two persons stay in view all the way
    assert english_words(result.caption) == []

    # the status edit goes out beside the result, so it may land a moment after it
    await chat.wait_status(sent, matches("done_in", "ru"), what="done, in Russian")
    shown = [s.text for s in chat.history(sent)]
    working = [text for text in shown if matches("processing_clip", "ru")(text)]
    assert working, shown  # "Обрабатываю — кадр 12 из 30"
    counts = [int(n) for n in re.findall(r"кадр (\d+) из 30", " ".join(working))]
    assert counts == sorted(counts) and all(0 < n <= 30 for n in counts)
    assert matches("done_in", "ru")(shown[-1])
    assert chat.result_buttons(sent) == []  # no "Objects" under a clip: its objects are not cut out
    [job] = await chat.jobs()
    arrived_as = "MP4" if chat.platform == "telegram" else "GIF"  # Telegram hands a bot a GIF as an MP4
    assert (job.media, job.image_format, job.clip["frames"]) == ("clip", arrived_as, 30)


async def test_a_90_s_clip_is_refused_at_once_with_the_limit(start_chat: StartChat) -> None:
    chat = await start_chat()
    person = chat.person(2)
    long = gif(numbered(2), durations_ms=[45_000, 45_000])
    sent = await chat.send_clip(person, long, seconds=90, filename="long.gif", mime_type="image/gif")
    assert await chat.reply(sent) == "That clip is 90 s long; the limit is 60 s."
    assert await chat.jobs() == [] and await chat.blobs() == 0  # nothing kept
    russian = chat.person(3, language="ru")
    sent = await chat.send_clip(russian, long, seconds=90, filename="long.gif", mime_type="image/gif")
    assert await chat.reply(sent) == "Это видео длится 90 с, а можно не больше 60 с."


@pytest.mark.parametrize("start_chat", ["telegram"], indirect=True)
async def test_telegram_takes_videos_and_video_notes_and_answers_an_album_of_clips_clip_by_clip(
    start_chat: StartChat,
) -> None:
    chat = await start_chat()
    await chat.start_worker(prefetch=2)
    fake = chat.fake  # type: ignore[attr-defined]
    person = chat.person(4)
    clip = video(numbered(20, size=(320, 240)), fps=10)
    sent = await chat.send_clip(person, clip, seconds=2.0, filename="v.mp4", mime_type="video/mp4")
    result = await chat.result(sent)
    assert result.caption == "up to 1 bus, 1 person · 2.0 s" and len(decoded(result.image or b"")[0]) == 20

    fake.send_video_note_update(person.chat, data=video(numbered(10, size=(240, 240)), fps=10), duration=1,
                                user_id=person.user)  # fmt: skip
    [note] = await fake.recorder.wait_for(
        lambda c: c.ok and c.method == "sendAnimation" and c.params.get("caption") == "up to 1 bus, 1 person · 1.0 s",
        count=1, timeout=30, what="the video note's animation",
    )  # fmt: skip
    assert len(decoded(note.files["animation"])[0]) == 10

    before = len(fake.calls_of("sendAnimation"))
    for n in range(2):
        fake.send_video_update(person.chat, data=video(numbered(10 + 5 * n, size=(160, 120)), fps=10), duration=1,
                               user_id=person.user, media_group_id="clips-1")  # fmt: skip
    await eventually(lambda: _holds(len(fake.calls_of("sendAnimation")) == before + 2), timeout=30,
                     what="each clip of the album answered on its own")  # fmt: skip
    answered = fake.calls_of("sendAnimation")[before:]
    assert sorted(len(decoded(c.files["animation"])[0]) for c in answered) == [10, 15]
    assert fake.calls_of("sendMediaGroup") == []
    status = next(c for c in fake.calls_of("sendMessage") if texts.text("received") not in str(c.params["text"])
                  and "2" in str(c.params["text"]) and c.at >= answered[0].at - 30)  # fmt: skip
    assert status is not None


async def _holds(value: bool) -> bool:
    return value
