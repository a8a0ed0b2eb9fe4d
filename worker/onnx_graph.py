"""What the offline model converters share: an ONNX graph builder and an atomic, self-checked save.

``onnx`` is imported inside the functions, so importing this module costs nothing at run time.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass
class GraphBuilder:
    """Accumulates ONNX nodes and initializers under fresh, numbered names (the same input, the same names)."""

    nodes: list[Any] = field(default_factory=list)
    inits: list[Any] = field(default_factory=list)
    count: int = 0

    def name(self, prefix: str) -> str:
        """A fresh tensor/node name."""
        self.count += 1
        return f"{prefix}_{self.count}"

    def const(self, prefix: str, value: npt.NDArray[Any]) -> str:
        """Add an initializer and return its name."""
        from onnx import numpy_helper

        name = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], **attrs: Any) -> str:
        """Add one single-output node and return its output name."""
        return self.ops(op_type, inputs, 1, **attrs)[0]

    def ops(self, op_type: str, inputs: list[str], outputs: int, **attrs: Any) -> list[str]:
        """Add one node with ``outputs`` outputs and return their names."""
        from onnx import helper

        base = self.name(op_type.lower())
        names = [base] if outputs == 1 else [f"{base}_{i}" for i in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, names, name=base, **attrs))
        return names


def set_metadata(model: Any, meta: dict[str, str]) -> None:
    """Write ``metadata_props`` in the given order."""
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def save_atomic(model: Any, target: Path, check: Callable[[Path], None]) -> None:
    """Write the model beside ``target``, run ``check`` on the written file, then rename it into place."""
    import onnx

    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        onnx.save(model, tmp)
        check(tmp)
        tmp.chmod(0o644)  # mkstemp makes it 0600
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
