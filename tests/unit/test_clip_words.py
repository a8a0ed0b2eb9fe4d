"""What a person reads about a clip, in both languages: its caption, its progress, why one was refused (with the
limit and what the clip is), and why one failed; and the gateway's answer to a clip it will not take."""

from __future__ import annotations

import pytest

from db.models import Job, JobStatus
from queue_gateway import words
from queue_gateway.errors import BadImage
from queue_gateway.images import check_upload, clip_refusal
from queue_gateway.public import texts
from queue_gateway.public.clips import ClipLimits, ClipProblem
from queue_gateway.public.contract import ErrorCode
from tests.chat import english_words
from tests.clips import gif, numbered, video

MiB = 1024 * 1024


def clip_job(status: JobStatus, **values: object) -> Job:
    return Job(id="c", status=status, platform="telegram", received_at=100.0, media="clip", **values)


def test_a_clips_caption_is_the_most_seen_at_once_and_its_length() -> None:
    done = clip_job(JobStatus.DONE, detections=[], clip={"duration_s": 3.0, "most": {"dog": 1, "person": 3}})
    assert words.caption(done, None) == "up to 3 persons, 1 dog · 3.0 s"
    assert words.caption(done, "ru") == "максимум 3 человека, 1 собака · 3.0 с"
    assert words.found_labels(done) == {"dog": 1, "person": 3}
    nothing = clip_job(JobStatus.DONE, detections=[], clip={"duration_s": 2.5, "most": {}})
    assert words.caption(nothing, None) == "No objects found · 2.5 s"
    assert words.found_labels(nothing) == {}
    again = clip_job(JobStatus.DONE, detections=[], clip={"duration_s": 3.0, "most": {"dog": 2}}, rerun_mode="lower")
    assert words.caption(again, None) == "Again, with a lower confidence: up to 2 dogs · 3.0 s"


def test_a_clip_in_a_workers_hands_says_which_frame() -> None:
    working = clip_job(JobStatus.PROCESSING, progress_done=40, progress_total=120)
    assert words.job_status(working, 0, 0.0, None) == "Working on it — frame 40 of 120"
    assert words.job_status(working, 0, 0.0, "ru") == "Обрабатываю — кадр 40 из 120"
    not_yet = clip_job(JobStatus.PROCESSING)
    assert words.job_status(not_yet, 0, 0.0, None) == texts.text("processing")


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_each_refusal_names_its_limit_and_what_the_clip_is(lang: str) -> None:
    cases = {
        ("clip_too_long", 60, 90.4): {"en": "That clip is 90 s long; the limit is 60 s.",
                                       "ru": "Это видео длится 90 с, а можно не больше 60 с."},
        ("clip_too_large", 20 * MiB, 25.3 * MiB): {"en": "That clip is 25.3 MB; the limit is 20 MB.",
                                                    "ru": "Это видео весит 25.3 МБ, а можно не больше 20 МБ."},
        ("clip_too_many_pixels", 1920 * 1080, 3840 * 2160): {
            "en": "That clip's frames are 8.3 megapixels; the limit is 2.1 megapixels.",
            "ru": "Кадры этого видео — 8.3 мегапикселя, а можно не больше 2.1 мегапикселя."},
        ("clip_too_long", 60, None): {"en": "That clip is longer than the limit of 60 s. Please send a shorter one.",
                                      "ru": "Это видео длиннее 60 с, а длиннее нельзя. Пришлите покороче."},
    }  # fmt: skip
    for (code, limit, value), said in cases.items():
        assert texts.for_error(code, lang, limit=limit, value=value) == said[lang]
    for code in ErrorCode:  # every clip code has a sentence, with or without its numbers
        if code.startswith("clip_"):
            for limit, value in ((60, 90.0), (None, None)):
                sentence = texts.for_error(code, lang, limit=limit, value=value)
                assert sentence.endswith(".") and "{" not in sentence
                assert lang == "en" or english_words(sentence) == []


def test_a_clip_over_a_limit_is_refused_with_its_status_code_limit_and_value() -> None:
    limits = ClipLimits(max_bytes=20 * MiB, max_duration_s=60, max_pixels=1920 * 1080)
    with pytest.raises(BadImage) as caught:
        check_upload(gif(numbered(2), durations_ms=[45_000, 45_000]), max_bytes=MiB, max_pixels=10**6,
                     clip_limits=limits)  # fmt: skip
    error = caught.value
    assert (error.code, error.http_status, error.limit, error.value) == ("clip_too_long", 422, 60, 90.0)
    assert str(error) == "That clip is 90 s long; the limit is 60 s."
    body = error.body("ru")
    assert (body.text, body.limit, body.value) == ("Это видео длится 90 с, а можно не больше 60 с.", 60, 90.0)
    refused = clip_refusal(ClipProblem(ErrorCode.CLIP_UNSUPPORTED, "a MOV clip in prores, not h264"))
    assert (refused.http_status, refused.limit) == (415, None)


def test_a_clip_we_take_is_described_for_the_job_row() -> None:
    info = check_upload(video(numbered(20, size=(320, 240)), fps=10), max_bytes=MiB, max_pixels=10**6,
                        clip_limits=ClipLimits())  # fmt: skip
    assert (info.media, info.format, info.content_type, info.width, info.height) == (
        "clip", "MP4", "video/mp4", 320, 240
    )  # fmt: skip
    assert info.clip == {"duration_s": pytest.approx(2.0, abs=0.01), "source_frames": 20, "container": "mp4",
                         "codec": "h264"}  # fmt: skip


def test_a_clip_that_failed_says_why_in_its_own_sentence() -> None:
    slow = clip_job(JobStatus.FAILED, error_code="clip_too_slow", error="not done in time")
    assert words.failure(slow, "ru") == texts.text("clip_too_slow", "ru")
    long = clip_job(JobStatus.FAILED, error_code="clip_too_long", clip={"refused": {"limit": 60.0}})
    assert words.failure(long, None) == "That clip is longer than the limit of 60 s. Please send a shorter one."
    crashed = clip_job(JobStatus.DEAD, error_code="worker_crash", error="x")
    assert words.failure(crashed, None) == texts.text("dead_clip", reason=texts.text("reason_crashed"))
    broken = clip_job(JobStatus.FAILED, error_code="model_error", error="the detector could not process it")
    assert words.failure(broken, "ru").startswith("Увы, не удалось обработать это видео:")
