"""The SessionPool entry point: advance n distinct streams by one frame each in one native call.

``pool_advance(wbuf, table, slab, live, iwork, ids, work, hbuf, X, Y, err)``:

- ``slab`` is the flat (capacity * S) state of every slot, ``live[slot]`` the id open in that
  slot (or -1); an id addresses slot ``id % capacity``.
- ``ids`` (n,) the streams to advance, ``X`` the flat (n * I) frames, ``Y`` the flat (n * O)
  outputs; ``iwork`` int scratch of 2 * capacity; with NB = ``block_rows(capacity)``, ``work``
  float scratch of ``Plan.work_size(NB)`` and ``hbuf`` of NB * Wmax (gathered hidden states).

Everything is validated before the slab is touched; on failure ``err`` = (kind, index) and
the return value is nonzero (kinds below). Streams run in blocks of NB rows, layer after layer
within a block: the input projection of the block is one (NB, K) x (K, G) product, the
recurrent term one (NB, P) x (P, G) product over the block's gathered h rows; then each
stream's gates are updated in place on its slab row by the per-frame cell functions. Every
element gets the same arithmetic as in ``Session.step``, so pool streams and sessions agree
bit for bit.
"""

import math

from numba import njit

from . import activations as A
from .cells import gru_frame, lstm_frame, rnn_frame
from .config import JIT
from .layout import (
    C_ACT, C_B, C_B2, C_COL, C_DST, C_DW, C_FLAGS, C_G, C_H, C_HP, C_K, C_KIND, C_P, C_PAR,
    C_PEEP, C_PP, C_SC, C_SH, C_SRC, C_WR, C_WR2, C_WX, HDR_FINAL, HDR_GMAX, HDR_IN, HDR_NROWS,
    HDR_OUT, HDR_STATE, HDR_VMAX, HDR_WMAX, K_ACT, K_DENSE, K_GRU, K_LSTM, K_RNN,
)
from .views import matrix

BLOCK = 16  # streams per block: keeps the block's Z and sequences in L1/L2 while weights stream

ERR_ID = 1         # ids[index] is not open in this pool (closed, unknown or negative)
ERR_DUPLICATE = 2  # ids[index] repeats an earlier id of the same call
ERR_FRAME = 3      # X[index] holds NaN or Inf


def block_rows(capacity: int) -> int:
    """Rows per block for a pool of ``capacity`` slots (size the float scratch with it)."""
    return max(1, min(BLOCK, capacity))


@njit(**JIT)
def validate(live, iwork, ids, X, I, err):
    """Check ids (open, distinct) and frames (finite); fill iwork[cap:cap+n] with slots."""
    cap = live.shape[0]
    n = ids.shape[0]
    mark = iwork[0:cap]
    slots = iwork[cap:cap + n]
    for i in range(n):
        sid = ids[i]
        s = sid % cap if sid >= 0 else 0
        if sid < 0 or live[s] != sid:
            err[0] = ERR_ID
            err[1] = i
            return 1
        slots[i] = s
    dup = -1
    for i in range(n):
        s = slots[i]
        if mark[s] != 0:
            dup = i
            break
        mark[s] = 1
    for i in range(n):
        mark[slots[i]] = 0
    if dup >= 0:
        err[0] = ERR_DUPLICATE
        err[1] = dup
        return 1
    for k in range(n * I):
        if not math.isfinite(X[k]):
            err[0] = ERR_FRAME
            err[1] = k // I
            return 1
    return 0


@njit(**JIT)
def _acc_one(Wt, x, z):
    """z[:G] += x @ Wt: the arithmetic of ``gemv_acc`` (k in blocks of four, then the rest)."""
    K, G = Wt.shape
    k = 0
    while k + 4 <= K:
        w0 = Wt[k]
        w1 = Wt[k + 1]
        w2 = Wt[k + 2]
        w3 = Wt[k + 3]
        x0 = x[k]
        x1 = x[k + 1]
        x2 = x[k + 2]
        x3 = x[k + 3]
        for g in range(G):
            z[g] += w0[g] * x0 + w1[g] * x1 + w2[g] * x2 + w3[g] * x3
        k += 4
    while k < K:
        w0 = Wt[k]
        x0 = x[k]
        for g in range(G):
            z[g] += w0[g] * x0
        k += 1


