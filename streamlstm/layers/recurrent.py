"""The fields, checks and packing that LSTM, GRU and RNN share (ONNX conventions).

Per direction d of D (1, or 2 for bidirectional): ``W`` (D, gates*H, I), ``R`` (D, gates*H, P),
``Wb``/``Rb`` (D, gates*H), ``initial_h`` (D, P), ``n_acts`` activations per direction.
Bidirectional outputs are concatenated [forward, backward] (``merge="concat"``) or combined by
``sum``/``mul``/``ave`` in a merge row. ``initial_h`` is a learned initial state: a session
starts from it and returns to it on reset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..kernels.kinds.merge import K_MERGE, MERGE_CODES, MERGE_MODE
from ..kernels.layout import C_ACT_F, C_EMIT, C_GATE_STRIDE, C_HIDDEN, C_PARAMS, C_REVERSE, C_STATE_H
from .base import RNN_ACTIVATIONS, ActLike, Layer, act, as_act, check_shape

DIRECTIONS = ("forward", "reverse", "bidirectional")
MERGE_MODES = tuple(MERGE_CODES)


@dataclass(frozen=True, eq=False, repr=False)
class Recurrent(Layer):
    """Shared fields of LSTM, GRU and RNN; subclasses set the class constants below."""

    W: np.ndarray
    R: np.ndarray
    Wb: np.ndarray | None = None
    Rb: np.ndarray | None = None
    activations: Sequence[ActLike] | None = None
    clip: float | None = None
    direction: str = "forward"
    initial_h: np.ndarray | None = None
    merge: str = "concat"
    name: str = ""

    gates = 1
    n_acts = 1
    default_acts = ()

    def __post_init__(self):
        self._freeze_arrays()
        if self.activations is None:
            self._set("activations", tuple(act(a) for a in self.default_acts) * self.num_directions)
        else:
            self._set("activations", tuple(as_act(a) for a in self.activations))
        if self.clip is not None:
            self._set("clip", float(self.clip))
        self._check()

    @property
    def num_directions(self) -> int:
        return 2 if self.direction == "bidirectional" else 1

    @property
    def hidden_size(self) -> int:
        return int(self.W.shape[1] // self.gates) if self.W is not None and self.W.ndim == 3 else 0

    @property
    def input_size(self) -> int:
        return int(self.W.shape[-1])

    @property
    def unit_output_size(self) -> int:
        """Output width of one direction."""
        return self.hidden_size

    @property
    def output_size(self) -> int:
        p = self.unit_output_size
        return p * 2 if self.direction == "bidirectional" and self.merge == "concat" else p

    def output_width(self, width: int) -> int:
        return self.output_size

    def describe(self) -> str:
        return f" hidden={self.hidden_size} direction={self.direction}"

    def _check(self) -> None:
        """The checks every recurrent kind makes; subclasses add theirs."""
        if self.direction not in DIRECTIONS:
            raise self._err("direction", f"{self.direction!r} is not one of {DIRECTIONS}")
        if self.merge not in MERGE_MODES:
            raise self._err("merge", f"{self.merge!r} is not one of {MERGE_MODES}")
        D = self.num_directions
        if self.W is None or self.W.ndim != 3 or self.W.shape[0] != D:
            raise self._err("W", f"expected shape (num_directions={D}, gates*hidden, input), "
                                 f"got {None if self.W is None else self.W.shape}")
        if self.R is None or self.R.ndim != 3:
            raise self._err("R", "expected a 3-D array (num_directions, gates*hidden, hidden)")
        G = self.W.shape[1]
        if G % self.gates or G == 0:
            raise self._err("W", f"dimension 1 ({G}) is not {self.gates} x hidden_size")
        if len(self.activations) != self.n_acts * D:
            raise self._err("activations", f"{len(self.activations)} given, expected {self.n_acts * D} "
                                           f"({self.n_acts} per direction)")
        for a in self.activations:
            if a.name not in RNN_ACTIVATIONS:
                raise self._err("activations", f"{a.name!r} is not an ONNX RNN activation")
        if self.clip is not None and not (self.clip > 0 and math.isfinite(self.clip)):
            raise self._err("clip", f"must be a positive finite number, got {self.clip}")
        check_shape(self, "Wb", self.Wb, (D, G), required=False)
        check_shape(self, "Rb", self.Rb, (D, G), required=False)
        check_shape(self, "W", self.W, (D, G, self.input_size))
        if self.input_size == 0:
            raise self._err("W", "input size is 0")
        P = self.unit_output_size
        check_shape(self, "R", self.R, (D, G, P))
        check_shape(self, "initial_h", self.initial_h, (D, P), required=False)

    # ------------------------------------------------------------------ packing
    def row_kind(self, builder) -> int:
        """The specialised row kind of this layer's directions."""
        raise NotImplementedError

    def pack_direction(self, builder, row, d: int, H: int, Hp: int, Wb: np.ndarray, Rb: np.ndarray) -> None:
        """The kind's own part of direction ``d``'s row: its matrices, bias and fields."""
        raise NotImplementedError

    def emitted(self, row) -> int:
        """The state offset of what a direction outputs after each frame: its h."""
        return int(row[C_STATE_H])

    def pack(self, builder) -> None:
        D, H, P = self.num_directions, self.hidden_size, self.unit_output_size
        Hp, DW = builder.pad(H), D * P
        dst = builder.next_sequence()
        kind = self.row_kind(builder)
        for d in range(D):
            acts = self.activations[d * self.n_acts:(d + 1) * self.n_acts]
            G = self.W.shape[1]
            Wb = self.Wb[d] if self.Wb is not None else np.zeros(G)
            Rb = self.Rb[d] if self.Rb is not None else np.zeros(G)
            h0 = self.initial_h[d] if self.initial_h is not None else np.zeros(P)
            r = builder.row(kind, dst, DW, col=d * P, out=P)
            r[C_HIDDEN], r[C_GATE_STRIDE] = H, Hp
            r[C_REVERSE] = self.direction == "reverse" or d == 1
            r[C_ACT_F:C_ACT_F + len(acts)] = [builder.code(a) for a in acts]
            r[C_PARAMS] = builder.params(acts, self.clip)
            r[C_STATE_H] = builder.add_state(h0)
            self.pack_direction(builder, r, d, H, Hp, Wb, Rb)
            r[C_EMIT] = self.emitted(r)
        builder.advance(dst, DW)
        if D == 2 and self.merge != "concat":
            dst = builder.next_sequence()
            r = builder.row(K_MERGE, dst, P, col=0, out=P)
            r[MERGE_MODE] = MERGE_CODES[self.merge]
            builder.advance(dst, P)
