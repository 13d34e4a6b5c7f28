"""The fused entry point: advance a whole network over T >= 1 frames in one native call.

``advance(wbuf, table, state, work, X, Y)``: X is the flat (T*I) input, Y the flat (T*O)
output (both of any stride: the kernel copies X into ``work`` while checking it), ``state`` the
stream's flat state (updated in place), ``work`` scratch of ``Plan.work_size(T)`` elements laid
out as [sequence A | sequence B | gate rows Z | u | v | input copy]. Layers run one after the
other over the whole chunk (the input projection of all T frames is one batched product), so one
frame and T frames share the same arithmetic. Returns 0, or -(t+1) when frame t holds NaN/Inf
(then nothing was touched).

``advance_at(ctx, x, y)`` is the same step for a Session, with its four buffers passed by
address (``ctx``: see ``session_context``) so that only three arguments cross from Python.
"""

import math

from numba import njit

from . import activations as A
from .cells import gru_cell, lstm_cell, rnn_cell
from .config import JIT
from .gemv import project_stored
from .lean_cache import lean_cache
from .views import const_floats_at, floats_at, ints_at, matrix, vector
from .layout import (
    C_ACT, C_B, C_B2, C_COL, C_DST, C_DW, C_FLAGS, C_FMT, C_G, C_H, C_HP, C_K, C_KIND, C_MERGE,
    C_P, C_PAR, C_PEEP, C_PP, C_REV, C_SC, C_SH, C_SR, C_SRC, C_SX, C_WR, C_WR2, C_WX, HDR_FINAL,
    HDR_GMAX, HDR_IN, HDR_NROWS, HDR_OUT, HDR_VMAX, HDR_WMAX, K_ACT, K_DENSE, K_GRU, K_LSTM,
    K_MERGE, K_RNN, NCOLS,
)


@njit(**JIT)
def _buffer(i, X, A_, B_):
    if i == 0:
        return X
    if i == 1:
        return A_
    return B_


@njit(**JIT)
def load_input(X, dst, I):
    """Copy X into dst; returns the index of the first frame holding NaN/Inf, or -1."""
    for k in range(X.shape[0]):
        v = X[k]
        if not math.isfinite(v):
            return k // I
        dst[k] = v
    return -1


@njit(**JIT)
def merge_rows(src, dst, mode):
    """dst[t] = merge of the two halves of src[t]: 1 sum, 2 mul, 3 ave."""
    P = dst.shape[1]
    for t in range(src.shape[0]):
        a = src[t, 0:P]
        b = src[t, P:2 * P]
        o = dst[t]
        if mode == 1:
            for j in range(P):
                o[j] = a[j] + b[j]
        elif mode == 2:
            for j in range(P):
                o[j] = a[j] * b[j]
        else:
            for j in range(P):
                o[j] = 0.5 * (a[j] + b[j])


@njit(inline="always", **JIT)
def work_views(work, table, T):
    """The scratch of a T-frame call: sequences A and B, gate rows Z, vectors u and v."""
    Wmax = table[0, HDR_WMAX]
    Gmax = table[0, HDR_GMAX]
    Vmax = table[0, HDR_VMAX]
    seq = T * Wmax
    zoff = 2 * seq
    return (vector(work, 0, seq), vector(work, seq, seq), vector(work, zoff, T * Gmax),
            vector(work, zoff + T * Gmax, Vmax), vector(work, zoff + T * Gmax + Vmax, Vmax))


@njit(inline="always", **JIT)
def row_params(wbuf, row):
    """(activation params + clip, activation codes, flags) of a unit row, as tuples."""
    pa = row[C_PAR]
    par = (wbuf[pa], wbuf[pa + 1], wbuf[pa + 2], wbuf[pa + 3], wbuf[pa + 4], wbuf[pa + 5], wbuf[pa + 6])
    acts = (row[C_ACT], row[C_ACT + 1], row[C_ACT + 2])
    flags = (row[C_FLAGS], row[C_FLAGS + 1], row[C_FLAGS + 2], row[C_FLAGS + 3], row[C_FLAGS + 4])
    return par, acts, flags


@njit(inline="always", **JIT)
def activation_rows(wbuf, row, src, dst):
    """An Activation unit: dst[t] = act(src[t])."""
    H = row[C_H]
    pa = row[C_PAR]
    for t in range(src.shape[0]):
        o = dst[t]
        a = src[t]
        for j in range(H):
            o[j] = a[j]
        A.apply(row[C_ACT], wbuf[pa], wbuf[pa + 1], o[0:H])


