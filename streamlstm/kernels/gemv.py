"""Matrix products over the stored (panel-major, gate-packed) weights.

``gemv_acc`` adds x @ Wt into y; ``project`` sets Z = bias + X @ Wt for every row of X (the
input projection of a chunk, or of a pool's streams). Both run ``simd.panel_acc``, which gives
every row the same FMA chain, so one frame, T frames and n pool streams agree bit for bit.
The ``*_stored`` variants take the matrix from the weight buffer in its storage format
(float, bf16 bits, or int8 codes with one scale per stored row); given a live helper mailbox
``mb`` (see ``split.py``), their one-row products run on two cores.
"""

from numba import njit

from .config import JIT
from .layout import FMT_BF16, FMT_FLOAT
from .simd import panel_acc
from .split import split_acc
from .views import matrix, matrix_i8, matrix_u16, vector


@njit(inline="always", **JIT)
def gemv_acc(Wt, x, y, scale=None):
    """y[:G] += x @ Wt for the (K, G) panel-major Wt and x (K,) (or row-wise for 2-D x, y)."""
    panel_acc(Wt, x, y, scale)


@njit(**JIT)
def project(Wt, bias, X, Z, scale=None, mb=None):
    """Z[t, :G] = bias + X[t] @ Wt for every row t."""
    G = Wt.shape[1]
    for t in range(X.shape[0]):
        z = Z[t]
        for g in range(G):
            z[g] = bias[g]
    if X.shape[0] == 1:
        split_acc(Wt, X[0], Z[0], scale, mb)
    else:
        panel_acc(Wt, X, Z, scale)


@njit(inline="always", **JIT)
def gemv_acc_stored(w, off, K, G, fmt, soff, x, y, mb=None):
    """``gemv_acc`` on the (K, G) matrix stored at w[off:] in format ``fmt`` (scales at w[soff:])."""
    if fmt == FMT_FLOAT:
        split_acc(matrix(w, off, K, G), x, y, None, mb)
    elif fmt == FMT_BF16:
        split_acc(matrix_u16(w, off, K, G), x, y, None, mb)
    else:
        split_acc(matrix_i8(w, off, K, G), x, y, vector(w, soff, K), mb)


@njit(inline="always", **JIT)
def project_stored(w, off, K, G, fmt, soff, bias, X, Z, mb=None):
    """``project`` with the (K, G) matrix stored at w[off:] in format ``fmt``."""
    if fmt == FMT_FLOAT:
        project(matrix(w, off, K, G), bias, X, Z, None, mb)
    elif fmt == FMT_BF16:
        project(matrix_u16(w, off, K, G), bias, X, Z, None, mb)
    else:
        project(matrix_i8(w, off, K, G), bias, X, Z, vector(w, soff, K), mb)
