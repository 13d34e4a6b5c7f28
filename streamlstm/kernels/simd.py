"""The matrix product every layer runs on, written as explicit SIMD in LLVM IR.

Weights are stored **panel-major**: the transposed matrix ``Wt`` (K, G) is cut into column
panels of ``BW`` = 256 bytes of activations (64 float32 / 32 float64 columns; the last panel
may be narrower, G being a multiple of one 64-byte vector), and each panel is stored as a
contiguous (K, width) block. ``panel_acc`` keeps a panel's columns for up to 4 rows of X in
registers while it streams the panel once from memory, one FMA per weight vector, so the
weights are read strictly sequentially (Numba's loop vectoriser re-loads and re-stores the
output for every input row instead; at 64x256 this kernel is 1.3x faster from L2 and 2x from
L1). Passes over 2-4 rows hold a panel row in 4 zmm vectors (without AVX-512: three ymm of
it at a time, see ``MANY_ROWS``); one-row passes (every
``Session.step``) over float weights in 8 ymm vectors: the same bytes per FMA chain step,
twice the independent chains, and on Zen 4 a weight stream 1.3% faster (enh step 50.1 -> 48.6
us). int8 codes stay in zmm: widening them costs instructions per vector. bf16 words hold two
columns of one row (``PAIR_WORDS``), so the shift and the mask that widen a word feed two
independent FMA chains; with the earlier layout (two rows per word) both halves fed one chain,
and the words of a whole panel row stayed live until the second FMA, spilling on AVX2 (Zen 3:
bf16 enh step 56-60 -> 44-50 us, chunks 1.4-1.7x faster per frame).

Every output element is one FMA chain over k = 0..K-1 in order, whatever the number of rows
processed together, so one frame, a chunk of T frames and a pool of streams get bit-identical
results. Stored values may be floats, bf16 bit patterns (uint16) or int8 codes (then
``scale`` (K,) multiplies the inputs: one scale per stored row); codes are packed by
32-bit words (see ``to_panels``).
"""

import numpy as np

from llvmlite import binding as llvm, ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload
from numba.np.arrayobj import make_array

from .config import JIT

PANEL_BYTES = 256          # 64 float32 / 32 float64 columns per panel
VECTOR_BYTES = 64          # passes over 2-4 rows: 4 zmm vectors per panel row
ONE_ROW_VECTOR_BYTES = 32  # one-row passes over float weights: 8 ymm vectors
ROWS_PER_PASS = 4
# Without AVX-512 there are 16 vector registers, not 32: 4 rows x 4 zmm (legalised to 32 ymm)
# spilled, and a chunk ran slower per frame than single steps (enh 114 vs 79 us per frame on
# Zen 3). There, passes over several rows cover 3 ymm of a panel row at a time (passes of
# 3, 3 and 2 vectors): 12 accumulators for 4 rows (enh chunk 107 -> 58-66 us per frame; 3 rows
# x 4 ymm, 4 x 2 and 2 x 8 measured slower, 6 x 2 alike).
_AVX512 = llvm.get_host_cpu_features().get("avx512f", False)
MANY_ROWS = (ROWS_PER_PASS, VECTOR_BYTES, PANEL_BYTES) if _AVX512 else (ROWS_PER_PASS, 32, 96)
# bf16 words hold two columns of one row (see ``to_panels``): 8 words widen to two ymm of
# float32, so every bf16 pass works in ymm; its passes over 2-4 rows cover PAIR_PASS_BYTES of
# activations (whole 16-column blocks).
PAIR_WORDS = 8
PAIR_PASS_BYTES = 128 if _AVX512 else 64


def panel_width(dtype: np.dtype) -> int:
    """Columns per panel for activations of ``dtype``."""
    return PANEL_BYTES // np.dtype(dtype).itemsize


def row_group(dtype) -> int:
    """Rows interleaved per 32-bit word: 4 for int8 codes, else 1."""
    return 4 if np.dtype(dtype) == np.int8 else 1


