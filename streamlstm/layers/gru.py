"""The GRU unit: ONNX gates z, r, h with ``linear_before_reset``.

``W`` (D, 3H, I), ``R`` (D, 3H, H), ``Wb``/``Rb`` (D, 3H); activations f, g per direction.
``linear_before_reset`` picks the row kind (``K_GRU`` or ``K_GRU_LBR``). Maths: ``kernels/kinds/gru.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..kernels.kinds.gru import GRU_CLIPS, GRU_RBH, GRU_WH, K_GRU, K_GRU_LBR
from ..kernels.layout import C_BIAS, C_WR, C_WX
from .base import gate_packed_t, gate_packed_vec, register
from .recurrent import Recurrent


@register
@dataclass(frozen=True, eq=False, repr=False)
class GRU(Recurrent):
    linear_before_reset: bool = False

    kind = "GRU"
    array_fields = ("W", "R", "Wb", "Rb", "initial_h")
    gates = 3
    n_acts = 2
    default_acts = ("Sigmoid", "Tanh")

    def __post_init__(self):
        self._set("linear_before_reset", bool(self.linear_before_reset))
        super().__post_init__()

    def row_kind(self, builder) -> int:
        return K_GRU_LBR if self.linear_before_reset else K_GRU

    def pack_direction(self, builder, r, d, H, Hp, Wb, Rb) -> None:
        lbr = self.linear_before_reset
        b = Wb.copy()
        if not lbr:
            b = b + Rb
        else:
            b[:2 * H] += Rb[:2 * H]
        builder.set_matrix(r, C_WX, gate_packed_t(self.W[d], 3, H, Hp))
        builder.set_matrix(r, C_WR, gate_packed_t(self.R[d][:2 * H], 2, H, Hp))
        r[GRU_WH] = builder.add_panels(gate_packed_t(self.R[d][2 * H:], 1, H, Hp))
        r[C_BIAS] = builder.add(gate_packed_vec(b, 3, H, Hp))
        r[GRU_RBH] = builder.add(gate_packed_vec(Rb[2 * H:] if lbr else np.zeros(H), 1, H, Hp))
        r[GRU_CLIPS] = self.clip is not None
        builder.need(gates=3 * Hp, vector=Hp)
