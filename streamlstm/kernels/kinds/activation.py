"""Activation rows (``K_ACT``): dst[t] = act(src[t]) elementwise or Softmax; the functions
themselves are in ``activations.py``."""

from numba import njit

from . import RowKind
from .. import activations as A
from ..config import JIT
from ..layout import C_ACT_F, C_OUT, C_PARAMS, PAR_F_ALPHA, PAR_F_BETA

K_ACT = 6


@njit(inline="always", **JIT)
def activation_rows(w, row, src, dst):
    """An Activation unit over every row t of src."""
    H = row[C_OUT]
    pa = row[C_PARAMS]
    for t in range(src.shape[0]):
        o = dst[t]
        a = src[t]
        for j in range(H):
            o[j] = a[j]
        A.apply(row[C_ACT_F], w[pa + PAR_F_ALPHA], w[pa + PAR_F_BETA], o[0:H])


ROW_KINDS = (RowKind(K_ACT, "Activation", activation_rows, args=("w", "row", "src", "dst"), group="core"),)
