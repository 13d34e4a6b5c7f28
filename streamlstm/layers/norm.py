"""The LayerNorm unit: each consecutive group of ``gamma.size`` values of a frame (the last
axis of a frame tensor) is normalised, y = (x - mean) / sqrt(var + eps) * gamma + beta, with
the biased variance (ONNX LayerNormalization). Maths: ``kernels/kinds/norm.py``.

BatchNorm has no unit: the converters fold it into the neighbouring Conv1d or Dense, or
emit it as an ``Elementwise`` scale and shift."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..kernels.kinds.norm import K_NORM, NORM_BETA, NORM_EPS, NORM_GAMMA, NORM_GROUP
from .base import Layer, check_shape, register


@register
@dataclass(frozen=True, eq=False, repr=False)
class LayerNorm(Layer):
    gamma: np.ndarray
    beta: np.ndarray | None = None
    eps: float = 1e-5
    name: str = ""

    kind = "LayerNorm"
    array_fields = ("gamma", "beta")

    def __post_init__(self):
        self._freeze_arrays()
        if self.gamma is None or self.gamma.ndim != 1 or self.gamma.size == 0:
            raise self._err("gamma", "expected a non-empty vector")
        check_shape(self, "gamma", self.gamma, self.gamma.shape)
        check_shape(self, "beta", self.beta, self.gamma.shape, required=False)
        eps = float(self.eps)
        if not (math.isfinite(eps) and eps > 0):
            raise self._err("eps", f"expected a positive finite number, got {self.eps!r}")
        self._set("eps", eps)

    def output_width(self, width: int) -> int:
        if width % self.gamma.size:
            raise self._err("gamma", f"{self.gamma.size} values per group do not divide a frame of {width}")
        return width

    def describe(self) -> str:
        return f" group={self.gamma.size}"

    def pack(self, builder) -> None:
        W, n = builder.width, int(self.gamma.size)
        dst = builder.next_sequence()
        r = builder.row(K_NORM, dst, W, col=0, out=W)
        r[NORM_GROUP] = n
        r[NORM_GAMMA] = builder.add(self.gamma)
        r[NORM_BETA] = builder.add(self.beta if self.beta is not None else np.zeros(n))
        r[NORM_EPS] = builder.add(np.array([self.eps]))
        builder.advance(dst, W)
