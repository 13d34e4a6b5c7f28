"""Matrix-vector kernels over transposed, gate-packed weights.

Weights are stored transposed, ``Wt`` of shape (K, G): the innermost loop runs over G
contiguous gate outputs, four inputs per pass, which LLVM turns into SIMD FMAs. The batched
projection applies exactly the same per-element arithmetic to every frame, so one frame
through ``project`` gives bit-identical results to T frames through it.

``Wt`` may hold float32/float64 values, bf16 bit patterns (uint16) or int8 codes; for int8,
``scale`` (K,) multiplies each stored row (one scale per input). ``load`` widens an element.
"""

from numba import njit, types
from numba.extending import overload

from .config import JIT
from .layout import FMT_BF16, FMT_FLOAT
from .views import bf16_to_f32, matrix, matrix_i8, matrix_u16


def load(W, k, g):
    """Element (k, g) of a weight matrix as a float (bf16 and int8 codes widened)."""


@overload(load, jit_options=JIT, inline="always")
def _load(W, k, g):
    if W.dtype == types.uint16:
        return lambda W, k, g: bf16_to_f32(W[k, g])
    if W.dtype == types.int8:
        return lambda W, k, g: types.float32(W[k, g])
    return lambda W, k, g: W[k, g]


@njit(**JIT)
def _input(x, k, scale):
    if scale is None:
        return x[k]
    return x[k] * scale[k]


@njit(**JIT)
def gemv_acc(Wt, x, y, scale=None):
    """y[:G] += x @ Wt for Wt (K, G), x (K,)."""
    K, G = Wt.shape
    k = 0
    while k + 4 <= K:
        x0 = _input(x, k, scale)
        x1 = _input(x, k + 1, scale)
        x2 = _input(x, k + 2, scale)
        x3 = _input(x, k + 3, scale)
        for g in range(G):
            y[g] += (load(Wt, k, g) * x0 + load(Wt, k + 1, g) * x1
                     + load(Wt, k + 2, g) * x2 + load(Wt, k + 3, g) * x3)
        k += 4
    while k < K:
        x0 = _input(x, k, scale)
        for g in range(G):
            y[g] += load(Wt, k, g) * x0
        k += 1


@njit(**JIT)
def project(Wt, bias, X, Z, scale=None):
    """Z[t, :G] = bias + X[t] @ Wt for every frame t (the input projection of a chunk).

    Frames are processed in blocks so that a block of weight rows is reused from cache;
    the arithmetic per (t, g) is the same as ``gemv_acc``.
    """
    T = X.shape[0]
    K, G = Wt.shape
    TB = 8
    for t0 in range(0, T, TB):
        t1 = min(t0 + TB, T)
        for t in range(t0, t1):
            z = Z[t]
            for g in range(G):
                z[g] = bias[g]
        k = 0
        while k + 4 <= K:
            for t in range(t0, t1):
                x = X[t]
                x0 = _input(x, k, scale)
                x1 = _input(x, k + 1, scale)
                x2 = _input(x, k + 2, scale)
                x3 = _input(x, k + 3, scale)
                z = Z[t]
                for g in range(G):
                    z[g] += (load(Wt, k, g) * x0 + load(Wt, k + 1, g) * x1
                             + load(Wt, k + 2, g) * x2 + load(Wt, k + 3, g) * x3)
            k += 4
        while k < K:
            for t in range(t0, t1):
                x0 = _input(X[t], k, scale)
                z = Z[t]
                for g in range(G):
                    z[g] += load(Wt, k, g) * x0
            k += 1


@njit(inline="always", **JIT)
def gemv_acc_stored(w, off, K, G, fmt, soff, x, y):
    """``gemv_acc`` on the (K, G) matrix stored at w[off:] in format ``fmt`` (scales at w[soff:])."""
    if fmt == FMT_FLOAT:
        gemv_acc(matrix(w, off, K, G), x, y)
    elif fmt == FMT_BF16:
        gemv_acc(matrix_u16(w, off, K, G), x, y)
    else:
        gemv_acc(matrix_i8(w, off, K, G), x, y, w[soff:soff + K])


@njit(inline="always", **JIT)
def project_stored(w, off, K, G, fmt, soff, bias, X, Z):
    """``project`` with the (K, G) matrix stored at w[off:] in format ``fmt``."""
    if fmt == FMT_FLOAT:
        project(matrix(w, off, K, G), bias, X, Z)
    elif fmt == FMT_BF16:
        project(matrix_u16(w, off, K, G), bias, X, Z)
    else:
        project(matrix_i8(w, off, K, G), bias, X, Z, w[soff:soff + K])