@njit(**JIT)
def batch_acc(Wt, X, Z):
    """Z[t, :G] += X[t] @ Wt for every row t: a (T, K) x (K, G) product over weights Wt (K, G).

    Two rows share every loaded weight vector (the loop LLVM vectorises then does one load per
    FMA pair instead of one per FMA), while each row gets exactly ``gemv_acc``'s arithmetic:
    k in blocks of four summed as (w0 x0 + w1 x1 + w2 x2 + w3 x3), then the remainder.
    """
    T = X.shape[0]
    K, G = Wt.shape
    TB = 8
    for t0 in range(0, T - 1, TB):
        t1 = min(t0 + TB, T) & ~1
        k = 0
        while k + 4 <= K:
            w0 = Wt[k]
            w1 = Wt[k + 1]
            w2 = Wt[k + 2]
            w3 = Wt[k + 3]
            for t in range(t0, t1, 2):
                xa = X[t]
                xb = X[t + 1]
                a0 = xa[k]
                a1 = xa[k + 1]
                a2 = xa[k + 2]
                a3 = xa[k + 3]
                b0 = xb[k]
                b1 = xb[k + 1]
                b2 = xb[k + 2]
                b3 = xb[k + 3]
                za = Z[t]
                zb = Z[t + 1]
                for g in range(G):
                    v0 = w0[g]
                    v1 = w1[g]
                    v2 = w2[g]
                    v3 = w3[g]
                    za[g] += v0 * a0 + v1 * a1 + v2 * a2 + v3 * a3
                    zb[g] += v0 * b0 + v1 * b1 + v2 * b2 + v3 * b3
            k += 4
        while k < K:
            w0 = Wt[k]
            for t in range(t0, t1):
                a0 = X[t, k]
                za = Z[t]
                for g in range(G):
                    za[g] += w0[g] * a0
            k += 1
    if T % 2 == 1:
        _acc_one(Wt, X[T - 1], Z[T - 1])


@njit(**JIT)
def batch_project(Wt, bias, X, Z):
    """Z[t, :G] = bias + X[t] @ Wt for every row t (same arithmetic as ``gemv_set``)."""
    G = Wt.shape[1]
    for t in range(X.shape[0]):
        z = Z[t]
        for g in range(G):
            z[g] = bias[g]
    batch_acc(Wt, X, Z)


@njit(**JIT)
def gather(slab, S, slots, off, Hb):
    """Hb[t, :] = the P state values at ``off`` of stream slot ``slots[t]``."""
    P = Hb.shape[1]
    for t in range(Hb.shape[0]):
        b = slots[t] * S + off
        h = Hb[t]
        for p in range(P):
            h[p] = slab[b + p]


@njit(**JIT)
def lstm_fused_slices(z, c, h, H, Hp):
    """``cells.lstm_fused_fast`` with the gate blocks taken as slices first: same arithmetic, but
    ``z[Hp + j]`` with a runtime ``Hp`` compiles to gathers (Numba's negative-index wraparound),
    while indexing a slice by the loop counter compiles to plain vector loads."""
    zi = z[0:H]
    zo = z[Hp:Hp + H]
    zf = z[2 * Hp:2 * Hp + H]
    zc = z[3 * Hp:3 * Hp + H]
    for j in range(H):
        ig = A.sigmoid_fast(zi[j])
        og = A.sigmoid_fast(zo[j])
        fg = A.sigmoid_fast(zf[j])
        gg = A.tanh_fast(zc[j])
        cn = fg * c[j] + ig * gg
        c[j] = cn
        h[j] = og * A.tanh_fast(cn)


@njit(**JIT)
def _emit(h, dst, t, col, P):
    out = dst[t]
    for p in range(P):
        out[col + p] = h[p]


@njit(**JIT)
def _seq(i, X, xoff, A_, B_, rows, cols):
    if i == 0:
        return matrix(X, xoff, rows, cols)
    if i == 1:
        return matrix(A_, 0, rows, cols)
    return matrix(B_, 0, rows, cols)


