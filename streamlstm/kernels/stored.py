"""The stored matrix: a (K, G) matrix in the flat weight buffer, in one of five formats.

A stored matrix is described by five table fields (``layout.M_*``): offset, rows K, columns G,
format and scale offset. ``columns_acc`` is the one place that turns a description into a
typed view (float values, bf16 bit patterns as uint16, int8 codes with one scale per stored
row, bf16 pairs of two stored rows as uint32, int8 quads of four stored rows as int32 with one
scale per column) and runs ``simd.panel_acc`` over a range of its columns. Every product of
the kernels (``split.stored_acc``, ``split.stored_project``) and the helper thread's half of a
shared product go through it. It is compiled for the formats of the
caller's ``KindSet``: a plan stores every matrix in one format, so its kernels hold the
products of that format alone (each format's products compile to much code).
"""

from numba import njit, types
from numba.extending import overload

from .config import JIT
from .layout import FMT_BF16, FMT_BF16_DOT, FMT_FLOAT, FMT_INT8, FMT_INT8_DOT, M_COLS, M_FMT, M_OFF, M_ROWS, M_SCALES
from .simd import panel_acc
from .views import matrix, matrix_i8, matrix_i32, matrix_u16, matrix_u32, vector


@njit(inline="always", **JIT)
def described(row, col):
    """(offset, K, G, format, scale offset) of the stored matrix whose fields start at ``col``."""
    return (row[col + M_OFF], row[col + M_ROWS], row[col + M_COLS], row[col + M_FMT],
            row[col + M_SCALES])


def columns_acc(kinds, w, m, x, y, c0, c1):
    """y[..., c0:c1] += x @ M[:, c0:c1] for the stored matrix ``m`` of buffer ``w`` (1-D x, y:
    one row; 2-D: row-wise). c0, c1 as in ``panel_acc`` (c1 = -1: G). Compiled for the weight
    formats of ``kinds`` (a ``KindSet``) alone; a matrix of another format adds nothing."""


@njit(inline="always", **JIT)
def float_acc(w, m, x, y, c0, c1):
    off, K, G, fmt, soff = m
    if fmt == FMT_FLOAT:
        panel_acc(matrix(w, off, K, G), x, y, None, c0, c1)


@njit(inline="always", **JIT)
def bf16_acc(w, m, x, y, c0, c1):
    off, K, G, fmt, soff = m
    if fmt == FMT_BF16:
        panel_acc(matrix_u16(w, off, K, G), x, y, None, c0, c1)


@njit(inline="always", **JIT)
def int8_acc(w, m, x, y, c0, c1):
    off, K, G, fmt, soff = m
    if fmt == FMT_INT8:
        panel_acc(matrix_i8(w, off, K, G), x, y, vector(w, soff, K), c0, c1)


@njit(inline="always", **JIT)
def bf16_dot_acc(w, m, x, y, c0, c1):
    off, K, G, fmt, soff = m
    if fmt == FMT_BF16_DOT:
        pairs_acc(matrix_u32(w, off, (K + 1) // 2, G), x, y, c0, c1)


@njit(inline="always", **JIT)
def int8_dot_acc(w, m, x, y, c0, c1):
    off, K, G, fmt, soff = m
    if fmt == FMT_INT8_DOT:
        quads_acc(matrix_i32(w, off, (K + 3) // 4, G), x, y, vector(w, soff, G), c0, c1)


@njit(inline="always", **JIT)
def any_format_acc(w, m, x, y, c0, c1):
    fmt = m[3]
    if fmt == FMT_FLOAT:
        float_acc(w, m, x, y, c0, c1)
    elif fmt == FMT_BF16:
        bf16_acc(w, m, x, y, c0, c1)
    elif fmt == FMT_BF16_DOT:
        bf16_dot_acc(w, m, x, y, c0, c1)
    elif fmt == FMT_INT8_DOT:
        int8_dot_acc(w, m, x, y, c0, c1)
    else:
        int8_acc(w, m, x, y, c0, c1)


_ONE_FORMAT = {FMT_FLOAT: float_acc, FMT_BF16: bf16_acc, FMT_INT8: int8_acc, FMT_BF16_DOT: bf16_dot_acc,
               FMT_INT8_DOT: int8_dot_acc}


@overload(columns_acc, inline="always", jit_options=JIT)
def _columns_acc(kinds, w, m, x, y, c0, c1):
    formats = kinds.formats
    acc = _ONE_FORMAT[formats[0]] if len(formats) == 1 else any_format_acc

    def for_formats(kinds, w, m, x, y, c0, c1):
        acc(w, m, x, y, c0, c1)
    return for_formats


def pairs_acc(W, x, y, c0, c1):
    """``panel_acc`` over bf16 pairs: float32 activations only (a Plan refuses the format for
    float64, whose kernels get an empty branch)."""


@overload(pairs_acc, inline="always", jit_options=JIT)
def _pairs_acc(W, x, y, c0, c1):
    if y.dtype != types.float32:
        return lambda W, x, y, c0, c1: None
    return lambda W, x, y, c0, c1: panel_acc(W, x, y, None, c0, c1)


def quads_acc(W, x, y, scale, c0, c1):
    """``panel_acc`` over int8 quads: float32 activations only, as ``pairs_acc``."""


@overload(quads_acc, inline="always", jit_options=JIT)
def _quads_acc(W, x, y, scale, c0, c1):
    if y.dtype != types.float32:
        return lambda W, x, y, scale, c0, c1: None
    return lambda W, x, y, scale, c0, c1: panel_acc(W, x, y, scale, c0, c1)
