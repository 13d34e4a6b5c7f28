"""The fused entry point: advance a whole network over T >= 1 frames in one native call.

``advance(wbuf, table, state, work, X, Y)``: X is the flat (T*I) input, Y the flat (T*O)
output (both of any stride: the kernel copies X into ``work`` while checking it), ``state`` the
stream's flat state (updated in place), ``work`` scratch of ``Plan.work_size(T)`` elements laid
out as [sequence A | sequence B | gate rows Z | u | v | input copy]. Layers run one after the
other over the whole chunk (the input projection of all T frames is one batched product), so one
frame and T frames share the same arithmetic. Returns 0, or -(t+1) when frame t holds NaN/Inf
(then nothing was touched).
"""

import math

from numba import njit

from . import activations as A
from .cells import gru_cell, lstm_cell, rnn_cell
from .config import JIT
from .gemv import project_stored
from .views import matrix
from .layout import (
    C_ACT, C_B, C_B2, C_COL, C_DST, C_DW, C_FLAGS, C_FMT, C_G, C_H, C_HP, C_K, C_KIND, C_MERGE,
    C_P, C_PAR, C_PEEP, C_PP, C_REV, C_SC, C_SH, C_SR, C_SRC, C_SX, C_WR, C_WR2, C_WX, HDR_FINAL,
    HDR_GMAX, HDR_IN, HDR_NROWS, HDR_THREADS, HDR_OUT, HDR_VMAX, HDR_WMAX, K_ACT, K_DENSE, K_GRU, K_LSTM,
    K_MERGE, K_RNN,
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
def run_rows(wbuf, table, state, work, X, T):
    """Run every unit row over T frames; returns the buffer id holding the output."""
    Wmax = table[0, HDR_WMAX]
    Gmax = table[0, HDR_GMAX]
    Vmax = table[0, HDR_VMAX]
    seq = T * Wmax
    A_ = work[0:seq]
    B_ = work[seq:2 * seq]
    zoff = 2 * seq
    Zflat = work[zoff:zoff + T * Gmax]
    u = work[zoff + T * Gmax:zoff + T * Gmax + Vmax]
    v = work[zoff + T * Gmax + Vmax:zoff + T * Gmax + 2 * Vmax]
    for r in range(1, table[0, HDR_NROWS] + 1):
        row = table[r]
        kind = row[C_KIND]
        K = row[C_K]
        DW = row[C_DW]
        col = row[C_COL]
        src = matrix(_buffer(row[C_SRC], X, A_, B_), 0, T, K)
        dst = matrix(_buffer(row[C_DST], X, A_, B_), 0, T, DW)
        if kind == K_MERGE:
            mode = row[C_MERGE]
            P = DW
            for t in range(T):
                a = src[t]
                o = dst[t]
                for j in range(P):
                    if mode == 1:
                        o[j] = a[j] + a[P + j]
                    elif mode == 2:
                        o[j] = a[j] * a[P + j]
                    else:
                        o[j] = 0.5 * (a[j] + a[P + j])
            continue
        if kind == K_ACT:
            H = row[C_H]
            for t in range(T):
                o = dst[t]
                a = src[t]
                for j in range(H):
                    o[j] = a[j]
                A.apply(row[C_ACT], wbuf[row[C_PAR]], wbuf[row[C_PAR] + 1], o[0:H])
            continue
        G = row[C_G]
        Z = matrix(Zflat, 0, T, G)
        fmt = row[C_FMT]
        threads = table[0, HDR_THREADS]
        project_stored(wbuf, row[C_WX], K, G, fmt, row[C_SX], wbuf[row[C_B]:row[C_B] + G], src, Z, threads)
        R = (wbuf, row[C_WR], fmt, row[C_SR], threads)
        H = row[C_H]
        Hp = row[C_HP]
        par = wbuf[row[C_PAR]:row[C_PAR] + 7]
        acts = row[C_ACT:C_ACT + 3]
        flags = row[C_FLAGS:C_FLAGS + 5]
        rev = row[C_REV] == 1
        if kind == K_DENSE:
            for t in range(T):
                z = Z[t, 0:H]
                A.apply(acts[0], par[0], par[1], z)
                o = dst[t]
                for j in range(H):
                    o[col + j] = z[j]
        elif kind == K_LSTM:
            P = row[C_P]
            sh = row[C_SH]
            sc = row[C_SC]
            lstm_cell(Z, R, matrix(wbuf, row[C_WR2], H, row[C_PP]),
                      wbuf[row[C_PEEP]:row[C_PEEP] + 3 * H], state[sh:sh + P], state[sc:sc + H],
                      u, v, acts, par, flags, H, Hp, P, rev, dst, col)
        elif kind == K_GRU:
            sh = row[C_SH]
            gru_cell(Z, R, matrix(wbuf, row[C_WR2], H, Hp),
                     wbuf[row[C_B2]:row[C_B2] + Hp], state[sh:sh + H], u, v, acts, par, flags,
                     H, Hp, rev, dst, col)
        elif kind == K_RNN:
            sh = row[C_SH]
            rnn_cell(Z, R, state[sh:sh + H], acts, par, flags,
                     H, rev, dst, col)
    return table[0, HDR_FINAL]


@njit(**JIT)
def advance(wbuf, table, state, work, X, Y):
    I = table[0, HDR_IN]
    O = table[0, HDR_OUT]
    T = X.shape[0] // I
    Wmax = table[0, HDR_WMAX]
    xo = T * (2 * Wmax + table[0, HDR_GMAX]) + 2 * table[0, HDR_VMAX]
    Xc = work[xo:xo + T * I]
    bad = load_input(X, Xc, I)
    if bad >= 0:
        return -(bad + 1)
    final = run_rows(wbuf, table, state, work, Xc, T)
    out = _buffer(final, Xc, work[0:T * Wmax], work[T * Wmax:2 * T * Wmax])
    for k in range(T * O):
        Y[k] = out[k]
    return 0
