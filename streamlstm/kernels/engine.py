"""The stream entry points: advance a whole network over T >= 1 frames in one native call.

``advance(wbuf, table, state, work, X, Y)``: X is the flat (T*I) input, Y the flat (T*O)
output (both of any stride: the kernel copies X into ``work`` while checking it), ``state`` the
stream's flat state (updated in place), ``work`` scratch of ``Plan.work_size(T)`` elements laid
out as [sequence A | sequence B | gate rows Z | u | v | input copy]. Layers run one after the
other over the whole chunk (the input projection of all T frames is one batched product), so one
frame and T frames share the same arithmetic. Returns 0, or -(t+1) when frame t holds NaN/Inf
(then nothing was touched). ``advance_shared`` adds a helper mailbox (``Session.run`` of a
``threads=2`` session).

``advance_at(ctx, x, y)`` is the same step for a Session, with its four buffers passed by
address (``ctx``: see ``session_context``) so that only three arguments cross from Python.
"""

import math

from numba import njit

from .config import JIT
from .layout import HDR_GMAX, HDR_IN, HDR_OUT, HDR_VMAX, HDR_WMAX, NCOLS
from .lean_cache import lean_cache
from .rows import run_rows, sequence
from .views import const_floats_at, floats_at, ints_at, matrix, vector


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
def advance(wbuf, table, state, work, X, Y):
    return _advance(wbuf, table, state, work, X, Y, ints_at(0, 0))


@njit(**JIT)
def advance_shared(wbuf, table, state, work, X, Y, mb):
    """``advance`` with the helper mailbox ``mb`` of a ``threads=2`` session: large products of
    the chunk, its input projections included, are split with the helper (``split.py``)."""
    return _advance(wbuf, table, state, work, X, Y, mb)


@njit(inline="always", **JIT)  # inlined into the entry points: one link level less to compile
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
    final = run_rows(wbuf, table, state, work, Xc, 0, T, None, None, mb)
    out = sequence(final, Xc, 0, vector(work, 0, T * Wmax), vector(work, T * Wmax, T * Wmax), 1, T * O)[0]
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
