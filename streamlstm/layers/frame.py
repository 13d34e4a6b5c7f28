"""The per-frame plumbing units: data movement, reductions, elementwise maths, joins.

- ``Rearrange``: y[j] = x[index[j]] (0 where index[j] is -1). Every shape op within a frame
  (Slice, Transpose, Pad with zeros/reflect/edge, Expand, a Gather of constant indices) is
  one index map, computed by the converter from the frame's tensor shape.
- ``Reduce``: y[j] = sum / mean / max of x over the row ``index[j]`` (entries -1 left out):
  ReduceMean/Sum/Max over axes, max and average pooling.
- ``Elementwise``: y = op(x, c) with a constant vector c as wide as the frame (or no c).
- ``Binary``: y = op(a, b) between two values of the same width (two branches of a graph).
- ``Concat``: the values it reads, side by side.
- ``HoldFirst``: the frame, except that the ``columns`` hold their value of the sequence's
  first frame in every row: what a backward direction's final state (ONNX ``Y_h``) is in a
  network of per-frame rows. It needs whole sequences, so it does not stream.

Maths: ``kernels/kinds/frame.py``. Index arrays are stored as float64 like every array field and
must hold integers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..kernels.kinds.frame import (
    BINARY_OP, BINARY_OPS, BINARY_SRC2, ELEM_CONST, ELEM_OP, ELEM_OPS, GATHER_INDEX, HOLD_COLUMNS,
    HOLD_COUNT, K_BINARY, K_ELEM, K_GATHER, K_HOLD_FIRST, K_REDUCE, REDUCE_GROUP, REDUCE_INDEX,
    REDUCE_MAX, REDUCE_MODE, REDUCE_SCALE, REDUCE_SUM,
)
from .base import Layer, register

UNARY_OPS = ("sqrt", "abs", "neg", "exp", "log", "square", "reciprocal", "erf")
REDUCE_MODES = ("sum", "mean", "max")


def _index_field(layer: Layer, fieldname: str, ndim: int) -> np.ndarray:
    a = getattr(layer, fieldname)
    if a is None or a.ndim != ndim or a.size == 0:
        raise layer._err(fieldname, f"expected a non-empty {ndim}-D array of positions")
    if not np.all(np.isfinite(a)) or np.any(a != np.rint(a)) or np.any(a < -1):
        raise layer._err(fieldname, "positions must be integers >= 0 (or -1)")
    return a.astype(np.int64)


def _check_reach(layer: Layer, index: np.ndarray, width: int) -> None:
    if index.max() >= width:
        raise layer._err("index", f"reads position {int(index.max())} of a frame of {width}")


@register
@dataclass(frozen=True, eq=False, repr=False)
class Rearrange(Layer):
    index: np.ndarray
    name: str = ""

    kind = "Rearrange"
    array_fields = ("index",)

    def __post_init__(self):
        self._freeze_arrays()
        _index_field(self, "index", 1)

    def output_width(self, width: int) -> int:
        _check_reach(self, self.index, width)
        return int(self.index.size)

    def pack(self, builder) -> None:
        O = self.output_width(builder.width)
        dst = builder.next_sequence()
        r = builder.row(K_GATHER, dst, O, col=0, out=O)
        r[GATHER_INDEX] = builder.add_ints(self.index)
        builder.advance(dst, O)


@register
@dataclass(frozen=True, eq=False, repr=False)
class Reduce(Layer):
    index: np.ndarray
    mode: str = "mean"
    name: str = ""

    kind = "Reduce"
    array_fields = ("index",)

    def __post_init__(self):
        self._freeze_arrays()
        index = _index_field(self, "index", 2)
        if self.mode not in REDUCE_MODES:
            raise self._err("mode", f"expected one of {REDUCE_MODES}, got {self.mode!r}")
        if np.any((index >= 0).sum(axis=1) == 0):
            raise self._err("index", "every output needs at least one position")

    def output_width(self, width: int) -> int:
        _check_reach(self, self.index, width)
        return int(self.index.shape[0])

    def describe(self) -> str:
        return f" {self.mode} over {self.index.shape[1]}"

    def pack(self, builder) -> None:
        O, M = self.index.shape
        index = self.index.astype(np.int64)
        count = (index >= 0).sum(axis=1)
        dst = builder.next_sequence()
        r = builder.row(K_REDUCE, dst, O, col=0, out=O)
        r[REDUCE_INDEX] = builder.add_ints(index)
        r[REDUCE_GROUP] = M
        r[REDUCE_MODE] = REDUCE_MAX if self.mode == "max" else REDUCE_SUM
        r[REDUCE_SCALE] = builder.add(1.0 / count if self.mode == "mean" else np.ones(O))
        builder.advance(dst, O)


@register
@dataclass(frozen=True, eq=False, repr=False)
class Elementwise(Layer):
    op: str
    c: np.ndarray | None = None
    name: str = ""

    kind = "Elementwise"
    array_fields = ("c",)

    def __post_init__(self):
        self._freeze_arrays()
        if self.op not in ELEM_OPS:
            raise self._err("op", f"expected one of {sorted(ELEM_OPS)}, got {self.op!r}")
        unary = self.op in UNARY_OPS
        if unary and self.c is not None:
            raise self._err("c", f"{self.op} takes no constant")
        if not unary:
            if self.c is None or self.c.ndim != 1 or self.c.size == 0:
                raise self._err("c", f"{self.op} needs a constant vector as wide as the frame")
            if not np.all(np.isfinite(self.c)):
                raise self._err("c", "contains NaN or Inf")

    def output_width(self, width: int) -> int:
        if self.c is not None and self.c.size != width:
            raise self._err("c", f"{self.c.size} values for a frame of {width}")
        return width

    def describe(self) -> str:
        return f" {self.op}"

    def pack(self, builder) -> None:
        W = self.output_width(builder.width)
        dst = builder.next_sequence()
        r = builder.row(K_ELEM, dst, W, col=0, out=W)
        r[ELEM_OP] = ELEM_OPS[self.op]
        r[ELEM_CONST] = builder.add(self.c if self.c is not None else np.zeros(W))
        builder.advance(dst, W)


@register
@dataclass(frozen=True, eq=False, repr=False)
class Binary(Layer):
    op: str
    name: str = ""

    kind = "Binary"
    arity = 2

    def __post_init__(self):
        if self.op not in BINARY_OPS:
            raise self._err("op", f"expected one of {sorted(BINARY_OPS)}, got {self.op!r}")

    def output_width_of(self, widths: tuple[int, ...]) -> int:
        if widths[0] != widths[1]:
            raise self._err("op", f"{self.op} of values of different widths {widths[0]} and {widths[1]}")
        return widths[0]

    def describe(self) -> str:
        return f" {self.op}"

    def pack(self, builder) -> None:
        (a, W), (b, _) = builder.inputs
        dst = builder.next_sequence()
        r = builder.row(K_BINARY, dst, W, col=0, out=W, src=(a, W))
        r[BINARY_OP] = BINARY_OPS[self.op]
        r[BINARY_SRC2] = b
        builder.advance(dst, W)


@register
@dataclass(frozen=True, eq=False, repr=False)
class Concat(Layer):
    name: str = ""

    kind = "Concat"
    arity = None

    def output_width_of(self, widths: tuple[int, ...]) -> int:
        return int(sum(widths))

    def pack(self, builder) -> None:
        inputs = list(builder.inputs)
        O = sum(w for _, w in inputs)
        dst = builder.next_sequence()
        col = 0
        for seq, w in inputs:
            r = builder.row(K_GATHER, dst, O, col=col, out=w, src=(seq, w))
            r[GATHER_INDEX] = builder.add_ints(np.arange(w))
            col += w
        builder.advance(dst, O)


@register
@dataclass(frozen=True, eq=False, repr=False)
class HoldFirst(Layer):
    columns: np.ndarray
    name: str = ""

    kind = "HoldFirst"
    array_fields = ("columns",)

    def __post_init__(self):
        self._freeze_arrays()
        _index_field(self, "columns", 1)
        if np.any(self.columns < 0):
            raise self._err("columns", "positions must be >= 0")

    @property
    def streamable(self) -> bool:
        return False

    def output_width(self, width: int) -> int:
        _check_reach(self, self.columns, width)
        return width

    def pack(self, builder) -> None:
        W = builder.width
        dst = builder.next_sequence()
        r = builder.row(K_HOLD_FIRST, dst, W, col=0, out=W)
        r[HOLD_COLUMNS] = builder.add_ints(self.columns)
        r[HOLD_COUNT] = self.columns.size
        builder.advance(dst, W)
