"""Matrix-vector kernels over transposed, gate-packed weights.

Weights are stored transposed, ``Wt`` of shape (K, G): the innermost loop runs over G
contiguous gate outputs, four inputs per pass, which LLVM turns into SIMD FMAs. The batched
projection applies exactly the same per-element arithmetic to every frame, so one frame
through ``project`` gives bit-identical results to T frames through it.
"""

from numba import njit

from .config import JIT


@njit(**JIT)
def gemv_acc(Wt, x, y):
    """y[:G] += x @ Wt for Wt (K, G), x (K,)."""
    K, G = Wt.shape
    k = 0
    while k + 4 <= K:
        x0 = x[k]
        x1 = x[k + 1]
        x2 = x[k + 2]
        x3 = x[k + 3]
        for g in range(G):
            y[g] += Wt[k, g] * x0 + Wt[k + 1, g] * x1 + Wt[k + 2, g] * x2 + Wt[k + 3, g] * x3
        k += 4
    while k < K:
        x0 = x[k]
        for g in range(G):
            y[g] += Wt[k, g] * x0
        k += 1


@njit(**JIT)
def gemv_set(Wt, x, bias, y):
    """y[:G] = bias + x @ Wt."""
    G = Wt.shape[1]
    for g in range(G):
        y[g] = bias[g]
    gemv_acc(Wt, x, y)


@njit(**JIT)
def project(Wt, bias, X, Z):
    """Z[t, :G] = bias + X[t] @ Wt for every frame t (the input projection of a chunk).

    Frames are processed in blocks so that a block of weight rows is reused from cache;
    the arithmetic per (t, g) is the same as ``gemv_set``.
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
            w0 = Wt[k]
            w1 = Wt[k + 1]
            w2 = Wt[k + 2]
            w3 = Wt[k + 3]
            for t in range(t0, t1):
                x = X[t]
                x0 = x[k]
                x1 = x[k + 1]
                x2 = x[k + 2]
                x3 = x[k + 3]
                z = Z[t]
                for g in range(G):
                    z[g] += w0[g] * x0 + w1[g] * x1 + w2[g] * x2 + w3[g] * x3
            k += 4
        while k < K:
            w0 = Wt[k]
            for t in range(t0, t1):
                x0 = X[t, k]
                z = Z[t]
                for g in range(G):
                    z[g] += w0[g] * x0
            k += 1
