"""The numpy pre/post-processing of OnnxDetector against ultralytics' and torchvision's own functions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from worker.onnx_detector import OnnxDetector, letterbox, nms, postprocess, read_onnx_metadata, scale_boxes


@pytest.mark.parametrize("shape", [(1080, 810), (720, 1280), (333, 517), (3000, 4000), (5, 900)])
@pytest.mark.parametrize("auto", [True, False])
def test_letterbox_matches_ultralytics(shape: tuple[int, int], auto: bool) -> None:
    from ultralytics.data.augment import LetterBox

    rng = np.random.default_rng(sum(shape))
    image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    theirs: Any = LetterBox((640, 640), auto=auto, stride=32)(image=image)
    ours, gain, pad = letterbox(image, (640, 640), auto=auto, stride=32)
    assert ours.shape == theirs.shape
    assert np.array_equal(ours, theirs)

    import torch
    from ultralytics.utils import ops

    boxes = np.array([[10.0, 20.0, 300.0, 400.0], [0.0, 0.0, ours.shape[1], ours.shape[0]]], dtype=np.float32)
    expected: Any = ops.scale_boxes(ours.shape[:2], torch.from_numpy(boxes.copy()), shape)
    expected = expected.numpy()
    assert np.allclose(scale_boxes(boxes, gain, pad, shape), expected, atol=1e-3)


def test_nms_matches_torchvision() -> None:
    import torch
    import torchvision

    rng = np.random.default_rng(7)
    for n in (1, 5, 200, 2000):
        xy = rng.uniform(0, 600, (n, 2)).astype(np.float32)
        wh = rng.uniform(2, 200, (n, 2)).astype(np.float32)
        boxes = np.concatenate([xy, xy + wh], axis=1)
        scores = rng.choice(np.linspace(0.1, 0.9, 17, dtype=np.float32), n)  # many ties
        for threshold in (0.3, 0.45, 0.7):
            expected = torchvision.ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores), threshold).numpy()
            assert nms(boxes, scores, threshold).tolist() == expected.tolist()


def test_postprocess_matches_ultralytics_nms() -> None:
    import torch
    from ultralytics.utils.nms import non_max_suppression

    rng = np.random.default_rng(3)
    n, nc = 3000, 80
    pred = np.concatenate(
        [rng.uniform(50, 590, (2, n)), rng.uniform(5, 120, (2, n)), rng.uniform(0, 0.6, (nc, n)) ** 3]
    ).astype(np.float32)
    (expected,) = non_max_suppression(torch.from_numpy(pred[None]), 0.05, 0.45, max_det=300)
    boxes, scores, classes = postprocess(pred, conf=0.05, iou=0.45, max_det=300, end2end=False)
    assert len(scores) == len(expected) > 10
    assert np.allclose(boxes, expected[:, :4].numpy(), atol=1e-4)
    assert np.allclose(scores, expected[:, 4].numpy())
    assert classes.tolist() == expected[:, 5].int().tolist()


def test_end_to_end_output() -> None:
    rows = np.array([[1, 2, 30, 40, 0.9, 3], [5, 5, 9, 9, 0.2, 1], [0, 0, 4, 4, 0.5, 0]], dtype=np.float32)
    boxes, scores, classes = postprocess(rows, conf=0.25, iou=0.45, max_det=300, end2end=True)
    assert scores.tolist() == pytest.approx([0.9, 0.5]) and classes.tolist() == [3, 0]
    assert boxes.tolist() == [[1, 2, 30, 40], [0, 0, 4, 4]]


def test_batch_and_metadata(offline_model_path: Path, sample_images: dict[str, Path]) -> None:
    from PIL import Image

    detector = OnnxDetector(offline_model_path, threads=2)
    assert detector.batchable and detector.imgsz == (416, 416) and detector.names[0] == "person"
    images: list[Any] = [np.array(Image.open(p).convert("RGB")) for p in sample_images.values()]
    one_by_one = [detector.predict(im) for im in images]
    together = detector.predict_batch(images)  # different shapes: square letterbox for both
    assert [len(d) for d in together] and all(len(d) >= 2 for d in together)
    same = detector.predict_batch([images[0]] * 3)
    assert same[0] == same[1] == same[2] == one_by_one[0]
    assert read_onnx_metadata(offline_model_path)["names"].startswith("{0: 'person'")
    detector.close()
    with pytest.raises(RuntimeError, match="closed"):
        detector.predict(images[0])
