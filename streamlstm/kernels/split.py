"""The products of the kernels over stored matrices, and the two-core split of the large ones.

``stored_acc`` and ``stored_project`` are the products every row runs (through
``stored.columns_acc``). Threading belongs here, not to the cells: given a live helper
mailbox, a product of at least ``SPLIT_MIN`` multiply-adds (one row, or the T rows of a
chunk's input projection) has half of its columns computed by a helper thread. In a chunk
each thread then also keeps its half of every recurrent matrix in its own core's cache
across the frames.

A Session opened with ``threads=2`` owns a helper thread that spins (GIL released) on a
mailbox, an int64 array whose hot fields sit on separate cache lines. For every matrix
product of at least ``SPLIT_MIN`` multiply-adds, the stepping thread posts a job (the matrix,
x, y and the column range of the second half), computes the first half, then **claims** the
job itself if the helper has not: a helper that sleeps, was descheduled or is gone only
costs speed, never a deadlock. Each column keeps its FMA chain, so results are bit-identical
to one thread. Elementwise gate updates stay on the stepping thread.

Protocol (job numbers increase by one; a job is claimed exactly once, by a compare-exchange
of CLAIM from n-1 to n, before the next is posted): the stepping thread writes the fields,
then JOB = n (release); whoever claims n computes the second half; the helper then stores
DONE = n (release), which the stepping thread waits for. A stepping thread first takes
OWNER (compare-exchange 0 -> 1): two threads stepping one session at once (a misuse) cannot
interleave jobs and wait forever; the one without OWNER computes alone.

Parking (Linux): after ``idle_cycles`` without a job the helper sets PARKED and sleeps in
futex(2) on it, still inside the kernel with the GIL released; the next shared product of a
step swaps PARKED back to 0 and wakes it with one system call. Neither side touches the GIL,
so a step after a pause never waits for Python's thread switch (as waking through a Python
Event did, see docs/ARCHITECTURE.md). Elsewhere the helper
returns ``HELPER_IDLE`` and its Python loop sleeps on an Event instead.
"""

import platform

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload
from numba.np.arrayobj import make_array

from .config import JIT
from .kindset import KindSet
from .simd import panel_width_of
from .stored import columns_acc
from .views import const_floats_at, floats_at, matrix

MB_JOB, MB_CLAIM, MB_DONE, MB_STOP, MB_OWNER, MB_PARKED = 0, 8, 16, 24, 32, 40
# the posted job: the weight buffer (address, size), the stored matrix (see ``stored.py``),
# x and y (addresses) and the helper's column range c0:c1
MB_W, MB_W_SIZE, MB_OFF, MB_K, MB_G, MB_FMT, MB_SCALES, MB_X, MB_Y, MB_C0, MB_C1, MB_ROWS = range(48, 60)
MAILBOX_SIZE = 64
KINDS = KindSet((), "products")  # the helper's: no row kinds, every weight format
SPLIT_MIN = 65536
HELPER_STOPPED, HELPER_IDLE = 0, 1

_X86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")
_SYS_FUTEX = {"x86_64": 202, "amd64": 202, "aarch64": 98, "arm64": 98}.get(platform.machine().lower())
PARKS_IN_KERNEL = platform.system() == "Linux" and _SYS_FUTEX is not None
_FUTEX_WAIT_PRIVATE, _FUTEX_WAKE_PRIVATE = 128, 129


def _slot(context, builder, aryty, ary, index, indexty):
    a = make_array(aryty)(context, builder, ary)
    return builder.gep(a.data, [context.cast(builder, index, indexty, types.intp)])


@intrinsic
def atomic_load(typingctx, arr, i):
    """arr[i] (int64) with acquire ordering."""
    def codegen(context, builder, sig, args):
        return builder.load_atomic(_slot(context, builder, sig.args[0], args[0], args[1], sig.args[1]),
                                   "acquire", 8)
    return types.int64(arr, i), codegen


@intrinsic
def atomic_store(typingctx, arr, i, v):
    """arr[i] = v (int64) with release ordering."""
    def codegen(context, builder, sig, args):
        v = context.cast(builder, args[2], sig.args[2], types.int64)
        builder.store_atomic(v, _slot(context, builder, sig.args[0], args[0], args[1], sig.args[1]), "release", 8)
        return context.get_dummy_value()
    return types.void(arr, i, v), codegen


@intrinsic
def compare_exchange(typingctx, arr, i, expected, new):
    """Atomically: if arr[i] == expected, arr[i] = new and True; else False."""
    def codegen(context, builder, sig, args):
        ptr = _slot(context, builder, sig.args[0], args[0], args[1], sig.args[1])
        e = context.cast(builder, args[2], sig.args[2], types.int64)
        n = context.cast(builder, args[3], sig.args[3], types.int64)
        return builder.extract_value(builder.cmpxchg(ptr, e, n, "acq_rel", "acquire"), 1)
    return types.boolean(arr, i, expected, new), codegen


