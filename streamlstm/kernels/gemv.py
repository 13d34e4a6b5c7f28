"""Matrix-vector kernels over transposed, gate-packed weights.

Weights are stored transposed, ``Wt`` of shape (K, G): the innermost loop runs over G
contiguous gate outputs, four inputs per pass, which LLVM turns into SIMD FMAs. The batched
projection applies exactly the same per-element arithmetic to every frame, so one frame
through ``project`` gives bit-identical results to T frames through it.

``Wt`` may hold float32/float64 values, bf16 bit patterns (uint16) or int8 codes; for int8,
``scale`` (K,) multiplies each stored row (one scale per input). ``load`` widens an element.
"""

from numba import njit, prange, types
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
def gemv_acc(Wt, x, y, scale=None, g0=0, g1=-1):
    """y[g0:g1] += x @ Wt[:, g0:g1] for Wt (K, G), x (K,); g1 = -1 means G."""
    K, G = Wt.shape
    if g1 < 0:
        g1 = G
    k = 0
    while k + 4 <= K:
        x0 = _input(x, k, scale)
        x1 = _input(x, k + 1, scale)
        x2 = _input(x, k + 2, scale)
        x3 = _input(x, k + 3, scale)
        for g in range(g0, g1):
            y[g] += (load(Wt, k, g) * x0 + load(Wt, k + 1, g) * x1
                     + load(Wt, k + 2, g) * x2 + load(Wt, k + 3, g) * x3)
        k += 4
    while k < K:
        x0 = _input(x, k, scale)
        for g in range(g0, g1):
            y[g] += load(Wt, k, g) * x0
        k += 1


@njit(**JIT)
def project(Wt, bias, X, Z, scale=None, g0=0, g1=-1):
    """Z[t, g0:g1] = bias + X[t] @ Wt for every frame t (the input projection of a chunk).

    Frames are processed in blocks so that a block of weight rows is reused from cache;
    the arithmetic per (t, g) is the same as ``gemv_acc``.
    """
    T = X.shape[0]
    K, G = Wt.shape
    if g1 < 0:
        g1 = G
    TB = 8
    for t0 in range(0, T, TB):
        t1 = min(t0 + TB, T)
        for t in range(t0, t1):
            z = Z[t]
            for g in range(g0, g1):
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
                for g in range(g0, g1):
                    z[g] += (load(Wt, k, g) * x0 + load(Wt, k + 1, g) * x1
                             + load(Wt, k + 2, g) * x2 + load(Wt, k + 3, g) * x3)
            k += 4
        while k < K:
            for t in range(t0, t1):
                x0 = _input(X[t], k, scale)
                z = Z[t]
                for g in range(g0, g1):
                    z[g] += load(Wt, k, g) * x0
            k += 1


# Matrices with at least this many weights are split by columns across threads (threads > 1).
PARALLEL_MIN_WEIGHTS = 1 << 18


@njit(parallel=True, **JIT)
def _gemv_acc_split(Wt, x, y, scale, threads):
    chunk = ((Wt.shape[1] + threads - 1) // threads + 15) // 16 * 16
    for c in prange(threads):
        g0 = c * chunk
        g1 = min(Wt.shape[1], g0 + chunk)
        if g0 < g1:
            gemv_acc(Wt, x, y, scale, g0, g1)


@njit(parallel=True, **JIT)
def _project_split(Wt, bias, X, Z, scale, threads):
    chunk = ((Wt.shape[1] + threads - 1) // threads + 15) // 16 * 16
    for c in prange(threads):
        g0 = c * chunk
        g1 = min(Wt.shape[1], g0 + chunk)
        if g0 < g1:
            project(Wt, bias, X, Z, scale, g0, g1)


@njit(inline="always", **JIT)
def _gemv_acc_threads(Wt, x, y, scale, threads):
    K, G = Wt.shape
    if threads > 1 and K * G >= PARALLEL_MIN_WEIGHTS:
        _gemv_acc_split(Wt, x, y, scale, threads)
    else:
        gemv_acc(Wt, x, y, scale)


@njit(inline="always", **JIT)
def _project_threads(Wt, bias, X, Z, scale, threads):
    K, G = Wt.shape
    if threads > 1 and K * G >= PARALLEL_MIN_WEIGHTS:
        _project_split(Wt, bias, X, Z, scale, threads)
    else:
        project(Wt, bias, X, Z, scale)


@njit(inline="always", **JIT)
def gemv_acc_stored(w, off, K, G, fmt, soff, x, y, threads):
    """``gemv_acc`` on the (K, G) matrix stored at w[off:] in format ``fmt`` (scales at w[soff:]),
    split by columns across ``threads`` when it is large."""
    if fmt == FMT_FLOAT:
        _gemv_acc_threads(matrix(w, off, K, G), x, y, None, threads)
    elif fmt == FMT_BF16:
        _gemv_acc_threads(matrix_u16(w, off, K, G), x, y, None, threads)
    else:
        _gemv_acc_threads(matrix_i8(w, off, K, G), x, y, w[soff:soff + K], threads)


@njit(inline="always", **JIT)
def project_stored(w, off, K, G, fmt, soff, bias, X, Z, threads):
    """``project`` with the (K, G) matrix stored at w[off:] in format ``fmt``."""
    if fmt == FMT_FLOAT:
        _project_threads(matrix(w, off, K, G), bias, X, Z, None, threads)
    elif fmt == FMT_BF16:
        _project_threads(matrix_u16(w, off, K, G), bias, X, Z, None, threads)
    else:
        _project_threads(matrix_i8(w, off, K, G), bias, X, Z, w[soff:soff + K], threads)
