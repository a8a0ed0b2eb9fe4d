"""Clips with the real PyAV: what probe takes and refuses, which frames are sampled, the animation that comes back,
the summary, and a whole clip through a detector of ours within its deadline."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

from queue_gateway.public.clipprobe import probe
from queue_gateway.public.clips import ClipLimits, ClipOptions, ClipProblem
from tests.clips import (
    decoded,
    dense_mp4,
    gif,
    gif_screen,
    header_claims,
    index_of,
    numbered,
    stretched,
    top_level_boxes,
    video,
    zero_delay_gif,
)
from tests.detectors import Fixed, Napping
from worker.clips.encode import GIF, MP4, encode_animation
from worker.clips.frames import plan_samples, sample_frames
from worker.clips.pipeline import run_clip, summarise
from worker.detections import Detection
from worker.errors import BadClip, ClipTooSlow


def refused(data: bytes, limits: ClipLimits | None = None) -> tuple[str, float | None, float]:
    """(code, limit, seconds) of probe's refusal; fails when probe takes the clip."""
    started = time.perf_counter()
    with pytest.raises(ClipProblem) as caught:
        probe(data, limits)
    return caught.value.code, caught.value.limit, time.perf_counter() - started


# --- probe ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "container", "codec"),
    [
        (lambda f: gif(f, fps=10), "gif", "gif"),
        (lambda f: video(f, fps=10), "mp4", "h264"),
        (lambda f: video(f, fps=10, container="mov"), "mov", "h264"),
        (lambda f: video(f, fps=10, codec="libvpx", container="webm"), "webm", "vp8"),
        (lambda f: video(f, fps=10, codec="libvpx-vp9", container="webm"), "webm", "vp9"),
    ],
)
def test_probe_reads_each_clip_we_take(make, container: str, codec: str) -> None:
    info = probe(make(numbered(30)))
    assert (info.container, info.codec, info.width, info.height) == (container, codec, 160, 120)
    assert info.frames == 30
    assert info.duration_s == pytest.approx(3.0, abs=0.01)
    assert info.fps == pytest.approx(10.0, abs=0.05)


def test_a_90_s_clip_is_refused_at_once_with_the_limit() -> None:
    gif_90s = gif(numbered(2), durations_ms=[45_000, 45_000])
    mp4_90s = video(numbered(90, size=(64, 48)), fps=1)
    for data in (gif_90s, mp4_90s):
        code, limit, seconds = refused(data)
        assert (code, limit) == ("clip_too_long", 60.0)
        assert seconds < 0.5
        with pytest.raises(ClipProblem) as caught:
            probe(data)
        assert caught.value.value == pytest.approx(90.0)  # what the person's sentence names: "That clip is 90 s"


def test_what_is_too_large_or_not_a_clip_is_refused_before_ffmpeg_reads_it() -> None:
    assert refused(b"GIF89a" + bytes(20 * 1024 * 1024 + 1))[:2] == ("clip_too_large", 20 * 1024 * 1024)
    assert refused(video(numbered(3), fps=10), ClipLimits(max_bytes=100))[:2] == ("clip_too_large", 100)
    assert refused(b"")[0] == "empty"
    png = b"\x89PNG\r\n\x1a\n" + bytes(64)
    assert refused(png)[0] == "clip_unsupported"
    assert refused(b"\0\0\0\x20ftypisom" + bytes(range(256)) * 40)[0] == "clip_corrupt"


def test_other_codecs_are_refused_by_name() -> None:
    hevc = video(numbered(3, size=(64, 48)), codec="libx265", **{"x265-params": "log-level=none"})
    h264_in_matroska = video(numbered(3, size=(64, 48)), container="matroska")
    assert refused(hevc)[0] == "clip_unsupported"
    assert refused(h264_in_matroska)[0] == "clip_unsupported"


def test_too_many_pixels_is_refused_from_the_headers() -> None:
    four_k = video([np.zeros((2160, 3840, 3), np.uint8)] * 2, fps=10)
    assert refused(four_k)[:2] == ("clip_too_many_pixels", 1920 * 1080)
    assert probe(video([np.zeros((1920, 1080, 3), np.uint8)], fps=10)).height == 1920  # portrait 1080p fits
    for side in (65_535, 16_000):  # FFmpeg would allocate 1 GB a frame for 16000x16000
        code, _, seconds = refused(gif_screen(side, side))
        assert code == "clip_too_many_pixels" and seconds < 0.1


def test_lying_clips_are_judged_by_their_packets() -> None:
    three_s = video(numbered(30), fps=10)
    assert refused(dense_mp4(10_000, seconds=1.0))[:2] == ("clip_too_many_frames", 3_600)
    assert refused(zero_delay_gif(5_000))[:2] == ("clip_too_long", 60.0)  # 0.1 s each, as players show them
    assert refused(stretched(three_s, seconds_per_frame=1_200))[:2] == ("clip_too_long", 60.0)  # 10 h timeline
    info = probe(header_claims(three_s, seconds=36_000))  # headers say 10 h: the 30 frames span 3 s
    assert (info.frames, info.duration_s) == (30, pytest.approx(3.0, abs=0.01))


