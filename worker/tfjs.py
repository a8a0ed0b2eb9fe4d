"""A small reader of TensorFlow.js graph models: ``model.json`` + weight shards to ONNX nodes, numpy only.

It covers the ops of convolutional detectors exported to TensorFlow.js through onnx-tf (NanoDet among them):
Conv2D, MaxPool, Pad/PadV2, LeakyRelu, Sigmoid, Add/AddV2, ConcatV2, SplitV, Reshape, ResizeBilinear,
Transpose, Identity, and SparseToDense on constants. An op it does not know is a clear error, never a guess.

TensorFlow lays images out as NHWC and ONNX convolutions want NCHW, and onnx-tf wraps every convolution in a
pair of transposes. The converter therefore moves no data for a Transpose: each value keeps the permutation
that maps its ONNX tensor to the TensorFlow tensor it stands for (``logical = transpose(onnx, perm)``), and a
Transpose node is written only where an op needs another layout. Zero (or, before a max-pool, -inf) padding is
folded into the convolution or pooling that follows it, and a constant bias into its convolution. Shapes are
static, taken from the graph's signature.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from worker.errors import ModelUnavailable
from worker.onnx_graph import GraphBuilder

Array = npt.NDArray[Any]
Perm = tuple[int, ...]
_NHWC_OF_NCHW: Perm = (0, 2, 3, 1)  # a TensorFlow NHWC tensor held as an ONNX NCHW one

_DTYPES = {"float32": "<f4", "int32": "<i4", "bool": "?"}
_QUANTIZED = {"float16": "<f2"}


@dataclass(frozen=True)
class TfjsModel:
    """A TensorFlow.js graph model: its nodes, its weights (dequantized), and its signature."""

    nodes: list[dict[str, Any]]
    weights: dict[str, Array]
    inputs: dict[str, tuple[int, ...]]  # placeholder -> static shape
    outputs: tuple[str, ...]  # the signature's output tensors


def read_model(model_json: bytes, shards: Mapping[str, bytes]) -> TfjsModel:
    """Parse ``model.json`` and decode its weights from ``shards`` (file name -> bytes)."""
    try:
        spec = json.loads(model_json)
        if spec.get("format") != "graph-model":
            raise ModelUnavailable(f"the TensorFlow.js model is a {spec.get('format')!r}, not a graph model")
        nodes = list(spec["modelTopology"]["node"])
        signature = spec["signature"]
        inputs = {_node_name(k): _shape(v) for k, v in signature["inputs"].items()}
        outputs = tuple(signature["outputs"])
        manifest = spec["weightsManifest"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelUnavailable(f"the TensorFlow.js model.json is not readable: {exc!r}") from exc
    weights: dict[str, Array] = {}
    for group in manifest:
        data = b"".join(_shard(shards, path) for path in group["paths"])
        offset = 0
        for entry in group["weights"]:
            value, offset = _decode_weight(entry, data, offset)
            weights[entry["name"]] = value
        if offset != len(data):
            raise ModelUnavailable(f"the TensorFlow.js weights hold {len(data) - offset} bytes more than the manifest")
    return TfjsModel(nodes, weights, inputs, outputs)


def _node_name(tensor: str) -> str:
    """``input_1:0`` -> ``input_1``."""
    return tensor.split(":", 1)[0]


def _shape(entry: Mapping[str, Any]) -> tuple[int, ...]:
    """A static shape from a signature entry."""
    dims = entry["tensorShape"]["dim"]
    return tuple(int(d["size"]) for d in dims)


def _shard(shards: Mapping[str, bytes], path: str) -> bytes:
    """One weight file by the name the manifest gives it."""
    if path not in shards:
        raise ModelUnavailable(f"the TensorFlow.js weights file {path!r} is missing")
    return shards[path]


def _decode_weight(entry: Mapping[str, Any], data: bytes, offset: int) -> tuple[Array, int]:
    """One weight from the manifest at ``offset``; returns it and the next offset."""
    shape = tuple(int(d) for d in entry["shape"])
    count = int(np.prod(shape, dtype=np.int64))
    quantization = entry.get("quantization")
    if quantization is not None:
        dtype = _QUANTIZED.get(quantization.get("dtype", ""))
        if dtype is None or entry["dtype"] != "float32":
            raise ModelUnavailable(f"TensorFlow.js quantization {quantization.get('dtype')!r} is not supported")
    else:
        dtype = _DTYPES.get(entry["dtype"])
        if dtype is None:
            raise ModelUnavailable(f"the TensorFlow.js weight type {entry['dtype']!r} is not supported")
    size = count * np.dtype(dtype).itemsize
    if offset + size > len(data):
        raise ModelUnavailable("the TensorFlow.js weights are shorter than their manifest")
    value = np.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(shape)
    if quantization is not None:
        value = value.astype(np.float32)
    return value, offset + size


# --- conversion -----------------------------------------------------------------------------------------


def _inverse(perm: Perm) -> Perm:
    """The permutation that undoes ``perm``."""
    return tuple(int(i) for i in np.argsort(perm))


@dataclass(frozen=True)
class _Value:
    """A TensorFlow tensor: a constant, or an ONNX tensor read through ``perm``, perhaps with padding pending."""

    shape: tuple[int, ...]  # the TensorFlow (logical) shape
    const: Array | None = None
    name: str = ""  # the ONNX tensor
    perm: Perm = ()  # logical = transpose(onnx tensor, perm)
    pad: tuple[tuple[int, int], ...] | None = None  # logical padding not yet written, around ``name``
    pad_value: float = 0.0


class _Converter:
    """Walks the TensorFlow.js nodes in order and writes ONNX nodes into a ``GraphBuilder``."""

    def __init__(self, model: TfjsModel, g: GraphBuilder, inputs: Mapping[str, tuple[str, Perm]]) -> None:
        self.model, self.g, self.inputs = model, g, inputs
        self.values: dict[str, _Value] = {}
        self.uses = Counter(_node_name(i) for node in model.nodes for i in node.get("input", []))
        self.consumers: dict[str, list[dict[str, Any]]] = {}
        for node in model.nodes:
            for ref in node.get("input", []):
                self.consumers.setdefault(_node_name(ref), []).append(node)
        self.bias_folded: set[str] = set()
        self.ops: dict[str, Callable[[dict[str, Any], list[_Value]], _Value | list[_Value]]] = {
            "Const": self._const, "Placeholder": self._placeholder, "Identity": lambda _, x: x[0],
            "Transpose": self._transpose, "Conv2D": self._conv, "MaxPool": self._maxpool,
            "Pad": self._pad, "PadV2": self._pad, "Add": self._add, "AddV2": self._add,
            "LeakyRelu": self._leaky_relu, "Sigmoid": self._sigmoid, "ConcatV2": self._concat,
            "SplitV": self._split, "Reshape": self._reshape, "ResizeBilinear": self._resize,
            "SparseToDense": self._sparse_to_dense,
        }  # fmt: skip

    # --- plumbing

    def run(self) -> None:
        """Convert every node, in the graph's order."""
        for node in self.model.nodes:
            handler = self.ops.get(node["op"])
            if handler is None:
                raise ModelUnavailable(f"the TensorFlow.js op {node['op']!r} ({node['name']}) is not supported")
            args = [self._input(name) for name in node.get("input", [])]
            out = handler(node, args)
            for i, value in enumerate(out if isinstance(out, list) else [out]):
                self.values[node["name"] if i == 0 else f"{node['name']}:{i}"] = value

    def _input(self, ref: str) -> _Value:
        """The value a node input refers to (``name``, ``name:0`` or ``name:1``)."""
        name, _, index = ref.partition(":")
        key = name if index in {"", "0"} else f"{name}:{index}"
        if key not in self.values:
            raise ModelUnavailable(f"the TensorFlow.js graph uses {ref!r} before defining it")
        return self.values[key]

    def output(self, ref: str) -> tuple[str, tuple[int, ...]]:
        """An ONNX tensor holding the TensorFlow tensor ``ref`` as it is (no permutation), and its shape."""
        value = self._input(ref)
        return self.materialize(value, tuple(range(len(value.shape)))), value.shape

    def materialize(self, value: _Value, perm: Perm) -> str:
        """An ONNX tensor ``t`` with ``logical = transpose(t, perm)``: padding written, transposed if needed."""
        if value.const is not None:
            return self.g.const("const", np.transpose(value.const, _inverse(perm)))
        name = self._write_pad(value)
        if value.perm == perm:
            return name
        inverse = _inverse(perm)
        return self.g.op("Transpose", [name], perm=[value.perm[inverse[j]] for j in range(len(perm))])

    def _write_pad(self, value: _Value) -> str:
        """``value``'s ONNX tensor with its pending padding written out."""
        if value.pad is None:
            return value.name
        inverse = _inverse(value.perm)
        begins = [value.pad[inverse[j]][0] for j in range(len(value.perm))]
        ends = [value.pad[inverse[j]][1] for j in range(len(value.perm))]
        pads = self.g.const("pads", np.array(begins + ends, dtype=np.int64))
        fill = self.g.const("fill", np.array(value.pad_value, dtype=np.float32))
        return self.g.op("Pad", [value.name, pads, fill], mode="constant")

    def _tensor(self, value: _Value) -> _Value:
        """``value`` as an ONNX tensor with no padding pending."""
        if value.const is not None:
            perm = tuple(range(value.const.ndim))
            return _Value(value.shape, name=self.materialize(value, perm), perm=perm)
        if value.pad is None:
            return value
        return replace(value, name=self._write_pad(value), pad=None)

    @staticmethod
    def _const_arg(value: _Value, what: str) -> Array:
        """A constant input, or a clear error."""
        if value.const is None:
            raise ModelUnavailable(f"the TensorFlow.js graph computes {what}, which this reader needs constant")
        return value.const

    # --- ops

    def _const(self, node: dict[str, Any], _: list[_Value]) -> _Value:
        if node["name"] not in self.model.weights:
            raise ModelUnavailable(f"the TensorFlow.js constant {node['name']!r} has no weights")
        value = self.model.weights[node["name"]]
        return _Value(value.shape, const=value)

    def _placeholder(self, node: dict[str, Any], _: list[_Value]) -> _Value:
        name, perm = self.inputs[node["name"]]
        return _Value(self.model.inputs[node["name"]], name=name, perm=perm)

    def _transpose(self, _: dict[str, Any], args: list[_Value]) -> _Value:
        x, order = args[0], [int(i) for i in self._const_arg(args[1], "a transpose's order")]
        shape = tuple(x.shape[i] for i in order)
        if x.const is not None:
            return _Value(shape, const=np.transpose(x.const, order))
        pad = None if x.pad is None else tuple(x.pad[i] for i in order)
        return replace(x, shape=shape, perm=tuple(x.perm[i] for i in order), pad=pad)

    def _conv(self, node: dict[str, Any], args: list[_Value]) -> _Value:
        x, kernel = args[0], self._const_arg(args[1], "a convolution's kernel")
        _nhwc_only(node)
        strides, dilations = _spatial(node, "strides"), _spatial(node, "dilations", default=(1, 1))
        pads = self._spatial_pads(node, x, 0.0)
        source = replace(x, pad=None)  # taken in by the op's own pads
        kh, kw, cin, cout = kernel.shape
        if x.shape[3] != cin:
            raise ModelUnavailable(f"the convolution {node['name']} expects {cin} channels, gets {x.shape[3]}")
        weight = self.g.const("w", np.transpose(kernel, (3, 2, 0, 1)).astype(np.float32))
        bias = self._foldable_bias(node, cout)
        inputs = [self.materialize(source, _NHWC_OF_NCHW), weight]
        if bias is not None:
            inputs.append(self.g.const("b", bias.astype(np.float32)))
        out = self.g.op("Conv", inputs, kernel_shape=[kh, kw], strides=list(strides), dilations=list(dilations),
                        pads=list(pads))  # fmt: skip
        h = (x.shape[1] - dilations[0] * (kh - 1) - 1) // strides[0] + 1  # x.shape includes the padding
        w = (x.shape[2] - dilations[1] * (kw - 1) - 1) // strides[1] + 1
        return _Value((x.shape[0], h, w, cout), name=out, perm=_NHWC_OF_NCHW)

    def _foldable_bias(self, conv: dict[str, Any], channels: int) -> Array | None:
        """The constant (channels,) vector added to the conv's output, when that Add is its only use."""
        users = self.consumers.get(conv["name"], [])
        if self.uses[conv["name"]] != 1 or users[0]["op"] not in {"Add", "AddV2", "BiasAdd"}:
            return None
        add = users[0]
        (other,) = (_node_name(ref) for ref in add["input"] if _node_name(ref) != conv["name"])
        bias = self.model.weights.get(other)
        if bias is None or bias.shape != (channels,) or bias.dtype != np.float32:
            return None
        self.bias_folded.add(add["name"])
        return bias

    def _spatial_pads(self, node: dict[str, Any], x: _Value, fill: float) -> tuple[int, int, int, int]:
        """ONNX pads (top, left, bottom, right) from VALID padding and the input's pending padding."""
        padding = base64.b64decode(node["attr"]["padding"]["s"]).decode()
        if padding != "VALID":
            raise ModelUnavailable(f"{node['op']} padding {padding!r} is not supported")
        if x.pad is None:
            return (0, 0, 0, 0)
        (n0, n1), (t, b), (left, right), (c0, c1) = x.pad
        if (n0, n1, c0, c1) != (0, 0, 0, 0) or x.pad_value != fill:
            raise ModelUnavailable(f"{node['name']} follows a padding it cannot take in")
        return (t, left, b, right)

    def _maxpool(self, node: dict[str, Any], args: list[_Value]) -> _Value:
        x = args[0]
        _nhwc_only(node)
        size, strides = _spatial(node, "ksize"), _spatial(node, "strides")
        pads = self._spatial_pads(node, x, float("-inf"))
        source = replace(x, pad=None)  # taken in by the op's own pads
        out = self.g.op("MaxPool", [self.materialize(source, _NHWC_OF_NCHW)], kernel_shape=list(size),
                        strides=list(strides), pads=list(pads))  # fmt: skip
        h = (x.shape[1] - size[0]) // strides[0] + 1  # x.shape includes the padding
        w = (x.shape[2] - size[1]) // strides[1] + 1
        return _Value((x.shape[0], h, w, x.shape[3]), name=out, perm=_NHWC_OF_NCHW)

    def _pad(self, node: dict[str, Any], args: list[_Value]) -> _Value:
        x, paddings = self._tensor(args[0]), self._const_arg(args[1], "a padding")
        fill = float(self._const_arg(args[2], "a padding value")) if len(args) > 2 else 0.0
        pad = tuple((int(a), int(b)) for a, b in paddings)
        shape = tuple(d + a + b for d, (a, b) in zip(x.shape, pad, strict=True))
        return replace(x, shape=shape, pad=pad, pad_value=fill)

    def _add(self, node: dict[str, Any], args: list[_Value]) -> _Value:
        a, b = args
        if node["name"] in self.bias_folded:
            return a
        if a.const is not None and b.const is not None:
            total = a.const + b.const
            return _Value(total.shape, const=total)
        if a.const is not None:
            a, b = b, a
        a = self._tensor(a)
        if b.const is not None:
            const = b.const.reshape((1,) * (len(a.shape) - b.const.ndim) + b.const.shape)
            other = self.g.const("c", np.transpose(const, _inverse(a.perm)).astype(np.float32))
        else:
            other = self.materialize(b, a.perm)
        return replace(a, name=self.g.op("Add", [a.name, other]))

    def _leaky_relu(self, node: dict[str, Any], args: list[_Value]) -> _Value:
        x = self._tensor(args[0])
        return replace(x, name=self.g.op("LeakyRelu", [x.name], alpha=float(node["attr"]["alpha"]["f"])))

    def _sigmoid(self, _: dict[str, Any], args: list[_Value]) -> _Value:
        x = self._tensor(args[0])
        return replace(x, name=self.g.op("Sigmoid", [x.name]))

    def _concat(self, _: dict[str, Any], args: list[_Value]) -> _Value:
        axis = int(self._const_arg(args[-1], "a concatenation's axis"))
        parts = [p if p.const is not None else self._tensor(p) for p in args[:-1]]
        first = next((p for p in parts if p.const is None), self._tensor(parts[0]))
        axis %= len(first.shape)
        names = [self.materialize(p, first.perm) for p in parts]
        shape = list(first.shape)
        shape[axis] = sum(p.shape[axis] for p in parts)
        return _Value(tuple(shape), name=self.g.op("Concat", names, axis=first.perm[axis]), perm=first.perm)

    def _split(self, node: dict[str, Any], args: list[_Value]) -> list[_Value]:
        x = self._tensor(args[0])
        sizes = [int(s) for s in self._const_arg(args[1], "split sizes")]
        axis = int(self._const_arg(args[2], "a split's axis")) % len(x.shape)
        if -1 in sizes:
            sizes[sizes.index(-1)] = x.shape[axis] - (sum(sizes) + 1)
        split = self.g.const("split", np.array(sizes, dtype=np.int64))
        names = self.g.ops("Split", [x.name, split], len(sizes), axis=x.perm[axis])
        shapes = [tuple(s if i == axis else d for i, d in enumerate(x.shape)) for s in sizes]
        return [_Value(shape, name=n, perm=x.perm) for shape, n in zip(shapes, names, strict=True)]

    def _reshape(self, _: dict[str, Any], args: list[_Value]) -> _Value:
        x, target = args[0], [int(d) for d in self._const_arg(args[1], "a reshape's shape")]
        if x.const is not None:
            value = x.const.reshape(target)
            return _Value(value.shape, const=value)
        identity = tuple(range(len(x.shape)))
        shape = np.empty(x.shape, dtype=np.bool_).reshape(target).shape  # resolves -1 and checks the size
        name = self.g.op("Reshape", [self.materialize(x, identity), self.g.const("shape", np.array(target, np.int64))])
        return _Value(shape, name=name, perm=tuple(range(len(shape))))

    def _resize(self, node: dict[str, Any], args: list[_Value]) -> _Value:
        x, size = args[0], [int(d) for d in self._const_arg(args[1], "a resize's size")]
        attrs = node.get("attr", {})
        if attrs.get("align_corners", {}).get("b", False):
            mode = "align_corners"
        elif attrs.get("half_pixel_centers", {}).get("b", False):
            mode = "half_pixel"
        else:
            mode = "asymmetric"
        n, _, _, c = x.shape
        sizes = self.g.const("sizes", np.array([n, c, *size], dtype=np.int64))
        out = self.g.op("Resize", [self.materialize(x, _NHWC_OF_NCHW), "", "", sizes], mode="linear",
                        coordinate_transformation_mode=mode)  # fmt: skip
        return _Value((n, size[0], size[1], c), name=out, perm=_NHWC_OF_NCHW)

    def _sparse_to_dense(self, _: dict[str, Any], args: list[_Value]) -> _Value:
        indices, shape, values, default = (self._const_arg(a, "a sparse tensor") for a in args)
        dense = np.full([int(d) for d in shape], default, dtype=default.dtype)
        points = indices.reshape(indices.shape[0] if indices.ndim else 1, -1 if indices.size else len(dense.shape))
        for point, value in zip(points, np.broadcast_to(values, (len(points),)), strict=True):
            dense[tuple(int(i) for i in point)] = value
        return _Value(dense.shape, const=dense)


