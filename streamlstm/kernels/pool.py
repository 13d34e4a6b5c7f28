"""The SessionPool entry point: advance n distinct streams by one frame each in one native call.

``pool_advance(wbuf, table, slab, live, iwork, ids, work, hbuf, X, Y, err)``:

- ``slab`` is the flat (capacity * S) state of every slot, ``live[slot]`` the id open in that
  slot (or -1); an id addresses slot ``id % capacity``.
- ``ids`` (n,) the streams to advance, ``X`` (n, I) their frames, ``Y`` (n, O) the outputs;
  ``iwork`` int scratch of 2 * capacity; with NB = ``block_rows(capacity)`` rows per block,
  ``work`` float scratch of ``Plan.work_size(NB)`` and ``hbuf`` of NB * Wmax (gathered h).

``pool_validate`` + ``pool_compute`` on disjoint slices of the slots split the same step over
threads (both release the GIL).

Everything is validated before the slab is touched; on failure ``err`` = (kind, index) and
the return value is nonzero (kinds below). Streams run in blocks of NB rows, layer after layer
within a block: the input projection of the block is one (NB, K) x (K, G) product, the
recurrent term one (NB, P) x (P, G) product over the block's gathered h rows; then each
stream's gates are updated in place on its slab row by the per-frame cell functions. Every
element gets the same arithmetic as in ``Session.step`` (``simd.panel_acc`` gives each row the
same FMA chain however many rows it processes together), so pool streams and sessions agree
bit for bit (tests/test_pool.py checks it).
"""

import math

from numba import njit

from .cells import emit, gru_frame, lstm_frame, lstm_fused_fast, rnn_frame
from .config import JIT
from .engine import activation_rows, dense_rows, row_params, work_views
from .gemv import gemv_acc_stored, project_stored
from .layout import (
    C_B, C_B2, C_COL, C_DST, C_DW, C_FMT, C_G, C_H, C_HP, C_K, C_KIND, C_P, C_PEEP, C_PP,
    C_SC, C_SH, C_SR, C_SRC, C_SX, C_WR, C_WR2, C_WX, HDR_FINAL, HDR_IN,
    HDR_NROWS, HDR_OUT, HDR_STATE, HDR_WMAX, K_ACT, K_DENSE, K_GRU, K_LSTM, NCOLS,
)
from .views import matrix, vector

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
def gather(slab, S, slots, off, Hb):
    """Hb[t, :] = the P state values at ``off`` of stream slot ``slots[t]``."""
    P = Hb.shape[1]
    for t in range(Hb.shape[0]):
        b = slots[t] * S + off
        h = Hb[t]
        src = slab[b:b + P]
        for p in range(P):
            h[p] = src[p]


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
    S = table[0, HDR_STATE]
    A_, B_, Zflat, u, v = work_views(work, table, T)
    for r in range(1, table[0, HDR_NROWS] + 1):
        row = vector(table, r * NCOLS, NCOLS)
        kind = row[C_KIND]
        K = row[C_K]
        DW = row[C_DW]
        col = row[C_COL]
        src = _seq(row[C_SRC], X, xoff, A_, B_, T, K)
        dst = _seq(row[C_DST], X, xoff, A_, B_, T, DW)
        if kind == K_ACT:
            activation_rows(wbuf, row, src, dst)
            continue
        G = row[C_G]
        H = row[C_H]
        Hp = row[C_HP]
        Z = matrix(Zflat, 0, T, G)
        fmt = row[C_FMT]
        project_stored(wbuf, row[C_WX], K, G, fmt, row[C_SX], vector(wbuf, row[C_B], G), src, Z)
        par, acts, flags = row_params(wbuf, row)
        if kind == K_DENSE:
            dense_rows(Z, dst, acts[0], par[0], par[1], H, col)
            continue
        sh = row[C_SH]
        P = row[C_P]
        Hb = matrix(hbuf, 0, T, P)
        gather(slab, S, slots, sh, Hb)
        if kind == K_LSTM:
            gemv_acc_stored(wbuf, row[C_WR], P, G, fmt, row[C_SR], Hb, Z)
            sc = row[C_SC]
            projt = matrix(wbuf, row[C_WR2], H, row[C_PP])
            peep = vector(wbuf, row[C_PEEP], 3 * H)
            for t in range(T):
                base = slots[t] * S
                h = vector(slab, base + sh, P)
                c = vector(slab, base + sc, H)
                if flags[4]:
                    lstm_fused_fast(Z[t], c, h, H, Hp)
                else:
                    lstm_frame(Z[t], h, c, u, v, projt, peep, acts, par, flags, H, Hp, P)
                emit(h, dst, t, col, P)
        elif kind == K_GRU:
            gemv_acc_stored(wbuf, row[C_WR], H, 2 * Hp, fmt, row[C_SR], Hb, Z)
            Rt_h = matrix(wbuf, row[C_WR2], H, Hp)
            rbh = vector(wbuf, row[C_B2], Hp)
            for t in range(T):
                h = vector(slab, slots[t] * S + sh, H)
                gru_frame(Z[t], h, u, v, Rt_h, rbh, acts, par, flags, H, Hp)
                emit(h, dst, t, col, H)
        else:  # K_RNN (merge rows only follow bidirectional layers, which a pool refuses)
            gemv_acc_stored(wbuf, row[C_WR], H, G, fmt, row[C_SR], Hb, Z)
            for t in range(T):
                h = vector(slab, slots[t] * S + sh, H)
                rnn_frame(Z[t], h, acts, par, flags, H)
                emit(h, dst, t, col, H)
    return table[0, HDR_FINAL]


@njit(**JIT)
def pool_compute(wbuf, table, slab, slots, work, hbuf, X, Y):
    """Advance the streams in ``slots`` (validated, distinct) by the frames X (m, I) into Y (m, O)."""
    I = table[0, HDR_IN]
    O = table[0, HDR_OUT]
    Wmax = table[0, HDR_WMAX]
    n = slots.shape[0]
    Xf = X.reshape(-1)
    NB = hbuf.shape[0] // Wmax
    for b0 in range(0, n, NB):
        T = min(NB, n - b0)
        final = pool_rows(wbuf, table, slab, slots[b0:b0 + T], work, hbuf, Xf, b0 * I, T)
        out = _seq(final, Xf, b0 * I, vector(work, 0, T * Wmax), vector(work, T * Wmax, T * Wmax), T, O)
        for t in range(T):
            o = out[t]
            y = Y[b0 + t]
            for j in range(O):
                y[j] = o[j]


@njit(**JIT)
def pool_advance(wbuf, table, slab, live, iwork, ids, work, hbuf, X, Y, err):
    """Validate, then advance the streams ``ids`` by X (n, I) into Y (n, O). Returns 0 or 1 (see err)."""
    if validate(live, iwork, ids, X.reshape(-1), table[0, HDR_IN], err):
        return 1
    cap = live.shape[0]
    pool_compute(wbuf, table, slab, iwork[cap:cap + ids.shape[0]], work, hbuf, X, Y)
    return 0


@njit(**JIT)
def pool_validate(live, iwork, ids, X, err):
    """``validate`` alone, for a step whose compute is split over threads. Returns 0 or 1."""
    return validate(live, iwork, ids, X.reshape(-1), X.shape[1], err)