def test_truncated_mp4s_are_corrupt() -> None:
    frames = [np.ascontiguousarray(f) for f in numbered(30)]
    for i, frame in enumerate(frames):  # a band of noise: every frame has data of its own in the file
        frame[:30] = np.random.default_rng(i).integers(0, 255, (30, 160, 3), dtype=np.uint8)
    index_last = video(frames, fps=10)
    index_first, _ = encode_animation(frames, fps=10, prefer="mp4")
    assert top_level_boxes(index_last)[-1] == "moov" and top_level_boxes(index_first)[1] == "moov"
    for data in (index_last, index_first):
        for share in (0.5, 0.9):
            assert refused(data[: int(len(data) * share)])[0] == "clip_corrupt"


# --- sampling ------------------------------------------------------------------------------------------


def sampled(
    data: bytes, *, max_frames: int = 120, max_fps: float = 10, work_side: int = 640
) -> list[tuple[float, int, np.ndarray]]:
    """(t, the index the frame carries, the frame) for every sample."""
    frames = sample_frames(data, max_frames=max_frames, max_fps=max_fps, deadline_s=30, work_side=work_side)
    return [(round(t, 3), index_of(image), image) for t, image in frames]


@pytest.mark.parametrize("kind", ["gif", "mp4"])
def test_every_frame_of_a_short_clip_is_sampled_in_order(kind: str) -> None:
    data = gif(numbered(30), fps=10) if kind == "gif" else video(numbered(30), fps=10)
    found = sampled(data)
    assert [t for t, _, _ in found] == [round(i * 0.1, 3) for i in range(30)]
    assert [i for _, i, _ in found] == list(range(30))
    assert {image.shape for _, _, image in found} == {(120, 160, 3)}


def test_samples_are_capped_per_clip_and_per_second_and_spread_evenly() -> None:
    data = gif(numbered(30), fps=10)
    per_clip = sampled(data, max_frames=7)
    assert [t for t, _, _ in per_clip] == pytest.approx([i * 3 / 7 for i in range(7)], abs=0.001)
    assert [i for _, i, _ in per_clip] == [int(i * 30 / 7 + 1e-6) for i in range(7)]
    per_second = sampled(data, max_fps=4)
    assert len(per_second) == 12
    assert [i for _, i, _ in per_second] == [int(k * 2.5) for k in range(12)]


def test_a_slow_clip_is_sampled_no_more_often_than_its_frames_change() -> None:
    data = video(numbered(15), fps=5)
    found = sampled(data, max_fps=10)
    assert [i for _, i, _ in found] == list(range(15))
    assert plan_samples(probe(data), max_frames=120, max_fps=10).fps == pytest.approx(5.0)


def test_a_frame_on_screen_for_several_sample_times_is_the_same_array() -> None:
    data = gif(numbered(21), durations_ms=[1000] + [50] * 20)  # 1 s of the first frame, then 20 a second
    found = sampled(data, max_fps=10, max_frames=120)
    assert [i for _, i, _ in found] == [0] * 10 + list(range(1, 21, 2))
    assert all(found[k][2] is found[0][2] for k in range(10))
    assert found[10][2] is not found[0][2]


def test_frames_are_shrunk_to_the_working_size() -> None:
    data = video(numbered(3, size=(1280, 720)), fps=10)
    [(_, _, image), *_] = sampled(data)
    assert image.shape == (360, 640, 3)
    [(_, _, small), *_] = sampled(data, work_side=320)
    assert small.shape == (180, 320, 3)


def test_transparent_gif_pixels_become_white() -> None:
    pictures = []
    for frame in numbered(2):
        picture = Image.fromarray(frame).convert("RGBA")
        picture.paste((0, 0, 0, 0), (0, 0, 40, 40))
        pictures.append(picture)
    buffer = io.BytesIO()
    pictures[0].save(buffer, "GIF", save_all=True, append_images=pictures[1:], duration=100, disposal=2)
    [(_, _, first), *_] = sampled(buffer.getvalue())
    assert first[:40, :40].min() >= 250
    assert index_of(first) == 0


def test_the_deadline_stops_sampling_and_counts_the_callers_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DETECTBOT_TEST_NAP_S", "0.05")
    model = Napping()  # a model at work for 0.05 s a frame
    frames = sample_frames(video(numbered(30, size=(160, 120)), fps=10), max_frames=120, max_fps=10, deadline_s=0.2)
    seen = 0
    started = time.monotonic()
    with pytest.raises(ClipTooSlow) as caught:
        for _, image in frames:
            model.predict(image)
            seen += 1
    assert caught.value.code == "clip_too_slow"
    assert 2 <= seen <= 6 and time.monotonic() - started < 0.5


# --- encoding ------------------------------------------------------------------------------------------


