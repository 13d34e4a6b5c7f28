"""The SessionPool entry points: advance n distinct streams by one frame each in one native call.

``pool_advance(wbuf, table, slab, live, iwork, ids, work, hbuf, X, Y, err)``:

- ``slab`` is the flat (capacity * S) state of every slot, ``live[slot]`` the id open in that
  slot (or -1); an id addresses slot ``id % capacity``.
- ``ids`` (n,) the streams to advance, ``X`` (n, I) their frames, ``Y`` (n, O) the outputs;
  ``iwork`` int scratch of 2 * capacity; with NB = ``block_rows(capacity, weight_bytes)``
  rows per block, ``work`` float scratch of ``Plan.work_size(NB)`` and ``hbuf`` of NB * Wmax
  (gathered h).

``pool_validate`` + ``pool_compute`` on disjoint slices of the slots split the same step over
threads (both release the GIL).

Everything is validated before the slab is touched; on failure ``err`` = (kind, index) and
the return value is nonzero (kinds below). Streams run in blocks of NB rows through the row
interpreter's pool schedule (``rows.py``): the input projection of the block is one (NB, K) x
(K, G) product, the recurrent term one (NB, P) x (P, G) product over the block's gathered h
rows; then each stream's gates are updated in place on its slab row by the per-frame maths. Every
element gets the same arithmetic as in ``Session.step`` (``simd.panel_acc`` gives each row the
same FMA chain however many rows it processes together), so pool streams and sessions agree
bit for bit (tests/runtime/test_pool.py checks it).
"""


from numba import njit

from .config import JIT
from .engine import bad_value
from .layout import HDR_IN, HDR_OUT, HDR_VOCAB, HDR_WMAX
from .rows import ALL_KINDS, run_rows
from .views import sequence

# Streams per block. Each product reads every weight panel once per block, so fewer, larger
# blocks stream the weights fewer times; a block's gate rows and sequences must still stay in
# cache, which a smaller model's block uses better (docs/PERFORMANCE.md has the measurements
# behind both sizes and the threshold between them).
BLOCK = 64
LARGE_BLOCK = 256
LARGE_WEIGHT_BYTES = 8 << 20

ERR_ID = 1         # ids[index] is not open in this pool (closed, unknown or negative)
ERR_DUPLICATE = 2  # ids[index] repeats an earlier id of the same call
ERR_FRAME = 3      # X[index] holds NaN or Inf (or, for a token-id input, a value that is no id)


KINDS = ALL_KINDS  # the row kinds the entry points handle; ``kindset.entry_for`` makes copies for fewer


def block_rows(capacity: int, weight_bytes: int = 0) -> int:
    """Rows per block for a pool of ``capacity`` slots over weights of ``weight_bytes`` (size
    the float scratch with it)."""
    block = LARGE_BLOCK if weight_bytes > LARGE_WEIGHT_BYTES else BLOCK
    return max(1, min(block, capacity))


@njit(**JIT)
def validate(live, iwork, ids, X, I, vocab, err):
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
        if bad_value(X[k], vocab):
            err[0] = ERR_FRAME
            err[1] = k // I
            return 1
    return 0


@njit(**JIT)
def pool_compute(wbuf, table, slab, slots, work, hbuf, X, Y):
    """Advance the streams in ``slots`` (validated, distinct) by the frames X (m, I) into Y (m, O)."""
    _pool_rows(KINDS, wbuf, table, slab, slots, work, hbuf, X, Y)


@njit(inline="always", **JIT)
def _pool_rows(kinds, wbuf, table, slab, slots, work, hbuf, X, Y):
    I = table[0, HDR_IN]
    O = table[0, HDR_OUT]
    Wmax = table[0, HDR_WMAX]
    n = slots.shape[0]
    Xf = X.reshape(-1)
    NB = hbuf.shape[0] // Wmax
    for b0 in range(0, n, NB):
        T = min(NB, n - b0)
        final = run_rows(kinds, wbuf, table, slab, work, Xf, b0 * I, T, slots[b0:b0 + T], hbuf, None)
        out = sequence(final, Xf, b0 * I, work, T * Wmax, T, O)
        for t in range(T):
            o = out[t]
            y = Y[b0 + t]
            for j in range(O):
                y[j] = o[j]


@njit(**JIT)
def pool_advance(wbuf, table, slab, live, iwork, ids, work, hbuf, X, Y, err):
    """Validate, then advance the streams ``ids`` by X (n, I) into Y (n, O). Returns 0 or 1 (see err)."""
    if validate(live, iwork, ids, X.reshape(-1), table[0, HDR_IN], table[0, HDR_VOCAB], err):
        return 1
    cap = live.shape[0]
    _pool_rows(KINDS, wbuf, table, slab, iwork[cap:cap + ids.shape[0]], work, hbuf, X, Y)
    return 0


@njit(**JIT)
def pool_validate(live, iwork, ids, X, vocab, err):
    """``validate`` alone, for a step whose compute is split over threads. Returns 0 or 1."""
    return validate(live, iwork, ids, X.reshape(-1), X.shape[1], vocab, err)
