"""LayerNorm rows (``K_NORM``): each consecutive group of ``NORM_GROUP`` values of a frame is
normalised to zero mean and unit variance (biased, as ONNX LayerNormalization), then scaled
by gamma and shifted by beta."""

import math

from numba import njit

from . import RowKind
from ..config import JIT
from ..layout import C_COL, C_OUT, FIRST_KIND_FIELD

K_NORM = 15

NORM_GROUP = FIRST_KIND_FIELD       # values per normalised group
NORM_GAMMA = FIRST_KIND_FIELD + 1   # W_: NORM_GROUP scales
NORM_BETA = FIRST_KIND_FIELD + 2    # W_: NORM_GROUP shifts
NORM_EPS = FIRST_KIND_FIELD + 3     # W_: epsilon (one value)


@njit(**JIT)
def norm_rows(w, row, src, dst):
    O, col, n = row[C_OUT], row[C_COL], row[NORM_GROUP]
    gamma = w[row[NORM_GAMMA]:row[NORM_GAMMA] + n]
    beta = w[row[NORM_BETA]:row[NORM_BETA] + n]
    eps = w[row[NORM_EPS]]
    for t in range(src.shape[0]):
        for g0 in range(0, O, n):
            a = src[t, g0:g0 + n]
            o = dst[t, col + g0:col + g0 + n]
            mean = 0.0
            for j in range(n):
                mean += a[j]
            mean /= n
            var = 0.0
            for j in range(n):
                d = a[j] - mean
                var += d * d
            inv = 1.0 / math.sqrt(var / n + eps)
            for j in range(n):
                o[j] = (a[j] - mean) * inv * gamma[j] + beta[j]


ROW_KINDS = (RowKind(K_NORM, "LayerNorm", norm_rows, args=("w", "row", "src", "dst")),)
