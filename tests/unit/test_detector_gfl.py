"""Decoding a GFL head (NanoDet): cell centres, the distance distributions' expectation, class-aware NMS."""

from __future__ import annotations

import numpy as np

from worker.onnx_detector import decode_gfl, gfl_priors

PRIORS = gfl_priors((416, 416), (8, 16, 32))
BINS = 11


def outputs() -> tuple[np.ndarray, np.ndarray]:
    """No class anywhere; every edge's distribution sure of bin 0."""
    scores = np.zeros((len(PRIORS), 80), np.float32)
    distributions = np.full((len(PRIORS), 4 * BINS), -50.0, np.float32)
    distributions[:, ::BINS] = 50.0
    return scores, distributions


def sure_of(distributions: np.ndarray, cell: int, bins: tuple[int, int, int, int]) -> None:
    """Make ``cell``'s left, top, right and bottom distributions certain of these bins."""
    distributions[cell] = -50.0
    for edge, b in enumerate(bins):
        distributions[cell, edge * BINS + b] = 50.0


def test_cell_centres_stride_by_stride_row_major() -> None:
    assert PRIORS.shape == (52 * 52 + 26 * 26 + 13 * 13, 3)
    assert PRIORS[0].tolist() == [4.0, 4.0, 8.0]
    assert PRIORS[1].tolist() == [12.0, 4.0, 8.0]
    assert PRIORS[52].tolist() == [4.0, 12.0, 8.0]
    assert PRIORS[52 * 52].tolist() == [8.0, 8.0, 16.0]
    assert PRIORS[-1].tolist() == [400.0, 400.0, 32.0]


def test_a_sure_distribution_is_a_box_in_strides_around_the_cell_centre() -> None:
    scores, distributions = outputs()
    cell = 52 * 52 + 26 * 5 + 7  # stride 16, row 5, column 7: centre (120, 88)
    scores[cell, 5] = 0.9
    sure_of(distributions, cell, (2, 3, 4, 5))
    boxes, confs, classes = decode_gfl(scores, distributions, PRIORS, conf=0.35, iou=0.45, max_det=300)
    assert classes.tolist() == [5]
    assert np.allclose(confs, [0.9])
    assert np.allclose(boxes, [[120 - 32, 88 - 48, 120 + 64, 88 + 80]], atol=1e-3)


def test_the_distance_is_the_expectation_over_the_bins() -> None:
    scores, distributions = outputs()
    scores[0, 0] = 0.5
    distributions[0] = -50.0
    for edge in range(4):  # half on bin 1, half on bin 3: 2 strides
        distributions[0, edge * BINS + 1] = distributions[0, edge * BINS + 3] = 10.0
    boxes, _, _ = decode_gfl(scores, distributions, PRIORS, conf=0.35, iou=0.45, max_det=300)
    assert np.allclose(boxes, [[4 - 16, 4 - 16, 4 + 16, 4 + 16]], atol=1e-3)


def test_each_cell_keeps_its_best_class_and_nms_is_per_class() -> None:
    scores, distributions = outputs()
    for cell, cls, score in ((100, 0, 0.8), (101, 0, 0.7), (102, 2, 0.6), (103, 0, 0.3)):
        scores[cell, cls] = score
        scores[cell, 7] = score / 2  # a weaker second class never shows
        sure_of(distributions, cell, (4, 4, 4, 4))  # 64 x 64 boxes 8 px apart: IoU 0.78
    _, confs, classes = decode_gfl(scores, distributions, PRIORS, conf=0.35, iou=0.45, max_det=300)
    assert classes.tolist() == [0, 2]  # the second person suppressed, the car kept, 0.3 under the threshold
    assert np.allclose(confs, [0.8, 0.6])
    assert len(decode_gfl(scores, distributions, PRIORS, conf=0.35, iou=0.45, max_det=1)[0]) == 1
