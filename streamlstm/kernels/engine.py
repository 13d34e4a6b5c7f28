"""The stream entry points: advance a whole network over T >= 1 frames in one native call.

``advance(wbuf, table, state, work, X, Y)``: X is the flat (T*I) input, Y the flat (T*O)
output (both of any stride: the kernel copies X into ``work`` while checking it), ``state`` the
stream's flat state (updated in place), ``work`` scratch of ``Plan.work_size(T)`` elements laid
out by ``rows.work_offsets``: [the work sequences | gate rows Z | u | v | gather windows | input copy]. Layers run one after the
other over the whole chunk (the input projection of all T frames is one batched product), so one
frame and T frames share the same arithmetic. Returns 0, or -(t+1) when frame t holds NaN/Inf
(then nothing was touched), or when it is not a token id of the vocabulary (a model whose input
is token ids: ``HDR_VOCAB``). ``advance_shared`` adds a helper mailbox (``Session.run`` of a
``threads=2`` session).

``advance_at(ctx, x, y)`` is the same step for a Session, with its four buffers passed by
address (``ctx``: see ``session_context``) so that only three arguments cross from Python.
"""

import math

from numba import njit

from .config import JIT
from .layout import HDR_IN, HDR_OUT, HDR_VOCAB, HDR_WMAX, NCOLS
from .lean_cache import lean_cache
from .rows import ALL_KINDS, run_rows, work_offsets
from .views import const_floats_at, floats_at, ints_at, matrix, sequence, vector


@njit(inline="always", **JIT)
def bad_value(v, vocab):
    """True when ``v`` is NaN/Inf, or (vocab > 0) not an integer id in [0, vocab)."""
    if not math.isfinite(v):
        return True
    return vocab > 0 and not (v >= 0 and v < vocab and math.floor(v) == v)


@njit(**JIT)
def load_input(X, dst, I, vocab):
    """Copy X into dst; returns the index of the first bad frame (``bad_value``), or -1."""
    for k in range(X.shape[0]):
        v = X[k]
        if bad_value(v, vocab):
            return k // I
        dst[k] = v
    return -1


KINDS = ALL_KINDS  # the row kinds the entry points handle; ``kindset.entry_for`` makes copies for fewer


@njit(**JIT)
def advance(wbuf, table, state, work, X, Y):
    return _advance(KINDS, wbuf, table, state, work, X, Y, None)


@njit(**JIT)
def advance_shared(wbuf, table, state, work, X, Y, mb):
    """``advance`` with the helper mailbox ``mb`` of a ``threads=2`` session: large products of
    the chunk, its input projections included, are split with the helper (``split.py``)."""
    return _advance(KINDS, wbuf, table, state, work, X, Y, mb)


@njit(inline="always", **JIT)  # inlined into the entry points: one link level less to compile
def _advance(kinds, wbuf, table, state, work, X, Y, mb):
    I = table[0, HDR_IN]
    O = table[0, HDR_OUT]
    T = X.shape[0] // I
    xo = work_offsets(table, T)[4]
    Xc = vector(work, xo, T * I)
    bad = load_input(X, Xc, I, table[0, HDR_VOCAB])
    if bad >= 0:
        return -(bad + 1)
    final = run_rows(kinds, wbuf, table, state, work, Xc, 0, T, None, None, mb)
    out = sequence(final, Xc, 0, work, T * table[0, HDR_WMAX], 1, T * O)[0]
    for k in range(T * O):
        Y[k] = out[k]
    return 0


CTX_FIELDS = 10  # address and element count of: weights, table (rows), state, work, mailbox
WRONG_SIZE = -(1 << 62)


@njit(inline="always", **JIT)
def _step_at(kinds, ctx, X, Y, shared):
    """One frame for the Session whose buffers ``ctx`` holds by address; ``shared`` (a
    compile-time constant) passes the helper mailbox, else None."""
    c = ints_at(ctx, CTX_FIELDS)
    table = matrix(ints_at(c[2], c[3] * NCOLS), 0, c[3], NCOLS)
    if X.shape[0] != table[0, HDR_IN] or Y.shape[0] != table[0, HDR_OUT]:
        return WRONG_SIZE
    w, state, work = const_floats_at(c[0], c[1], X), floats_at(c[4], c[5], X), floats_at(c[6], c[7], X)
    if shared:
        return _advance(kinds, w, table, state, work, X, Y, ints_at(c[8], c[9]))
    return _advance(kinds, w, table, state, work, X, Y, None)


@njit(**JIT)
def advance_at(ctx, X, Y):
    """``advance`` by one frame, buffers by address: X holds exactly I values and Y O values,
    else returns WRONG_SIZE (nothing touched). One thread: the mailbox in ``ctx`` is not read."""
    return _step_at(KINDS, ctx, X, Y, False)


@njit(**JIT)
def advance_at_shared(ctx, X, Y):
    """``advance_at`` of a ``threads=2`` session: large products are split with the helper
    whose mailbox ``ctx`` holds. A separate entry point, so that one-thread steps do not
    compile the split products."""
    return _step_at(KINDS, ctx, X, Y, True)


lean_cache(advance_at)  # called from Python only: a new process loads them without parsing their bitcode
lean_cache(advance_at_shared)