def test_mp4_is_h264_yuv420p_even_sided_with_its_index_first() -> None:
    frames = [np.ascontiguousarray(np.pad(f, ((0, 1), (0, 1), (0, 0)), mode="edge")) for f in numbered(30)]
    data, content_type = encode_animation(frames, fps=10, prefer="mp4")
    assert content_type == MP4
    boxes = top_level_boxes(data)
    assert boxes.index("moov") < boxes.index("mdat")
    back, about = decoded(data)
    assert (about["codec"], about["pix_fmt"]) == ("h264", "yuv420p")
    assert len(back) == 30 and back[0].shape == (120, 160, 3)  # 161x121 cropped to even sides
    assert about["duration_s"] == pytest.approx(3.0, abs=0.05)
    assert [index_of(f) for f in back] == list(range(30))


def test_gif_comes_back_frame_for_frame() -> None:
    data, content_type = encode_animation(numbered(30), fps=10, prefer="gif")
    assert content_type == GIF and data[:6] == b"GIF89a"
    back, about = decoded(data)
    assert len(back) == 30 and back[0].shape == (120, 160, 3)
    assert about["duration_s"] == pytest.approx(3.0, abs=0.05)
    assert [index_of(f) for f in back] == list(range(30))


def test_smallest_picks_the_smaller_of_gif_and_mp4() -> None:
    noisy = [np.random.default_rng(i).integers(0, 255, (120, 160, 3), dtype=np.uint8) for i in range(10)]
    flat = numbered(10)
    for frames in (noisy, flat):
        mp4, _ = encode_animation(frames, fps=10, prefer="mp4")
        gif_data, _ = encode_animation(frames, fps=10, prefer="gif")
        data, content_type = encode_animation(frames, fps=10, prefer="smallest")
        assert content_type == (MP4 if len(mp4) < len(gif_data) else GIF)
        assert len(data) == min(len(mp4), len(gif_data))


def test_an_animation_over_the_cap_is_shrunk_then_refused_after_a_bounded_number_of_tries() -> None:
    frames = [np.random.default_rng(i).integers(0, 255, (240, 320, 3), dtype=np.uint8) for i in range(20)]
    full, _ = encode_animation(frames, fps=10, prefer="gif")
    cap = len(full) // 2
    data, _ = encode_animation(frames, fps=10, prefer="gif", max_bytes=cap)
    back, _ = decoded(data)
    assert len(data) <= cap and back[0].shape[1] < 320
    started = time.perf_counter()
    with pytest.raises(BadClip) as caught:
        encode_animation(frames, fps=10, prefer="smallest", max_bytes=500)
    assert (caught.value.code, caught.value.limit) == ("clip_output_too_large", 500)
    assert time.perf_counter() - started < 5


def test_encoding_after_the_deadline_is_too_slow() -> None:
    with pytest.raises(ClipTooSlow):
        encode_animation(numbered(3), fps=10, prefer="mp4", deadline=time.monotonic() - 1)


# --- the summary and a whole clip ----------------------------------------------------------------------


def _det(label: str) -> Detection:
    return Detection(0, label, 0.9, (0.0, 0.0, 1.0, 1.0))


def test_the_summary_is_the_most_of_each_label_in_any_one_frame() -> None:
    frames = [
        [_det("person"), _det("person"), _det("dog")],
        [_det("person"), _det("person"), _det("person")],
        [],
        [_det("dog"), _det("car")],
    ]
    assert summarise(frames) == {"person": 3, "car": 1, "dog": 1}
    assert list(summarise(frames)) == ["person", "car", "dog"]  # most first, then by name
    assert summarise([]) == {}


def test_a_clip_through_a_detector_gives_an_animation_the_detections_and_progress() -> None:
    data = video(numbered(30, size=(320, 240)), fps=10)
    progress: list[tuple[int, int]] = []
    result = run_clip(
        Fixed(), data, options=ClipOptions(), deadline_s=30, on_frame=lambda done, total: progress.append((done, total))
    )
    assert progress == [(i, 30) for i in range(31)]
    assert result.summary == {"bus": 1, "person": 1}
    assert result.info.duration_s == pytest.approx(3.0, abs=0.01)
    assert [f.t for f in result.frames] == [round(i * 0.1, 3) for i in range(30)]
    assert result.frames[0].detections[0].box == pytest.approx((32.0, 24.0, 128.0, 216.0))  # the clip's pixels
    back, _ = decoded(result.animation)
    assert result.content_type == MP4 and len(back) == 30 and back[0].shape == (240, 320, 3)
    assert set(result.timings_ms) >= {"probe", "decode", "detect", "draw", "encode", "total"}


def test_a_clip_that_cannot_be_done_in_time_stops_with_too_slow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DETECTBOT_TEST_NAP_S", "0.1")
    data = video(numbered(30, size=(320, 240)), fps=10)  # 30 frames x 0.1 s: 3 s of model time
    started = time.monotonic()
    with pytest.raises(ClipTooSlow):
        run_clip(Napping(), data, options=ClipOptions(), deadline_s=1.0)
    assert time.monotonic() - started < 1.2