@intrinsic
def exchange(typingctx, arr, i, v):
    """Atomically arr[i] = v (int64, sequentially consistent); returns the old value."""
    def codegen(context, builder, sig, args):
        ptr = _slot(context, builder, sig.args[0], args[0], args[1], sig.args[1])
        v = context.cast(builder, args[2], sig.args[2], types.int64)
        return builder.atomic_rmw("xchg", ptr, v, "seq_cst")
    return types.int64(arr, i, v), codegen


@intrinsic
def futex(typingctx, arr, i, op, val):
    """Linux futex(2) on the low 32 bits of arr[i] (int64, little-endian) with no timeout: op
    _FUTEX_WAIT_PRIVATE sleeps while the word equals val, _FUTEX_WAKE_PRIVATE wakes up to val
    sleepers. A no-op returning -1 where ``PARKS_IN_KERNEL`` is False."""
    def codegen(context, builder, sig, args):
        i64 = ir.IntType(64)
        if not PARKS_IN_KERNEL:
            return ir.Constant(i64, -1)
        ptr = _slot(context, builder, sig.args[0], args[0], args[1], sig.args[1])
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i64, [i64], var_arg=True), "syscall")
        op, val = (context.cast(builder, a, t, types.int64) for a, t in zip(args[2:], sig.args[2:]))
        zero = ir.Constant(i64, 0)
        return builder.call(fn, [ir.Constant(i64, _SYS_FUTEX), builder.ptrtoint(ptr, i64), op, val, zero, zero, zero])
    return types.int64(arr, i, op, val), codegen


@intrinsic
def store_int(typingctx, arr, i, v):
    """arr[i] = v on an int64 array typed read-only (the mailbox fields before a release)."""
    def codegen(context, builder, sig, args):
        v = context.cast(builder, args[2], sig.args[2], types.int64)
        builder.store(v, _slot(context, builder, sig.args[0], args[0], args[1], sig.args[1]))
        return context.get_dummy_value()
    return types.void(arr, i, v), codegen


@intrinsic
def spin_pause(typingctx):
    """The CPU's spin-wait hint (x86 PAUSE)."""
    def codegen(context, builder, sig, args):
        if _X86:
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                "llvm.x86.sse2.pause")
            builder.call(fn, [])
        return context.get_dummy_value()
    return types.void(), codegen


@intrinsic
def cycles(typingctx):
    """The CPU's cycle counter (for the helper's idle timeout)."""
    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(64), []),
                                            "llvm.readcyclecounter")
        return builder.call(fn, [])
    return types.int64(), codegen


@intrinsic
def address(typingctx, arr):
    """The data address of an array, as an int64."""
    if not isinstance(arr, types.Array):
        return None

    def codegen(context, builder, sig, args):
        a = make_array(sig.args[0])(context, builder, args[0])
        return builder.ptrtoint(a.data, ir.IntType(64))
    return types.int64(arr), codegen


def stored_acc(kinds, w, m, x, y, mb):
    """y += x @ M for the stored matrix ``m`` of ``w`` (see ``stored.py``; ``kinds``: the
    caller's ``KindSet``, whose formats it is compiled for); given a live helper mailbox ``mb``
    and one row x of a large product, half of the columns run on the helper."""


@overload(stored_acc, inline="always", jit_options=JIT)
def _stored_acc(kinds, w, m, x, y, mb):
    if mb is types.none or x.layout != "C" or y.layout != "C":
        def local(kinds, w, m, x, y, mb):
            columns_acc(kinds, w, m, x, y, 0, -1)

        return local

    if x.ndim == 2:  # the T rows of a chunk (rows and columns C-contiguous): split by columns too
        def rows_impl(kinds, w, m, x, y, mb):
            if mb.shape[0] == 0 or x.shape[0] * m[1] * m[2] < SPLIT_MIN:
                columns_acc(kinds, w, m, x, y, 0, -1)
            else:
                _shared_acc(kinds, w, m, x, y, mb)

        return rows_impl

    def impl(kinds, w, m, x, y, mb):  # inlined: only the test, the job is a call
        if mb.shape[0] == 0 or m[1] * m[2] < SPLIT_MIN:
            columns_acc(kinds, w, m, x, y, 0, -1)
        else:
            _shared_acc(kinds, w, m, x, y, mb)

    return impl


