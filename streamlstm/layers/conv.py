"""The convolution units, both ``W`` (C_out, C_in / groups, k) with bias ``b`` (C_out,):

- ``Conv1d``: within a frame, the frame a channel-first (C_in, length) map; stride,
  dilation, padding (left, right) with zeros, reflect or edge values, and groups. The output
  frame is the channel-first (C_out, L_out) map.
- ``TimeConv1d``: over time, one frame a vector of C_in values. It keeps its last
  ``padding[0]`` inputs in the stream's state, so stepping frame by frame equals the
  convolution of the whole sequence with ``padding`` zeros before and after it (left + right =
  (k - 1) * dilation: one output per frame). A causal layer (right = 0) streams; one with
  right padding needs future frames and runs only in ``Model.run``.

Maths: ``kernels/kinds/conv.py``: windows gathered (im2col), one product over the packed
(window, C_out) matrix. A grouped convolution is packed as the full matrix with zero blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..kernels.kinds.conv import (
    CONV_INDEX, CONV_POSITIONS, K_CONV, K_TCONV, TCONV_DILATION, TCONV_HIST, TCONV_LEFT, TCONV_TAPS,
)
from ..kernels.layout import C_ACT_F, C_BIAS, C_PARAMS, C_WX
from .base import ActLike, Layer, as_act, check_shape, gate_packed_vec, register

PAD_MODES = ("zeros", "reflect", "edge")


def _int(layer: Layer, fieldname: str, v, low: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
        raise layer._err(fieldname, f"expected an integer >= {low}, got {v!r}")
    return int(v)


def _pair(layer: Layer, v) -> tuple[int, int]:
    try:
        left, right = v
    except (TypeError, ValueError):
        raise layer._err("padding", f"expected (left, right), got {v!r}") from None
    return _int(layer, "padding", left, 0), _int(layer, "padding", right, 0)


class _Conv(Layer):
    """What both convolutions share: the weights, groups and the activation after them."""

    array_fields = ("W", "b")

    def _check_weights(self) -> None:
        self._freeze_arrays()
        self._set("activation", as_act(self.activation))
        if self.activation.name == "Softmax":
            raise self._err("activation", "Softmax is not elementwise; add it as its own unit")
        if self.W is None or self.W.ndim != 3 or 0 in self.W.shape:
            raise self._err("W", f"expected a non-empty (C_out, C_in / groups, k) array, got "
                                 f"{None if self.W is None else self.W.shape}")
        check_shape(self, "W", self.W, self.W.shape)
        check_shape(self, "b", self.b, (self.W.shape[0],), required=False)
        self._set("groups", _int(self, "groups", self.groups, 1))
        self._set("dilation", _int(self, "dilation", self.dilation, 1))
        if self.W.shape[0] % self.groups:
            raise self._err("groups", f"{self.groups} groups do not divide {self.W.shape[0]} output channels")

    @property
    def in_channels(self) -> int:
        return int(self.W.shape[1] * self.groups)

    @property
    def out_channels(self) -> int:
        return int(self.W.shape[0])

    @property
    def taps(self) -> int:
        return int(self.W.shape[2])

    def window_matrix(self) -> np.ndarray:
        """The (C_in * k, C_out) matrix of the product: row c * k + j is input channel c, tap j."""
        Co, Cg, k = self.W.shape
        per_group = Co // self.groups
        M = np.zeros((self.in_channels, k, Co))
        for o in range(Co):
            g = o // per_group
            M[g * Cg:(g + 1) * Cg, :, o] = self.W[o]
        return M.reshape(self.in_channels * k, Co)

    def _pack_product(self, builder, r, Kc_matrix: np.ndarray) -> int:
        Co = self.out_channels
        G = builder.pad(Co)
        M = np.zeros((Kc_matrix.shape[0], G))
        M[:, :Co] = Kc_matrix
        builder.set_matrix(r, C_WX, M)
        r[C_BIAS] = builder.add(gate_packed_vec(self.b if self.b is not None else np.zeros(Co), 1, Co, G))
        r[C_ACT_F] = builder.code(self.activation)
        r[C_PARAMS] = builder.params((self.activation,), None)
        return G


@register
@dataclass(frozen=True, eq=False, repr=False)
class Conv1d(_Conv):
    W: np.ndarray
    b: np.ndarray | None = None
    length: int = 0
    stride: int = 1
    dilation: int = 1
    padding: tuple = (0, 0)
    pad_mode: str = "zeros"
    groups: int = 1
    activation: ActLike = "Identity"
    name: str = ""

    kind = "Conv1d"

    def __post_init__(self):
        self._check_weights()
        self._set("length", _int(self, "length", self.length, 1))
        self._set("stride", _int(self, "stride", self.stride, 1))
        self._set("padding", _pair(self, self.padding))
        if self.pad_mode not in PAD_MODES:
            raise self._err("pad_mode", f"expected one of {PAD_MODES}, got {self.pad_mode!r}")
        if self.pad_mode == "reflect" and max(self.padding) >= self.length:
            raise self._err("padding", f"reflect padding {self.padding} needs a length above it, got {self.length}")
        if self.out_length < 1:
            raise self._err("length", f"a frame of {self.length} is shorter than the window "
                                      f"{(self.taps - 1) * self.dilation + 1}")

    @property
    def out_length(self) -> int:
        span = (self.taps - 1) * self.dilation + 1
        return (self.length + sum(self.padding) - span) // self.stride + 1

    @property
    def input_size(self) -> int:
        return self.in_channels * self.length

    def output_width(self, width: int) -> int:
        return self.out_channels * self.out_length

    def describe(self) -> str:
        return (f" ({self.in_channels}, {self.length}) -> ({self.out_channels}, {self.out_length}) k={self.taps}"
                f" stride={self.stride} dilation={self.dilation} padding={self.padding} {self.pad_mode}"
                + (f" groups={self.groups}" if self.groups > 1 else ""))

    def positions(self) -> np.ndarray:
        """(L_out, C_in * k): the frame position each window element reads (-1: a zero)."""
        L, k, left = self.length, self.taps, self.padding[0]
        q = (np.arange(self.out_length)[:, None] * self.stride + np.arange(k)[None, :] * self.dilation - left)
        if self.pad_mode == "reflect":
            q = np.where(q < 0, -q, q)
            q = np.where(q >= L, 2 * (L - 1) - q, q)
        elif self.pad_mode == "edge":
            q = np.clip(q, 0, L - 1)
        inside = (q >= 0) & (q < L)
        c = np.arange(self.in_channels)[None, :, None]
        pos = np.where(inside[:, None, :], c * L + q[:, None, :], -1)
        return pos.reshape(self.out_length, self.in_channels * k)

    def pack(self, builder) -> None:
        Lo = self.out_length
        O = self.out_channels * Lo
        dst = builder.next_sequence()
        r = builder.row(K_CONV, dst, O, col=0, out=O)
        G = self._pack_product(builder, r, self.window_matrix())
        r[CONV_INDEX] = builder.add_ints(self.positions())
        r[CONV_POSITIONS] = Lo
        builder.need(gates=Lo * G, cols=Lo * self.in_channels * self.taps)
        builder.advance(dst, O)


@register
@dataclass(frozen=True, eq=False, repr=False)
class TimeConv1d(_Conv):
    W: np.ndarray
    b: np.ndarray | None = None
    dilation: int = 1
    padding: tuple | None = None
    groups: int = 1
    activation: ActLike = "Identity"
    name: str = ""

    kind = "TimeConv1d"

    def __post_init__(self):
        self._check_weights()
        span = (self.taps - 1) * self.dilation
        self._set("padding", (span, 0) if self.padding is None else _pair(self, self.padding))
        if sum(self.padding) != span:
            raise self._err("padding", f"left + right must be (k - 1) * dilation = {span} (one output per "
                                       f"frame), got {self.padding}")

    @property
    def streamable(self) -> bool:
        return self.padding[1] == 0

    @property
    def input_size(self) -> int:
        return self.in_channels

    def output_width(self, width: int) -> int:
        return self.out_channels

    def describe(self) -> str:
        return (f" k={self.taps} dilation={self.dilation} padding={self.padding}"
                + (" causal" if self.streamable else " non-causal") + (f" groups={self.groups}" if self.groups > 1 else ""))

    def pack(self, builder) -> None:
        Ci, k = self.in_channels, self.taps
        # tap-major windows: row j * C_in + c is tap j of channel c
        M = self.window_matrix().reshape(Ci, k, -1).transpose(1, 0, 2).reshape(k * Ci, -1)
        O = self.out_channels
        dst = builder.next_sequence()
        r = builder.row(K_TCONV, dst, O, col=0, out=O)
        G = self._pack_product(builder, r, M)
        r[TCONV_TAPS], r[TCONV_DILATION], r[TCONV_LEFT] = k, self.dilation, self.padding[0]
        r[TCONV_HIST] = builder.add_state(np.zeros(self.padding[0] * Ci))
        builder.need(gates=G, cols=k * Ci)
        builder.advance(dst, O)
