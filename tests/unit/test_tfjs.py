"""The TensorFlow.js reader: a small graph of every op it knows, run by ONNX Runtime against numpy."""

from __future__ import annotations

import base64
import json
from collections import Counter
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, checker, helper

from worker.errors import ModelUnavailable
from worker.onnx_graph import GraphBuilder
from worker.tfjs import convert, read_model

RNG = np.random.default_rng(7)
KERNEL = RNG.normal(0, 0.5, (3, 3, 3, 4)).astype(np.float16).astype(np.float32)  # stored as fp16
BIAS = RNG.normal(0, 0.5, 4).astype(np.float32)


def _s(text: str) -> dict[str, str]:
    return {"s": base64.b64encode(text.encode()).decode()}


def _ints(*values: int) -> dict[str, Any]:
    return {"list": {"i": [str(v) for v in values]}}


def tfjs_files() -> tuple[bytes, bytes]:
    """model.json and its weights: NCHW input -> NHWC conv block, pool, upsample, concat -> NCHW split heads."""
    consts: dict[str, np.ndarray[Any, Any]] = {
        "to_nhwc": np.array([0, 2, 3, 1], np.int32),
        "to_nchw": np.array([0, 3, 1, 2], np.int32),
        "pad": np.array([[0, 0], [1, 1], [1, 1], [0, 0]], np.int32),
        "kernel": KERNEL,
        "bias": BIAS,
        "fill": np.array(-np.inf, np.float32),
        "size": np.array([8, 8], np.int32),
        "axis": np.array(3, np.int32),
        "splits": np.array([3, -1], np.int32),
        "split_axis": np.array(1, np.int32),
        "sparse_idx": np.zeros((0, 1), np.int32),
        "sparse_shape": np.array([3], np.int32),
        "sparse_values": np.zeros((0,), np.int32),
        "sparse_default": np.array(0, np.int32),
        "shape_base": np.array([1, 3, -1], np.int32),
    }
    nhwc = {"data_format": _s("NHWC"), "padding": _s("VALID")}
    nodes = [
        {"name": "input_1", "op": "Placeholder"},
        *({"name": name, "op": "Const"} for name in consts),
        {"name": "t1", "op": "Transpose", "input": ["input_1", "to_nhwc"]},
        {"name": "p1", "op": "Pad", "input": ["t1", "pad"]},
        {"name": "conv", "op": "Conv2D", "input": ["p1", "kernel"], "attr": {**nhwc, "strides": _ints(1, 1, 1, 1)}},
        {"name": "biased", "op": "Add", "input": ["conv", "bias"]},
        {"name": "act", "op": "LeakyRelu", "input": ["biased"], "attr": {"alpha": {"f": 0.1}}},
        {"name": "p2", "op": "PadV2", "input": ["act", "pad", "fill"]},
        {"name": "pool", "op": "MaxPool", "input": ["p2"],
         "attr": {**nhwc, "ksize": _ints(1, 3, 3, 1), "strides": _ints(1, 2, 2, 1)}},
        {"name": "up", "op": "ResizeBilinear", "input": ["pool", "size"],
         "attr": {"half_pixel_centers": {"b": True}, "align_corners": {"b": False}}},
        {"name": "cat", "op": "ConcatV2", "input": ["act", "up", "axis"]},
        {"name": "t2", "op": "Transpose", "input": ["cat", "to_nchw"]},
        {"name": "split", "op": "SplitV", "input": ["t2", "splits", "split_axis"], "attr": {"num_split": {"i": "2"}}},
        {"name": "sig", "op": "Sigmoid", "input": ["split"]},
        {"name": "zeros", "op": "SparseToDense",
         "input": ["sparse_idx", "sparse_shape", "sparse_values", "sparse_default"]},
        {"name": "shape", "op": "AddV2", "input": ["shape_base", "zeros"]},
        {"name": "flat", "op": "Reshape", "input": ["sig", "shape"]},
        {"name": "out_a", "op": "Identity", "input": ["flat"]},
        {"name": "out_b", "op": "Identity", "input": ["split:1"]},
    ]  # fmt: skip
    manifest, blobs = [], []
    for name, value in consts.items():
        entry: dict[str, Any] = {"name": name, "shape": list(value.shape), "dtype": str(value.dtype)}
        if value.dtype == np.float32 and name == "kernel":
            entry["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
            blobs.append(value.astype("<f2").tobytes())
        else:
            blobs.append(value.astype(value.dtype.newbyteorder("<")).tobytes())
        manifest.append(entry)
    spec = {
        "format": "graph-model",
        "signature": {
            "inputs": {"input_1:0": {"tensorShape": {"dim": [{"size": "1"}, {"size": "3"}, {"size": "8"},
                                                              {"size": "8"}]}}},
            "outputs": {"out_a:0": {}, "out_b:0": {}},
        },
        "modelTopology": {"node": nodes},
        "weightsManifest": [{"paths": ["w.bin"], "weights": manifest}],
    }  # fmt: skip
    return json.dumps(spec).encode(), b"".join(blobs)


def build(model_json: bytes, weights: bytes) -> tuple[Any, dict[str, tuple[int, ...]]]:
    """Convert into a runnable ONNX model; its node counts and output shapes."""
    model = read_model(model_json, {"w.bin": weights})
    g = GraphBuilder()
    outputs = convert(model, g, {"input_1": ("x", (0, 1, 2, 3))}, ["out_a", "out_b"])
    graph = helper.make_graph(
        g.nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape)) for name, shape in outputs.values()],
        initializer=g.inits,
    )  # fmt: skip
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    checker.check_model(onnx_model)
    return onnx_model, {ref: shape for ref, (_, shape) in outputs.items()}


