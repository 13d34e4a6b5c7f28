"""The LSTM unit: ONNX gates i, o, f, c, plus the extensions ONNX lacks (projection, learned
initial states).

``W`` (D, 4H, I), ``R`` (D, 4H, P), ``Wb``/``Rb`` (D, 4H), peepholes ``P`` (D, 3H) ordered i, o,
f; ``proj`` (D, P, H) is PyTorch's projection (h = proj @ (o * h(c))), without it P = H.
Activations f, g, h per direction; ``input_forget`` couples f = 1 - i; ``initial_c`` (D, H).
``output`` "c" makes each direction output its cell state c instead of h (ONNX ``Y_c`` used as
data; not with a projection).
Keras/TF forget-bias folding is done by the importers. Maths: ``kernels/kinds/lstm.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..kernels.kinds.lstm import (
    K_LSTM, K_LSTM_FUSED, LSTM_CLIPS, LSTM_INPUT_FORGET, LSTM_PEEP, LSTM_PEEPHOLES, LSTM_PROJ,
    LSTM_PROJECTS, LSTM_PROJ_WIDTH, LSTM_STATE_C,
)
from ..kernels.layout import C_BIAS, C_STATE_H, C_WR, C_WX
from .base import check_shape, gate_packed_t, gate_packed_vec, register
from .recurrent import Recurrent

DEFAULT_ACTS = ("Sigmoid", "Tanh", "Tanh")


@register
@dataclass(frozen=True, eq=False, repr=False)
class LSTM(Recurrent):
    P: np.ndarray | None = None
    proj: np.ndarray | None = None
    input_forget: bool = False
    initial_c: np.ndarray | None = None
    output: str = "h"

    kind = "LSTM"
    array_fields = ("W", "R", "Wb", "Rb", "P", "proj", "initial_h", "initial_c")
    gates = 4
    n_acts = 3
    default_acts = DEFAULT_ACTS

    def __post_init__(self):
        self._set("input_forget", bool(self.input_forget))
        if self.output not in ("h", "c"):
            raise self._err("output", f"expected 'h' or 'c', got {self.output!r}")
        super().__post_init__()
        if self.output == "c" and self.proj is not None:
            raise self._err("output", "a projected LSTM outputs h; its cell state is wider")

    @property
    def unit_output_size(self) -> int:
        return int(self.proj.shape[1]) if self.proj is not None else self.hidden_size

    def describe(self) -> str:
        extra = super().describe()
        return (extra + (f" proj={self.unit_output_size}" if self.proj is not None else "")
                + (" output=c" if self.output == "c" else ""))

    def _check(self) -> None:
        D, H = self.num_directions, self.hidden_size
        if self.proj is not None and (self.proj.ndim != 3 or self.proj.shape[0] != D
                                      or self.proj.shape[2] != H):
            raise self._err("proj", f"shape {self.proj.shape}, expected ({D}, projection size, {H})")
        super()._check()
        if self.proj is not None:
            check_shape(self, "proj", self.proj, (D, self.unit_output_size, H))
        check_shape(self, "P", self.P, (D, 3 * H), required=False)
        check_shape(self, "initial_c", self.initial_c, (D, H), required=False)

    @property
    def is_default(self) -> bool:
        """Default gates and none of clip, peepholes, projection, input_forget."""
        return ([a.name for a in self.activations[:3]] == list(DEFAULT_ACTS) and self.clip is None
                and not self.input_forget and self.P is None and self.proj is None)

    def emitted(self, row) -> int:
        return int(row[LSTM_STATE_C] if self.output == "c" else row[C_STATE_H])

    def row_kind(self, builder) -> int:
        return K_LSTM_FUSED if self.is_default and builder.fast_activations else K_LSTM

    def pack_direction(self, builder, r, d, H, Hp, Wb, Rb) -> None:
        builder.set_matrix(r, C_WX, gate_packed_t(self.W[d], 4, H, Hp))
        builder.set_matrix(r, C_WR, gate_packed_t(self.R[d], 4, H, Hp))
        r[C_BIAS] = builder.add(gate_packed_vec(Wb + Rb, 4, H, Hp))
        P = self.unit_output_size
        Pp = builder.pad(P) if self.proj is not None else 0
        projt = np.zeros((H, Pp))
        if self.proj is not None:
            projt[:, :P] = self.proj[d].T
        r[LSTM_PROJ] = builder.add_panels(projt)  # (H, 0) when there is no projection
        r[LSTM_PROJ_WIDTH] = Pp
        r[LSTM_PEEP] = builder.add(self.P[d] if self.P is not None else np.zeros(3 * H))
        c0 = self.initial_c[d] if self.initial_c is not None else np.zeros(H)
        r[LSTM_STATE_C] = builder.add_state(c0)
        r[LSTM_CLIPS] = self.clip is not None
        r[LSTM_INPUT_FORGET] = self.input_forget
        r[LSTM_PEEPHOLES] = self.P is not None
        r[LSTM_PROJECTS] = self.proj is not None
        builder.need(gates=4 * Hp, vector=max(Hp, Pp))
