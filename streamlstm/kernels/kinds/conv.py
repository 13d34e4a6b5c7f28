"""Convolution rows: ``K_CONV`` within a frame and ``K_TCONV`` over time.

Both are one matrix product over gathered windows (im2col): the windows of every output
position of every row go into the scratch ``cols``, and one ``stored_project`` multiplies them
by the packed (window, channels) weight matrix, so a convolution runs as blocked products over
packed weights whatever its geometry.

- ``K_CONV``: a frame is a channel-first (C_in, L_in) map; ``CONV_INDEX`` holds, for each of
  the ``CONV_POSITIONS`` output positions, the frame position of every window element (-1:
  zero padding; reflect padding is folded into the positions). The output is channel-first.
- ``K_TCONV``: a frame is one time step of C_in values; tap j of output t reads the input at
  t - LEFT + j * DILATION. Inputs before the chunk come from the stream's history (the last
  LEFT frames, oldest first, in the state at ``TCONV_HIST``), inputs after it are zeros (only
  a non-causal layer, which does not stream, reads them).
"""

from numba import njit

from . import RowKind
from .. import activations as A
from ..config import JIT
from .dense import dense_rows
from ..layout import C_ACT_F, C_BIAS, C_COL, C_K, C_OUT, C_PARAMS, C_WX, FIRST_KIND_FIELD, PAR_F_ALPHA, PAR_F_BETA
from ..split import stored_project
from ..stored import described
from ..views import matrix, vector

K_CONV = 13   # within a frame
K_TCONV = 14  # over time, past inputs kept in the stream state

CONV_INDEX = FIRST_KIND_FIELD          # ints: positions * window frame positions
CONV_POSITIONS = FIRST_KIND_FIELD + 1  # output positions L_out

TCONV_TAPS = FIRST_KIND_FIELD
TCONV_DILATION = FIRST_KIND_FIELD + 1
TCONV_LEFT = FIRST_KIND_FIELD + 2      # frames of history: (taps - 1) * dilation - right padding
TCONV_HIST = FIRST_KIND_FIELD + 3      # S_: LEFT frames of C_in inputs, oldest first


@njit(inline="always", **JIT)
def _project(kinds, w, row, C, Zflat, mb):
    """Z = bias + C @ M for the row's stored matrix (one row of Z per row of C)."""
    wx = described(row, C_WX)
    Z = matrix(Zflat, 0, C.shape[0], wx[2])
    stored_project(kinds, w, wx, vector(w, row[C_BIAS], wx[2]), C, Z, mb)
    return Z


@njit(**JIT)
def conv_rows(kinds, w, row, ints, src, dst, cols, Zflat, mb):
    T = src.shape[0]
    L = row[CONV_POSITIONS]
    Kc = row[C_WX + 1]
    index = ints[row[CONV_INDEX]:row[CONV_INDEX] + L * Kc]
    C = matrix(cols, 0, T * L, Kc)
    for t in range(T):
        a = src[t]
        for p in range(L):
            c = C[t * L + p]
            ix = index[p * Kc:(p + 1) * Kc]
            for j in range(Kc):
                k = ix[j]
                c[j] = a[k] if k >= 0 else 0.0
    Z = _project(kinds, w, row, C, Zflat, mb)
    pa = row[C_PARAMS]
    code, alpha, beta = row[C_ACT_F], w[pa + PAR_F_ALPHA], w[pa + PAR_F_BETA]
    O, col = row[C_OUT], row[C_COL]
    Cout = O // L
    for t in range(T):
        o = dst[t, col:col + O]
        for p in range(L):
            z = Z[t * L + p, 0:Cout]
            A.apply(code, alpha, beta, z)
            for c in range(Cout):
                o[c * L + p] = z[c]


@njit(inline="always", **JIT)
def _copy(dst, src, n):
    for j in range(n):
        dst[j] = src[j]


@njit(inline="always", **JIT)
def _window(c, hist, src, t, k, d, Lp, Ci):
    """c = the k taps of output t over ``src`` (T frames) after the history ``hist``."""
    T = src.shape[0]
    for j in range(k):
        tau = t - Lp + j * d
        seg = c[j * Ci:(j + 1) * Ci]
        if tau < 0:
            _copy(seg, hist[(Lp + tau) * Ci:(Lp + tau + 1) * Ci], Ci)
        elif tau < T:
            _copy(seg, src[tau], Ci)
        else:
            seg[:] = 0.0


@njit(**JIT)
def tconv_stream(kinds, w, row, state, src, dst, cols, Zflat, mb):
    """A temporal conv row over T consecutive frames of one stream."""
    T, Ci = src.shape[0], row[C_K]
    k, d, Lp = row[TCONV_TAPS], row[TCONV_DILATION], row[TCONV_LEFT]
    hist = vector(state, row[TCONV_HIST], Lp * Ci)
    C = matrix(cols, 0, T, k * Ci)
    for t in range(T):
        _window(C[t], hist, src, t, k, d, Lp, Ci)
    dense_rows(w, row, _project(kinds, w, row, C, Zflat, mb), dst)
    if Lp == 0:
        return
    if T >= Lp:
        for f in range(Lp):
            _copy(hist[f * Ci:(f + 1) * Ci], src[T - Lp + f], Ci)
    else:
        keep = (Lp - T) * Ci
        for j in range(keep):
            hist[j] = hist[j + T * Ci]
        for f in range(T):
            _copy(hist[keep + f * Ci:keep + (f + 1) * Ci], src[f], Ci)


@njit(**JIT)
def tconv_pool(kinds, w, row, slab, S, slots, src, dst, cols, Zflat):
    """A temporal conv row over one frame each of the pool streams ``slots``."""
    T, Ci = src.shape[0], row[C_K]
    k, d, Lp = row[TCONV_TAPS], row[TCONV_DILATION], row[TCONV_LEFT]
    C = matrix(cols, 0, T, k * Ci)
    for t in range(T):
        _window(C[t], vector(slab, slots[t] * S + row[TCONV_HIST], Lp * Ci), src[t:t + 1], 0, k, d, Lp, Ci)
    dense_rows(w, row, _project(kinds, w, row, C, Zflat, None), dst)
    if Lp == 0:
        return
    for t in range(T):
        hist = vector(slab, slots[t] * S + row[TCONV_HIST], Lp * Ci)
        for j in range((Lp - 1) * Ci):
            hist[j] = hist[j + Ci]
        _copy(hist[(Lp - 1) * Ci:Lp * Ci], src[t], Ci)


ROW_KINDS = (
    RowKind(K_CONV, "Conv1d", conv_rows, args=("kinds", "w", "row", "ints", "src", "dst", "cols", "Zflat", "mb")),
    RowKind(K_TCONV, "TimeConv1d", tconv_stream, args=("kinds", "w", "row", "state", "src", "dst", "cols", "Zflat", "mb"),
            pool_run=tconv_pool, pool_args=("kinds", "w", "row", "state", "S", "slots", "src", "dst", "cols", "Zflat")),
)