def reference(x: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The same graph in plain numpy (NHWC, as TensorFlow computes it)."""
    t = x.transpose(0, 2, 3, 1)
    p = np.pad(t, ((0, 0), (1, 1), (1, 1), (0, 0)))
    conv = np.zeros((1, 8, 8, 4), np.float64)
    for i in range(8):
        for j in range(8):
            conv[0, i, j] = np.einsum("hwc,hwco->o", p[0, i : i + 3, j : j + 3], KERNEL)
    act = conv + BIAS
    act = np.where(act > 0, act, 0.1 * act)
    padded = np.pad(act, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
    pool = np.array([[padded[0, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3].max((0, 1)) for j in range(4)] for i in range(4)])
    up = _upsample_half_pixel(pool, 8)[None]
    cat = np.concatenate([act, up], axis=3).transpose(0, 3, 1, 2)
    return 1 / (1 + np.exp(-cat[:, :3])).reshape(1, 3, -1), cat[:, 3:]


def _upsample_half_pixel(image: np.ndarray[Any, Any], size: int) -> np.ndarray[Any, Any]:
    """Bilinear resize of an (h, w, c) array to (size, size, c) with half-pixel centres, edges clamped."""
    weights = []
    for n in image.shape[:2]:
        src = np.clip((np.arange(size) + 0.5) * n / size - 0.5, 0, n - 1)
        low = np.floor(src).astype(int)
        high = np.minimum(low + 1, n - 1)
        m = np.zeros((size, n))
        m[np.arange(size), low] += 1 - (src - low)
        m[np.arange(size), high] += src - low
        weights.append(m)
    return np.einsum("ih,jw,hwc->ijc", weights[0], weights[1], image)


def test_every_op_matches_numpy_and_no_layout_shuffles_are_written() -> None:
    model, shapes = build(*tfjs_files())
    assert shapes == {"out_a": (1, 3, 64), "out_b": (1, 5, 8, 8)}
    ops = Counter(node.op_type for node in model.graph.node)
    assert ops["Transpose"] == 0 and ops["Pad"] == 0 and ops["Add"] == 0  # folded: layout, padding, bias
    conv = next(node for node in model.graph.node if node.op_type == "Conv")
    assert len(conv.input) == 3 and list(next(a for a in conv.attribute if a.name == "pads").ints) == [1, 1, 1, 1]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = RNG.normal(0, 1, (1, 3, 8, 8)).astype(np.float32)
    out_a, out_b = session.run(None, {"x": x})
    want_a, want_b = reference(x.astype(np.float64))
    assert np.abs(out_a - want_a).max() < 1e-5
    assert np.abs(out_b - want_b).max() < 1e-5


def test_an_unknown_op_or_broken_weights_are_one_clear_sentence() -> None:
    model_json, weights = tfjs_files()
    spec = json.loads(model_json)
    spec["modelTopology"]["node"].append({"name": "soft", "op": "Softmax", "input": ["act"]})
    with pytest.raises(ModelUnavailable, match=r"the TensorFlow.js op 'Softmax' \(soft\) is not supported"):
        build(json.dumps(spec).encode(), weights)
    with pytest.raises(ModelUnavailable, match="shorter than their manifest"):
        build(model_json, weights[:-4])
    with pytest.raises(ModelUnavailable, match="4 bytes more than the manifest"):
        build(model_json, weights + b"\0" * 4)
    with pytest.raises(ModelUnavailable, match=r"weights file 'w\.bin' is missing"):
        read_model(model_json, {})
    spec = json.loads(model_json)
    spec["weightsManifest"][0]["weights"][3]["quantization"]["dtype"] = "uint8"
    with pytest.raises(ModelUnavailable, match="quantization 'uint8' is not supported"):
        build(json.dumps(spec).encode(), weights)
    with pytest.raises(ModelUnavailable, match="not readable"):
        read_model(b"{", {})