def _nhwc_only(node: Mapping[str, Any]) -> None:
    """Refuse an op in another layout than NHWC."""
    layout = node.get("attr", {}).get("data_format", {}).get("s")
    if layout is not None and base64.b64decode(layout).decode() != "NHWC":
        raise ModelUnavailable(f"{node['op']} in the layout {base64.b64decode(layout).decode()} is not supported")


def _spatial(node: Mapping[str, Any], attr: str, default: tuple[int, int] | None = None) -> tuple[int, int]:
    """The (h, w) part of an NHWC list attribute such as strides or ksize."""
    values = node.get("attr", {}).get(attr, {}).get("list", {}).get("i")
    if not values:
        if default is None:
            raise ModelUnavailable(f"{node['name']} has no {attr}")
        return default
    n, h, w, c = (int(v) for v in values)
    if (n, c) != (1, 1):
        raise ModelUnavailable(f"{node['name']} has {attr} over batch or channels")
    return h, w


def convert(
    model: TfjsModel, g: GraphBuilder, inputs: Mapping[str, tuple[str, Sequence[int]]], outputs: Iterable[str]
) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Write ``model`` into ``g``; return each requested output's ONNX tensor and (TensorFlow) shape.

    ``inputs`` maps each placeholder to the ONNX tensor that feeds it and that tensor's permutation, e.g.
    ``{"input_1": ("images", (0, 1, 2, 3))}``.
    """
    converter = _Converter(model, g, {name: (tensor, tuple(perm)) for name, (tensor, perm) in inputs.items()})
    converter.run()
    return {ref: converter.output(ref) for ref in outputs}
