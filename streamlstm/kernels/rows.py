"""The row interpreter: every row of a Plan's table over a block of T rows of input, for the
three schedules.

``run_rows(w, table, state, work, X, xoff, T, slots, hbuf, mb)``:

- **one stream** (``slots`` None): the T rows are consecutive frames of the stream whose flat
  state is ``state`` (one step: T = 1; a chunk: T frames). Recurrent rows run frame after
  frame, each adding R h to its gate row, in reverse order for a backward direction.
- **a pool** (``slots`` an int array): the T rows are one frame each of the streams
  ``slots``, whose states are rows of S values of the slab ``state``. A recurrent row
  gathers their h into ``hbuf`` and adds R h for all of them in one product.

Either way a row first runs its input product for all T rows at once (``split.stored_project``)
and the elementwise maths of its kind (``lstm``, ``gru``, ``rnn``, ``dense``, ``activation``,
``merge``) then reads the row's named fields. Rows without an input product (``embedding``,
``frame``, ``conv``, ``norm``) run their own module's function over the T rows. ``slots is None`` is decided when Numba compiles
each entry point, so each schedule compiles to its own loop. Only the products see ``mb``, the
helper mailbox of a two-thread session. Every view is a borrowed one (``views.py``).
"""

from numba import njit

from . import gru, lstm, rnn
from .activation import activation_rows
from .config import JIT
from .conv import conv_rows, tconv_pool, tconv_stream
from .dense import dense_rows
from .embedding import embed_rows
from .frame import BINARY_SRC2, binary_rows, elem_rows, gather_rows, hold_first_rows, reduce_rows
from .layout import (
    C_BIAS, C_COL, C_DST, C_DW, C_EMIT, C_K, C_KIND, C_OUT, C_REVERSE, C_SRC, C_STATE_H, C_WR, C_WX,
    HDR_CMAX, HDR_FINAL, HDR_GMAX, HDR_NROWS, HDR_NSEQ, HDR_STATE, HDR_VMAX, HDR_WMAX, K_ACT,
    K_BINARY, K_CONV, K_DENSE, K_ELEM, K_EMBED, K_GATHER, K_GRU, K_GRU_LBR, K_HOLD_FIRST, K_LSTM, K_LSTM_FUSED,
    K_MERGE, K_NORM, K_REDUCE, K_TCONV, NCOLS,
)
from .merge import MERGE_MODE, merge_rows
from .norm import norm_rows
from .split import stored_acc, stored_project
from .stored import described
from .views import matrix, vector


@njit(inline="always", **JIT)
def work_offsets(table, T):
    """Where the scratch of a T-row call starts: (gate rows Z, vector u, vector v, gather
    windows, input copy); the NSEQ sequences of T * Wmax values come first. ``Plan.work_size``
    is the end of this layout."""
    h = table[0]
    zoff = h[HDR_NSEQ] * T * h[HDR_WMAX]
    uoff = zoff + T * h[HDR_GMAX]
    voff = uoff + h[HDR_VMAX]
    coff = voff + h[HDR_VMAX]
    return zoff, uoff, voff, coff, coff + T * h[HDR_CMAX]


@njit(inline="always", **JIT)
def sequence(i, X, xoff, work, span, rows, cols):
    """Sequence ``i`` (0: the input X from ``xoff``; i >= 1: work sequence i, each ``span``
    values long) seen as (rows, cols)."""
    if i == 0:
        return matrix(X, xoff, rows, cols)
    return matrix(work, (i - 1) * span, rows, cols)


@njit(inline="always", **JIT)
def emit(h, dst, t, col, P):
    out = dst[t, col:col + P]  # sliced first: ``dst[t][col + p]`` compiles to scalar stores
    for p in range(P):
        out[p] = h[p]


@njit(inline="always", **JIT)
def recurrent_frame(kind, w, row, state, base, z, u, v):
    """The elementwise maths of one frame of a recurrent row, by its kind."""
    if kind == K_LSTM_FUSED:
        lstm.fused_frame(w, row, state, base, z, u, v)
    elif kind == K_LSTM:
        lstm.frame(w, row, state, base, z, u, v)
    elif kind == K_GRU:
        gru.frame(w, row, state, base, z, u, v)
    elif kind == K_GRU_LBR:
        gru.frame_lbr(w, row, state, base, z, u, v)
    else:
        rnn.frame(w, row, state, base, z, u, v)