def _pair_columns(Wt: np.ndarray) -> np.ndarray:
    """Each block of 2 x ``PAIR_WORDS`` columns reordered so that word j holds columns j (low
    half) and PAIR_WORDS + j (high half)."""
    K, G = Wt.shape
    blocks = Wt.reshape(K, G // (2 * PAIR_WORDS), 2, PAIR_WORDS)
    return np.ascontiguousarray(blocks.transpose(0, 1, 3, 2)).reshape(K, G)


def to_panels(Wt: np.ndarray, lanes: int) -> np.ndarray:
    """(K, G) row-major -> the same values panel-major (flat).

    So that the kernel widens codes with a shift, a mask or an in-lane byte shuffle instead of
    a cross-lane extending load, each 32-bit word holds two bf16 columns of one row
    (``_pair_columns``: a 16-column block widens to two ymm with one shift and one mask, each
    feeding its own FMA chain) or one column's int8 codes for 4 consecutive rows (int8 1.1x
    faster on enh than extending loads; K is padded with zero rows to a whole group)."""
    K, G = Wt.shape
    if G % lanes:
        raise ValueError(f"panel layout needs G ({G}) to be a multiple of {lanes}")
    if Wt.dtype == np.uint16:
        Wt = _pair_columns(Wt)
    grp = row_group(Wt.dtype)
    Kp = -(-K // grp) * grp
    if Kp != K:
        Wt = np.concatenate([Wt, np.zeros((Kp - K, G), Wt.dtype)])
    bw = PANEL_BYTES * lanes // VECTOR_BYTES
    full = G // bw * bw
    q = Kp // grp
    parts = [Wt[:, :full].reshape(q, grp, full // bw, bw).transpose(2, 0, 3, 1).ravel()]
    if full < G:
        parts.append(Wt[:, full:].reshape(q, grp, G - full).transpose(0, 2, 1).ravel())
    return np.concatenate(parts)


def _row_geometry(builder, ary, ty):
    """(rows, byte stride between rows, byte stride between elements, row length) of a 1-D/2-D array."""
    intp = ir.IntType(64)
    if ty.ndim == 1:
        (n,) = cgutils.unpack_tuple(builder, ary.shape, 1)
        (s,) = cgutils.unpack_tuple(builder, ary.strides, 1)
        return ir.Constant(intp, 1), ir.Constant(intp, 0), s, n
    rows, n = cgutils.unpack_tuple(builder, ary.shape, 2)
    rs, s = cgutils.unpack_tuple(builder, ary.strides, 2)
    return rows, rs, s, n


def _panel_codegen(Wty, Xty, Zty, Sty):
    fty = Zty.dtype

    def codegen(context, builder, signature, args):
        w_arg, x_arg, z_arg, s_arg, c0, c1 = args
        intp = ir.IntType(64)
        c = lambda v: ir.Constant(intp, v)
        fl = context.get_value_type(fty)
        fsize = context.get_abi_sizeof(fl)
        BW = PANEL_BYTES // fsize
        wel = context.get_value_type(Wty.dtype)
        wsize = context.get_abi_sizeof(wel)
        i8p = ir.IntType(8).as_pointer()
        max_rows = 1 if Xty.ndim == 1 else MANY_ROWS[0]

        class Vectors:
            """The SIMD geometry of a pass: lanes, vector types, the FMA, the accumulators (``n``
            vectors per row: a panel row, or ``pass_bytes`` of it)."""

            def __init__(self, nbytes, rows, pass_bytes=PANEL_BYTES):
                self.L = nbytes // fsize
                self.n = pass_bytes // fsize // self.L
                self.vec = ir.VectorType(fl, self.L)
                self.i32v = ir.VectorType(ir.IntType(32), self.L)
                self.fma = cgutils.get_or_insert_function(
                    builder.module, ir.FunctionType(self.vec, [self.vec] * 3),
                    f"llvm.fma.v{self.L}{'f32' if fty == types.float32 else 'f64'}")
                self.accs = [[cgutils.alloca_once(builder, self.vec) for _ in range(self.n)]
                             for _ in range(rows)]

        grp = row_group(np.dtype(Wty.dtype.name))
        pairs = Wty.dtype == types.uint16  # bf16: two columns per word
        cols = 2 if pairs else 1
        one_row = Vectors(PAIR_WORDS * fsize if pairs else ONE_ROW_VECTOR_BYTES if grp == 1 else VECTOR_BYTES, 1)
        if max_rows == 1:
            many_rows = None
        elif pairs:
            many_rows = Vectors(PAIR_WORDS * fsize, max_rows, PAIR_PASS_BYTES)
        else:
            many_rows = Vectors(MANY_ROWS[1], max_rows, MANY_ROWS[2])

        W = make_array(Wty)(context, builder, w_arg)
        X = make_array(Xty)(context, builder, x_arg)
        Z = make_array(Zty)(context, builder, z_arg)
        K, G = cgutils.unpack_tuple(builder, W.shape, 2)
        nrows, xrs, xcs, _ = _row_geometry(builder, X, Xty)
        _, zrs, _, _ = _row_geometry(builder, Z, Zty)
        wbase = builder.bitcast(W.data, i8p)
        xbase = builder.bitcast(X.data, i8p)
        zbase = builder.bitcast(Z.data, i8p)
        if Sty != types.none:
            S = make_array(Sty)(context, builder, s_arg)
            sbase = builder.bitcast(S.data, i8p)
            (ss,) = cgutils.unpack_tuple(builder, S.strides, 1)
        nfull = builder.sdiv(G, c(BW))
        full_end = builder.mul(nfull, c(BW))

        def load_words(g, ptr, nv):
            """The nv weight vectors of a row group: floats, or 32-bit words holding the bf16
            bits of 2 columns or the int8 codes of 4 rows."""
            vt = g.vec if grp == cols == 1 else g.i32v
            step = g.L * wsize * grp * cols
            return [builder.load(builder.bitcast(builder.gep(ptr, [c(v * step)]), vt.as_pointer()),
                                 align=min(wsize * grp, 4)) for v in range(nv)]

        def widen(g, word, i):
            """Part i of a word vector as floats: bf16, the lower or upper half of each word;
            int8, row i: code * 2**24 (one in-lane byte shuffle and a convert; ``broadcast`` scales x
            by 2**-24, exactly)."""
            L = g.L
            if Wty.dtype == types.int8:  # byte i of each word to the top byte, zeros below
                bytes_ = builder.bitcast(word, ir.VectorType(ir.IntType(8), 4 * L))
                mask = [x for d in range(L) for x in (4 * L, 4 * L, 4 * L, 4 * d + i)]
                top = builder.shuffle_vector(bytes_, ir.Constant(ir.VectorType(ir.IntType(8), 4 * L), None),
                                             ir.Constant(ir.VectorType(ir.IntType(32), 4 * L), mask))
                return builder.sitofp(builder.bitcast(top, g.i32v), g.vec)
            if grp == cols == 1:
                return word
            bits = (builder.shl(word, ir.Constant(g.i32v, [16] * L)) if i == 0
                    else builder.and_(word, ir.Constant(g.i32v, [-65536] * L)))
            f32 = builder.bitcast(bits, ir.VectorType(ir.FloatType(), L))
            return f32 if fty == types.float32 else builder.fpext(f32, g.vec)

        def broadcast(g, row, k, guarded=False):
            if guarded:  # a padded row of the last group: x = 0 (its codes are 0 too)
                inside = builder.icmp_signed("<", k, K)
                k = builder.select(inside, k, builder.sub(K, c(1)))
            p = builder.gep(xbase, [builder.add(builder.mul(row, xrs), builder.mul(k, xcs))])
            xv = builder.load(builder.bitcast(p, fl.as_pointer()))
            if Sty != types.none:
                sp = builder.gep(sbase, [builder.mul(k, ss)])
                xv = builder.fmul(xv, builder.load(builder.bitcast(sp, fl.as_pointer())))
                if grp == 4:  # the codes were widened as code * 2**24
                    xv = builder.fmul(xv, ir.Constant(fl, 2.0 ** -24))
            if guarded:
                xv = builder.select(inside, xv, ir.Constant(fl, 0.0))
            one = builder.insert_element(ir.Constant(g.vec, ir.Undefined), xv, ir.Constant(ir.IntType(32), 0))
            return builder.shuffle_vector(one, ir.Constant(g.vec, ir.Undefined),
                                          ir.Constant(ir.VectorType(ir.IntType(32), g.L), [0] * g.L))

        def z_ptr(g, row, col, v):
            p = builder.gep(zbase, [builder.add(builder.mul(row, zrs), builder.mul(builder.add(col, c(v * g.L)), c(fsize)))])
            return builder.bitcast(p, g.vec.as_pointer())

        def panel(g, row0, tb, nv, col, panel_start, width):
            """Z[row0:row0+tb, col:col+nv*L] += X[row0:row0+tb] @ panel."""
            accs = g.accs
            for t in range(tb):
                for v in range(nv):
                    builder.store(builder.load(z_ptr(g, builder.add(row0, c(t)), col, v), align=fsize), accs[t][v])
            group_bytes = builder.mul(width, c(wsize * grp))

            def group(q, guarded):
                if pairs:
                    words = load_words(g, builder.gep(wbase, [builder.add(panel_start, builder.mul(q, group_bytes))]), nv // 2)
                    xbs = [broadcast(g, builder.add(row0, c(t)), q) for t in range(tb)]
                    for j, word in enumerate(words):
                        for half in range(2):
                            w = widen(g, word, half)
                            for t in range(tb):
                                a = accs[t][2 * j + half]
                                builder.store(builder.call(g.fma, [w, xbs[t], builder.load(a)]), a)
                    return
                words = load_words(g, builder.gep(wbase, [builder.add(panel_start, builder.mul(q, group_bytes))]), nv)
                for i in range(grp):
                    k = builder.add(builder.mul(q, c(grp)), c(i))
                    ws = [widen(g, w, i) for w in words]
                    for t in range(tb):
                        xb = broadcast(g, builder.add(row0, c(t)), k, guarded and i > 0)
                        for v in range(nv):
                            builder.store(builder.call(g.fma, [ws[v], xb, builder.load(accs[t][v])]), accs[t][v])

            whole = builder.sdiv(K, c(grp))
            with cgutils.for_range(builder, whole) as loop:
                group(loop.index, False)
            if grp > 1:
                with builder.if_then(builder.icmp_signed("!=", builder.mul(whole, c(grp)), K)):
                    group(whole, True)
            for t in range(tb):
                for v in range(nv):
                    builder.store(builder.load(accs[t][v]), z_ptr(g, builder.add(row0, c(t)), col, v), align=fsize)

        def columns(g, row0, tb):
            first = builder.sdiv(c0, c(BW))
            last = builder.sdiv(builder.select(builder.icmp_signed("<", c1, full_end), c1, full_end), c(BW))
            padded_K = builder.mul(builder.sdiv(builder.add(K, c(grp - 1)), c(grp)), c(grp))
            panel_bytes = builder.mul(builder.mul(padded_K, c(BW)), c(wsize))
            def in_passes(nv, col, start, width):
                """A panel of nv vectors per row, at most g.n at a time."""
                for v0 in range(0, nv, g.n):
                    panel(g, row0, tb, min(g.n, nv - v0), builder.add(col, c(v0 * g.L)),
                          builder.add(start, c(v0 * g.L * wsize * grp)), width)

            with cgutils.for_range_slice(builder, first, last, c(1)) as (b, _):
                in_passes(BW // g.L, builder.mul(b, c(BW)), builder.mul(b, panel_bytes), c(BW))
            tail_vectors = builder.sdiv(builder.sub(G, full_end), c(g.L))
            has_tail = builder.and_(builder.icmp_signed(">=", c1, G), builder.icmp_signed(">", tail_vectors, c(0)))
            with builder.if_then(has_tail):
                start = builder.mul(nfull, panel_bytes)
                for nv in range(cols, BW // g.L, cols):  # bf16: whole blocks of 2 vectors
                    with builder.if_then(builder.icmp_signed("==", tail_vectors, c(nv))):
                        in_passes(nv, full_end, start, c(nv * g.L))

        if many_rows is None:
            columns(one_row, c(0), 1)
            return context.get_dummy_value()
        groups = builder.sdiv(nrows, c(max_rows))
        with cgutils.for_range(builder, groups) as loop:
            columns(many_rows, builder.mul(loop.index, c(max_rows)), max_rows)
        rest = builder.sub(nrows, builder.mul(groups, c(max_rows)))
        for tb in range(1, max_rows):
            with builder.if_then(builder.icmp_signed("==", rest, c(tb))):
                columns(one_row if tb == 1 else many_rows, builder.mul(groups, c(max_rows)), tb)
        return context.get_dummy_value()

    return codegen


@intrinsic
def _panel_acc(typingctx, Wt, X, Z, scale, c0, c1):
    ok = (isinstance(Wt, types.Array) and Wt.ndim == 2 and Wt.layout == "C"
          and isinstance(Z, types.Array) and Z.layout == "C" and Z.dtype in (types.float32, types.float64)
          and isinstance(X, types.Array) and X.ndim == Z.ndim and X.dtype == Z.dtype
          and (Wt.dtype == Z.dtype or Wt.dtype in (types.uint16, types.int8))
          and (scale == types.none or (isinstance(scale, types.Array) and scale.dtype == Z.dtype)))
    if not ok:
        return None
    return types.void(Wt, X, Z, scale, types.intp, types.intp), _panel_codegen(Wt, X, Z, scale)


@njit(**JIT)
def panel_acc(Wt, X, Z, scale=None, c0=0, c1=-1):
    """Z[t, c0:c1] += (X[t] * scale) @ Wt[:, c0:c1] for every row t (X, Z 1-D: one row).

    ``Wt`` is the (K, G) panel-major matrix (see ``to_panels``); c0 is a multiple of the panel
    width, c1 too or G (-1: G)."""
    _panel_acc(Wt, X, Z, scale, c0, Wt.shape[1] if c1 < 0 else c1)


def panel_width_of(arr):
    """Columns per panel for an array of activations (compile-time constant)."""


@overload(panel_width_of, inline="always", jit_options=JIT)
def _panel_width_of(arr):
    width = panel_width(np.dtype(arr.dtype.name))
    return lambda arr: width