@njit(inline="always", **JIT)
def dense_rows(Z, dst, code, alpha, beta, H, col):
    """The end of a Dense unit: dst[t, col:col+H] = act(Z[t, :H]) (Z holds b + W x)."""
    for t in range(Z.shape[0]):
        z = Z[t, 0:H]
        A.apply(code, alpha, beta, z)
        o = dst[t, col:col + H]
        for j in range(H):
            o[j] = z[j]


@njit(**JIT)
def run_rows(wbuf, table, state, work, X, T, mb):
    """Run every unit row over T frames; returns the buffer id holding the output. ``mb``: the
    helper mailbox of a two-thread session (empty: one thread).

    Every view below is a borrowed one (``vector``/``matrix``): no reference counting.
    """
    A_, B_, Zflat, u, v = work_views(work, table, T)
    for r in range(1, table[0, HDR_NROWS] + 1):
        row = vector(table, r * NCOLS, NCOLS)
        kind = row[C_KIND]
        K = row[C_K]
        DW = row[C_DW]
        col = row[C_COL]
        src = matrix(_buffer(row[C_SRC], X, A_, B_), 0, T, K)
        dst = matrix(_buffer(row[C_DST], X, A_, B_), 0, T, DW)
        if kind == K_MERGE:
            merge_rows(src, dst, row[C_MERGE])
            continue
        if kind == K_ACT:
            activation_rows(wbuf, row, src, dst)
            continue
        G = row[C_G]
        H = row[C_H]
        Hp = row[C_HP]
        Z = matrix(Zflat, 0, T, G)
        fmt = row[C_FMT]
        project_stored(wbuf, row[C_WX], K, G, fmt, row[C_SX], vector(wbuf, row[C_B], G), src, Z, mb)
        R = (wbuf, row[C_WR], fmt, row[C_SR], mb)
        par, acts, flags = row_params(wbuf, row)
        rev = row[C_REV] == 1
        if kind == K_DENSE:
            dense_rows(Z, dst, acts[0], par[0], par[1], H, col)
        elif kind == K_LSTM:
            P = row[C_P]
            lstm_cell(Z, R, matrix(wbuf, row[C_WR2], H, row[C_PP]), vector(wbuf, row[C_PEEP], 3 * H),
                      vector(state, row[C_SH], P), vector(state, row[C_SC], H),
                      u, v, acts, par, flags, H, Hp, P, rev, dst, col)
        elif kind == K_GRU:
            gru_cell(Z, R, matrix(wbuf, row[C_WR2], H, Hp), vector(wbuf, row[C_B2], Hp),
                     vector(state, row[C_SH], H), u, v, acts, par, flags, H, Hp, rev, dst, col)
        elif kind == K_RNN:
            rnn_cell(Z, R, vector(state, row[C_SH], H), acts, par, flags, H, rev, dst, col)
    return table[0, HDR_FINAL]


@njit(**JIT)
def advance(wbuf, table, state, work, X, Y):
    return _advance(wbuf, table, state, work, X, Y, ints_at(0, 0))


@njit(inline="always", **JIT)  # inlined into both entry points: one link level less to compile
def _advance(wbuf, table, state, work, X, Y, mb):
    I = table[0, HDR_IN]
    O = table[0, HDR_OUT]
    T = X.shape[0] // I
    Wmax = table[0, HDR_WMAX]
    xo = T * (2 * Wmax + table[0, HDR_GMAX]) + 2 * table[0, HDR_VMAX]
    Xc = vector(work, xo, T * I)
    bad = load_input(X, Xc, I)
    if bad >= 0:
        return -(bad + 1)
    final = run_rows(wbuf, table, state, work, Xc, T, mb)
    out = _buffer(final, Xc, vector(work, 0, T * Wmax), vector(work, T * Wmax, T * Wmax))
    for k in range(T * O):
        Y[k] = out[k]
    return 0


CTX_FIELDS = 10  # address and element count of: weights, table (rows), state, work, mailbox
WRONG_SIZE = -(1 << 62)


@njit(**JIT)
def advance_at(ctx, X, Y):
    """``advance`` by one frame, buffers by address: X holds exactly I values and Y O values,
    else returns WRONG_SIZE (nothing touched)."""
    c = ints_at(ctx, CTX_FIELDS)
    table = matrix(ints_at(c[2], c[3] * NCOLS), 0, c[3], NCOLS)
    if X.shape[0] != table[0, HDR_IN] or Y.shape[0] != table[0, HDR_OUT]:
        return WRONG_SIZE
    return _advance(const_floats_at(c[0], c[1], X), table, floats_at(c[4], c[5], X),
                    floats_at(c[6], c[7], X), X, Y, ints_at(c[8], c[9]))


lean_cache(advance_at)  # called from Python only: a new process loads it without parsing its bitcode