@njit(inline="always", **JIT)
def stream_frames(w, row, state, Z, u, v, dst, mb):
    """A recurrent row over T consecutive frames of one stream."""
    T = Z.shape[0]
    kind = row[C_KIND]
    rec = described(row, C_WR)
    h = vector(state, row[C_STATE_H], rec[1])
    reverse = row[C_REVERSE] == 1
    col, P = row[C_COL], row[C_OUT]
    out = vector(state, row[C_EMIT], P)
    for s in range(T):
        t = T - 1 - s if reverse else s
        z = Z[t]
        stored_acc(w, rec, h, z, mb)
        recurrent_frame(kind, w, row, state, 0, z, u, v)
        emit(out, dst, t, col, P)


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


@njit(inline="always", **JIT)
def pool_frames(w, row, slab, S, slots, hbuf, Z, u, v, dst):
    """A recurrent row over one frame each of the T pool streams ``slots``."""
    T = Z.shape[0]
    kind = row[C_KIND]
    rec = described(row, C_WR)
    sh, P = row[C_STATE_H], rec[1]
    Hb = matrix(hbuf, 0, T, P)
    gather(slab, S, slots, sh, Hb)
    stored_acc(w, rec, Hb, Z, None)
    col, O = row[C_COL], row[C_OUT]
    for t in range(T):
        base = slots[t] * S
        recurrent_frame(kind, w, row, slab, base, Z[t], u, v)
        emit(vector(slab, base + row[C_EMIT], O), dst, t, col, O)


@njit(**JIT)
def run_rows(w, table, state, work, X, xoff, T, slots, hbuf, mb):
    """Run every row over T rows of input (see the module docstring); returns the id of the
    sequence holding the output."""
    zoff, uoff, voff, coff, _ = work_offsets(table, T)
    span = T * table[0, HDR_WMAX]
    Zflat = vector(work, zoff, T * table[0, HDR_GMAX])
    u = vector(work, uoff, table[0, HDR_VMAX])
    v = vector(work, voff, table[0, HDR_VMAX])
    cols = vector(work, coff, T * table[0, HDR_CMAX])
    nrows = table[0, HDR_NROWS]
    ints = table.reshape(table.size)[(nrows + 1) * NCOLS:]
    for r in range(1, nrows + 1):
        row = vector(table, r * NCOLS, NCOLS)
        kind = row[C_KIND]
        src = sequence(row[C_SRC], X, xoff, work, span, T, row[C_K])
        dst = sequence(row[C_DST], X, xoff, work, span, T, row[C_DW])
        if kind == K_MERGE:
            merge_rows(src, dst, row[MERGE_MODE])
        elif kind == K_ACT:
            activation_rows(w, row, src, dst)
        elif kind == K_GATHER:
            gather_rows(row, ints, src, dst)
        elif kind == K_ELEM:
            elem_rows(w, row, src, dst)
        elif kind == K_BINARY:
            binary_rows(row, src, sequence(row[BINARY_SRC2], X, xoff, work, span, T, row[C_OUT]), dst)
        elif kind == K_REDUCE:
            reduce_rows(w, row, ints, src, dst)
        elif kind == K_HOLD_FIRST:
            hold_first_rows(row, ints, src, dst)
        elif kind == K_EMBED:
            embed_rows(w, row, src, dst)
        elif kind == K_NORM:
            norm_rows(w, row, src, dst)
        elif kind == K_CONV:
            conv_rows(w, row, ints, src, dst, cols, Zflat, mb)
        elif kind == K_TCONV:
            if slots is None:
                tconv_stream(w, row, state, src, dst, cols, Zflat, mb)
            else:
                tconv_pool(w, row, state, table[0, HDR_STATE], slots, src, dst, cols, Zflat)
        else:
            wx = described(row, C_WX)
            Z = matrix(Zflat, 0, T, wx[2])
            stored_project(w, wx, vector(w, row[C_BIAS], wx[2]), src, Z, mb)
            if kind == K_DENSE:
                dense_rows(w, row, Z, dst)
            elif slots is None:
                stream_frames(w, row, state, Z, u, v, dst, mb)
            else:
                pool_frames(w, row, state, table[0, HDR_STATE], slots, hbuf, Z, u, v, dst)
    return table[0, HDR_FINAL]
