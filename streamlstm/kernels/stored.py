"""The stored matrix: a (K, G) matrix in the flat weight buffer, in one of four formats.

A stored matrix is described by five table fields (``layout.M_*``): offset, rows K, columns G,
format and scale offset. ``columns_acc`` is the one place that turns a description into a
typed view (float values, bf16 bit patterns as uint16, int8 codes with one scale per stored
row, bf16 pairs of two stored rows as uint32) and runs ``simd.panel_acc`` over a range of its columns. Every product of the kernels
(``split.stored_acc``, ``split.stored_project``) and the helper thread's half of a shared
product go through it.
"""

from numba import njit, types
from numba.extending import overload

from .config import JIT
from .layout import FMT_BF16, FMT_BF16_DOT, FMT_FLOAT, M_COLS, M_FMT, M_OFF, M_ROWS, M_SCALES
from .simd import panel_acc
from .views import matrix, matrix_i8, matrix_u16, matrix_u32, vector


@njit(inline="always", **JIT)
def described(row, col):
    """(offset, K, G, format, scale offset) of the stored matrix whose fields start at ``col``."""
    return (row[col + M_OFF], row[col + M_ROWS], row[col + M_COLS], row[col + M_FMT],
            row[col + M_SCALES])


@njit(inline="always", **JIT)
def columns_acc(w, m, x, y, c0, c1):
    """y[..., c0:c1] += x @ M[:, c0:c1] for the stored matrix ``m`` of buffer ``w`` (1-D x, y:
    one row; 2-D: row-wise). c0, c1 as in ``panel_acc`` (c1 = -1: G)."""
    off, K, G, fmt, soff = m
    if fmt == FMT_FLOAT:
        panel_acc(matrix(w, off, K, G), x, y, None, c0, c1)
    elif fmt == FMT_BF16:
        panel_acc(matrix_u16(w, off, K, G), x, y, None, c0, c1)
    elif fmt == FMT_BF16_DOT:
        pairs_acc(matrix_u32(w, off, (K + 1) // 2, G), x, y, c0, c1)
    else:
        panel_acc(matrix_i8(w, off, K, G), x, y, vector(w, soff, K), c0, c1)


def pairs_acc(W, x, y, c0, c1):
    """``panel_acc`` over bf16 pairs: float32 activations only (a Plan refuses the format for
    float64, whose kernels get an empty branch)."""


@overload(pairs_acc, inline="always", jit_options=JIT)
def _pairs_acc(W, x, y, c0, c1):
    if y.dtype != types.float32:
        return lambda W, x, y, c0, c1: None
    return lambda W, x, y, c0, c1: panel_acc(W, x, y, None, c0, c1)
