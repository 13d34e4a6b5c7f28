"""The Dense unit: y = activation(W @ x + b), ``W`` (O, I), ``b`` (O,). Maths: ``kernels/kinds/dense.py``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..kernels.kinds.dense import K_DENSE
from ..kernels.layout import C_ACT_F, C_BIAS, C_PARAMS, C_WX
from .base import ActLike, Layer, as_act, check_shape, gate_packed_t, gate_packed_vec, register


@register
@dataclass(frozen=True, eq=False, repr=False)
class Dense(Layer):
    W: np.ndarray
    b: np.ndarray | None = None
    activation: ActLike = "Identity"
    name: str = ""

    kind = "Dense"
    array_fields = ("W", "b")

    def __post_init__(self):
        self._freeze_arrays()
        self._set("activation", as_act(self.activation))
        if self.W is None or self.W.ndim != 2 or 0 in self.W.shape:
            raise self._err("W", f"expected a non-empty (out, in) matrix, got "
                                 f"{None if self.W is None else self.W.shape}")
        check_shape(self, "W", self.W, self.W.shape)
        check_shape(self, "b", self.b, (self.output_size,), required=False)

    @property
    def input_size(self) -> int:
        return int(self.W.shape[1])

    @property
    def output_size(self) -> int:
        return int(self.W.shape[0])

    def output_width(self, width: int) -> int:
        return self.output_size

    def pack(self, builder) -> None:
        O = self.output_size
        G = builder.pad(O)
        dst = builder.next_sequence()
        r = builder.row(K_DENSE, dst, O, col=0, out=O)
        builder.set_matrix(r, C_WX, gate_packed_t(self.W, 1, O, G))
        b = self.b if self.b is not None else np.zeros(O)
        r[C_BIAS] = builder.add(gate_packed_vec(b, 1, O, G))
        r[C_ACT_F] = builder.code(self.activation)
        r[C_PARAMS] = builder.params((self.activation,), None)
        builder.need(gates=G)
        builder.advance(dst, O)