@njit(**JIT)
def pool_rows(wbuf, table, slab, slots, work, hbuf, X, xoff, T):
    """Every unit row over the T streams ``slots`` (one frame each); returns the output buffer id."""
    Wmax = table[0, HDR_WMAX]
    Gmax = table[0, HDR_GMAX]
    Vmax = table[0, HDR_VMAX]
    S = table[0, HDR_STATE]
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
        src = _seq(row[C_SRC], X, xoff, A_, B_, T, K)
        dst = _seq(row[C_DST], X, xoff, A_, B_, T, DW)
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
        batch_project(matrix(wbuf, row[C_WX], K, G), wbuf[row[C_B]:row[C_B] + G], src, Z)
        H = row[C_H]
        Hp = row[C_HP]
        par = wbuf[row[C_PAR]:row[C_PAR] + 7]
        acts = row[C_ACT:C_ACT + 3]
        flags = row[C_FLAGS:C_FLAGS + 5]
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
            Hb = matrix(hbuf, 0, T, P)
            gather(slab, S, slots, sh, Hb)
            batch_acc(matrix(wbuf, row[C_WR], P, G), Hb, Z)
            projt = matrix(wbuf, row[C_WR2], H, row[C_PP])
            peep = wbuf[row[C_PEEP]:row[C_PEEP] + 3 * H]
            for t in range(T):
                base = slots[t] * S
                h = slab[base + sh:base + sh + P]
                c = slab[base + sc:base + sc + H]
                if flags[4]:
                    lstm_fused_slices(Z[t], c, h, H, Hp)
                else:
                    lstm_frame(Z[t], h, c, u, v, projt, peep, acts, par, flags, H, Hp, P)
                _emit(h, dst, t, col, P)
        elif kind == K_GRU:
            sh = row[C_SH]
            Hb = matrix(hbuf, 0, T, H)
            gather(slab, S, slots, sh, Hb)
            batch_acc(matrix(wbuf, row[C_WR], H, 2 * Hp), Hb, Z)
            Rt_h = matrix(wbuf, row[C_WR2], H, Hp)
            rbh = wbuf[row[C_B2]:row[C_B2] + Hp]
            for t in range(T):
                base = slots[t] * S
                h = slab[base + sh:base + sh + H]
                gru_frame(Z[t], h, u, v, Rt_h, rbh, acts, par, flags, H, Hp)
                _emit(h, dst, t, col, H)
        elif kind == K_RNN:
            sh = row[C_SH]
            Hb = matrix(hbuf, 0, T, H)
            gather(slab, S, slots, sh, Hb)
            batch_acc(matrix(wbuf, row[C_WR], H, G), Hb, Z)
            for t in range(T):
                base = slots[t] * S
                h = slab[base + sh:base + sh + H]
                rnn_frame(Z[t], h, acts, par, flags, H)
                _emit(h, dst, t, col, H)
    return table[0, HDR_FINAL]


@njit(**JIT)
def pool_advance(wbuf, table, slab, live, iwork, ids, work, hbuf, X, Y, err):
    """Validate, then advance the streams ``ids`` by the frames X into Y. Returns 0 or 1 (see err)."""
    I = table[0, HDR_IN]
    O = table[0, HDR_OUT]
    Wmax = table[0, HDR_WMAX]
    if validate(live, iwork, ids, X, I, err):
        return 1
    cap = live.shape[0]
    n = ids.shape[0]
    slots = iwork[cap:cap + n]
    NB = min(BLOCK, cap)
    for b0 in range(0, n, NB):
        T = min(NB, n - b0)
        final = pool_rows(wbuf, table, slab, slots[b0:b0 + T], work, hbuf, X, b0 * I, T)
        out = _seq(final, X, b0 * I, work[0:T * Wmax], work[T * Wmax:2 * T * Wmax], T, O)
        y = matrix(Y, b0 * O, T, O)
        for t in range(T):
            o = out[t]
            yt = y[t]
            for j in range(O):
                yt[j] = o[j]
    return 0