@njit(inline="always", **JIT)
def stored_project(kinds, w, m, bias, X, Z, mb):
    """Z[t, :G] = bias + X[t] @ M for every row t of X (the input product of a row)."""
    G = m[2]
    for t in range(X.shape[0]):
        z = Z[t]
        for g in range(G):
            z[g] = bias[g]
    if X.shape[0] == 1:
        stored_acc(kinds, w, m, X[0], Z[0], mb)
    else:
        stored_acc(kinds, w, m, X, Z, mb)


@njit(**JIT)
def _shared_acc(kinds, w, m, x, y, mb):
    """``stored_acc`` through the helper: post the second half, compute the first, then claim
    the job or wait for the helper's DONE. ``x``, ``y``: one row (1-D) or C-contiguous rows."""
    G = m[2]
    if atomic_load(mb, MB_PARKED) != 0:
        wake_helper(mb)
    mid = (G // 2) // panel_width_of(y) * panel_width_of(y)
    if mid == 0 or not compare_exchange(mb, MB_OWNER, 0, 1):
        columns_acc(kinds, w, m, x, y, 0, -1)
        return
    job = atomic_load(mb, MB_JOB) + 1
    store_int(mb, MB_W, address(w))
    store_int(mb, MB_W_SIZE, w.shape[0])
    store_int(mb, MB_OFF, m[0])
    store_int(mb, MB_K, m[1])
    store_int(mb, MB_G, G)
    store_int(mb, MB_FMT, m[3])
    store_int(mb, MB_SCALES, m[4])
    store_int(mb, MB_X, address(x))
    store_int(mb, MB_Y, address(y))
    store_int(mb, MB_C0, mid)
    store_int(mb, MB_C1, G)
    store_int(mb, MB_ROWS, x.shape[0] if x.ndim == 2 else 0)
    atomic_store(mb, MB_JOB, job)
    columns_acc(kinds, w, m, x, y, 0, mid)
    if compare_exchange(mb, MB_CLAIM, job - 1, job):
        columns_acc(kinds, w, m, x, y, mid, G)  # the helper is away: do its half too
    else:
        while atomic_load(mb, MB_DONE) != job:
            spin_pause()
    atomic_store(mb, MB_OWNER, 0)


@njit(**JIT)
def _run_job(kinds, mb, like):
    w = const_floats_at(mb[MB_W], mb[MB_W_SIZE], like)
    m = (mb[MB_OFF], mb[MB_K], mb[MB_G], mb[MB_FMT], mb[MB_SCALES])
    T = mb[MB_ROWS]
    if T == 0:
        x = floats_at(mb[MB_X], mb[MB_K], like)
        y = floats_at(mb[MB_Y], mb[MB_G], like)
        columns_acc(kinds, w, m, x, y, mb[MB_C0], mb[MB_C1])
    else:  # the rows of a chunk
        X = matrix(floats_at(mb[MB_X], T * mb[MB_K], like), 0, T, mb[MB_K])
        Y = matrix(floats_at(mb[MB_Y], T * mb[MB_G], like), 0, T, mb[MB_G])
        columns_acc(kinds, w, m, X, Y, mb[MB_C0], mb[MB_C1])


@njit(**JIT)
def wake_helper(mb):
    """Wake a helper parked in the kernel (no-op if it is not parked)."""
    if exchange(mb, MB_PARKED, 0) != 0:
        futex(mb, MB_PARKED, _FUTEX_WAKE_PRIVATE, 1)


@njit(**JIT)
def _park(mb):
    """Sleep until ``wake_helper`` (PARKED is set first, so a wake cannot be missed)."""
    exchange(mb, MB_PARKED, 1)
    while atomic_load(mb, MB_PARKED) != 0 and atomic_load(mb, MB_STOP) == 0:
        futex(mb, MB_PARKED, _FUTEX_WAIT_PRIVATE, 1)


@njit(**JIT)
def helper_loop(mb, like, idle_cycles):
    """Serve jobs from mailbox ``mb`` (``like``: any array of the model's dtype) until STOP
    (returns HELPER_STOPPED). After ``idle_cycles`` without a job it parks in the kernel
    (Linux) or returns HELPER_IDLE (elsewhere). Its products read the formats of the global
    ``KINDS`` (``kindset.entry_for`` makes copies for one format)."""
    seen = atomic_load(mb, MB_JOB)
    last = cycles()
    while True:
        job = atomic_load(mb, MB_JOB)
        if job != seen:
            seen = job
            if compare_exchange(mb, MB_CLAIM, job - 1, job):
                _run_job(KINDS, mb, like)
                atomic_store(mb, MB_DONE, job)
            last = cycles()
        elif atomic_load(mb, MB_STOP) != 0:
            return HELPER_STOPPED
        elif cycles() - last > idle_cycles:
            if not PARKS_IN_KERNEL:
                return HELPER_IDLE
            _park(mb)
            last = cycles()
        else:
            spin_pause()
