"""The plain RNN unit: h = f(W x + Wb + R h + Rb), ONNX conventions.

``W`` (D, H, I), ``R`` (D, H, H), ``Wb``/``Rb`` (D, H); activation f per direction.
Maths: ``kernels/kinds/rnn.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..kernels.kinds.rnn import K_RNN, RNN_CLIPS
from ..kernels.layout import C_BIAS, C_WR, C_WX
from .base import gate_packed_t, gate_packed_vec, register
from .recurrent import Recurrent


@register
@dataclass(frozen=True, eq=False, repr=False)
class RNN(Recurrent):
    kind = "RNN"
    array_fields = ("W", "R", "Wb", "Rb", "initial_h")
    gates = 1
    n_acts = 1
    default_acts = ("Tanh",)

    def row_kind(self, builder) -> int:
        return K_RNN

    def pack_direction(self, builder, r, d, H, Hp, Wb, Rb) -> None:
        builder.set_matrix(r, C_WX, gate_packed_t(self.W[d], 1, H, Hp))
        builder.set_matrix(r, C_WR, gate_packed_t(self.R[d], 1, H, Hp))
        r[C_BIAS] = builder.add(gate_packed_vec(Wb + Rb, 1, H, Hp))
        r[RNN_CLIPS] = self.clip is not None
        builder.need(gates=Hp)
