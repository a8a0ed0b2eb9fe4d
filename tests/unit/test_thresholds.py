"""A job's confidence threshold against the model's own: a job that asks for less than the model's threshold gets
what lies between (the detector keeps it for that job alone); one that asks for none is filtered at the model's;
the threshold applied is reported, so that a re-run "with a lower confidence" knows where it started."""

from __future__ import annotations

from tests.detectors import Thresholding
from tests.images import jpeg
from worker.inference import Job, process

PHOTO = jpeg(320, 240)


def labels(conf: float | None, detector: Thresholding) -> tuple[list[str], float | None]:
    found = process(detector, Job(PHOTO, conf=conf), 25_000_000)
    return [d["label"] for d in found.detections], found.conf


def test_no_threshold_of_its_own_is_the_models() -> None:
    assert labels(None, Thresholding()) == (["person", "bus"], 0.35)


def test_a_lower_threshold_finds_more_and_leaves_the_model_as_it_was() -> None:
    detector = Thresholding()
    assert labels(0.1, detector) == (["person", "bus", "dog"], 0.1)
    assert detector.conf == 0.35  # the next job that asks for nothing gets the model's threshold again
    assert labels(None, detector) == (["person", "bus"], 0.35)


def test_a_higher_threshold_filters() -> None:
    assert labels(0.6, Thresholding()) == (["person"], 0.6)
