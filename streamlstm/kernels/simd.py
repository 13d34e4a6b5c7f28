"""The matrix product every layer runs on, written as explicit SIMD in LLVM IR.

Weights are stored **panel-major**: the transposed matrix ``Wt`` (K, G) is cut into column
panels of ``BW`` = 256 bytes of activations (64 float32 / 32 float64 columns; the last panel
may be narrower, G being a multiple of one 64-byte vector), and each panel is stored as a
contiguous (K, width) block. ``panel_acc`` takes the panels one by one and, for each, every
group of up to 4 rows of X in turn, over blocks of ``K_BLOCK`` panel rows (a block stays in L1
meanwhile, so a product over T rows reads the weights from memory once, not once per group); it
keeps a panel's columns for a group in registers while it streams the block, one FMA per weight
vector, so the weights are read strictly sequentially (Numba's loop vectoriser re-loads and
re-stores the output for every input row instead). Passes over 2-4 rows hold a panel row in 4 zmm vectors
(without AVX-512: three ymm of it at a time, see ``MANY_ROWS``); one-row passes (every
``Session.step``) over float weights in 8 ymm vectors: the same bytes per FMA chain step,
twice the independent chains. Compressed codes are packed by columns: a 32-bit word holds 2
bf16 or 4 int8 columns of one row (``CODE_WORDS``), so the shift, mask or byte shuffle that
widens each part of a word feeds its own FMA chain. With the earlier layout (a word held 2 or
4 rows of one column) all parts fed one chain, and a panel row's words stayed live until the
last FMA, spilling on AVX2. The measurements behind these choices are in docs/ARCHITECTURE.md.

Every output element is one FMA chain over k = 0..K-1 in order, whatever the number of rows
processed together, so one frame, a chunk of T frames and a pool of streams get bit-identical
results. Stored values may be floats, bf16 bit patterns (uint16) or int8 codes (then
``scale`` (K,) multiplies the inputs: one scale per stored row); codes are packed by
32-bit words (see ``to_panels``). Two formats multiply in the CPU's dot products instead:
bf16 pairs (uint32, ``to_pairs``; the inputs rounded to bf16) and int8 quads (int32,
``to_quads``; ``scale`` (G,) one scale per column, the inputs quantised to int8 per row and
block of k, each block's products summed exactly in int32).
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
# Passes over several rows take a panel in blocks of K_BLOCK rows (16 KB of float32), each kept
# in L1 while every group of rows passes over it, not the whole panel (K = 1280: 320 KB, in L2)
# per group (docs/ARCHITECTURE.md, "Blocks of k").
K_BLOCK = 64
# Without AVX-512 there are 16 vector registers, not 32: 4 rows x 4 zmm (legalised to 32 ymm)
# spilled, and a chunk ran slower per frame than single steps. There, passes over several rows
# cover 3 ymm of a panel row at a time (passes of 3, 3 and 2 vectors): 12 accumulators for 4
# rows (3 rows x 4 ymm, 4 x 2 and 2 x 8 measured slower, 6 x 2 alike).
_AVX512 = llvm.get_host_cpu_features().get("avx512f", False)
# bf16 pairs (``PAIR_DTYPE``): the CPU's bf16 dot product (vdpbf16ps) where it has one, else the
# same two rounded steps per pair as FMAs (docs/ARCHITECTURE.md, "bf16 dot products").
_BF16_DOT = all(llvm.get_host_cpu_features().get(f, False) for f in ("avx512f", "avx512vl", "avx512bf16"))
# int8 quads (``QUAD_DTYPE``): the CPU's byte dot product (vpdpbusd, AVX512_VNNI) where it has
# one, else the same exact int32 sums from widened bytes (docs/ARCHITECTURE.md, "int8 dot products").
_VNNI = all(llvm.get_host_cpu_features().get(f, False) for f in ("avx512f", "avx512vl", "avx512vnni"))


def many_rows_geometry(avx512: bool) -> tuple[int, int, int]:
    """(rows, vector bytes, bytes per pass) of float passes over several rows."""
    return (ROWS_PER_PASS, VECTOR_BYTES, PANEL_BYTES) if avx512 else (ROWS_PER_PASS, 32, 96)


MANY_ROWS = many_rows_geometry(_AVX512)
# Compressed codes: each 32-bit word holds ``word_columns`` columns of one row (2 bf16, 4 int8),
# 8 words to a vector (one ymm), so that one load and a shift, mask or in-lane byte shuffle per
# part widen a vector into that many ymm of float32, each feeding its own FMA chain. Passes over
# 2-4 rows of them cover one block of columns (bf16 16, int8 32; bf16 with AVX-512: 2 blocks),
# and int8 passes without AVX-512 cover 2 rows, not 4 (4 x 4 accumulators would spill).
CODE_WORDS = 8
# One-row passes over codes prefetch the stream this far ahead: widening leaves the loads too
# sparse for the hardware prefetcher to keep up from L3 (no change from L1/L2). Float passes
# do not: there the same prefetches cost more from L1/L2 than they gained from L3.
CODE_PREFETCH_BYTES = 4096


# The host features the code paths are chosen from (LLVM's names), and the ones reported with them.
PATH_FEATURES = ("fma", "avx2", "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512bf16", "avx512vnni",
                 "avxvnni")


def code_paths() -> dict:
    """The host's CPU features that chose the kernels' code paths, and the paths they chose."""
    host = llvm.get_host_cpu_features()
    rows, vbytes, pbytes = MANY_ROWS
    return {
        "cpu_name": llvm.get_host_cpu_name(),
        "features": {f: bool(host.get(f, False)) for f in PATH_FEATURES},
        "float_one_row": f"{PANEL_BYTES // ONE_ROW_VECTOR_BYTES} x {ONE_ROW_VECTOR_BYTES * 8}-bit vectors per panel row",
        "float_many_rows": (f"{rows} rows x {pbytes // vbytes} x {vbytes * 8}-bit vectors"
                            + ("" if pbytes == PANEL_BYTES else f" ({pbytes} of {PANEL_BYTES} panel bytes per pass)")),
        "bf16_many_rows": f"{rows} rows x {2 if _AVX512 else 1} blocks of 16 columns",
        "int8_many_rows": f"{rows if _AVX512 else 2} rows",
        "bf16_dot": ("vdpbf16ps" if _BF16_DOT else "emulated, two FMAs per pair") + f", {rows} rows",
        "int8_dot": ("vpdpbusd" if _VNNI else "emulated, exact int32 sums of widened bytes") + f", {rows} rows",
    }


# Stored bf16 pairs: word [k//2, g] holds bf16(W[k, g]) in its low half and bf16(W[k+1, g]) in
# its high half (k even). Products over them round the activations to bf16 too.
PAIR_DTYPE = np.dtype(np.uint32)


class _BFloat(ir.Type):
    """LLVM's bfloat, which llvmlite's IR builder does not name."""

    def _to_string(self):
        return "bfloat"

    def __eq__(self, other):
        return isinstance(other, _BFloat)

    def __hash__(self):
        return hash("bfloat")


def to_pairs(bits: np.ndarray) -> np.ndarray:
    """(K, G) bf16 bit patterns -> the (ceil(K/2), G) words of bf16 pairs (a zero row pads odd
    K). Denormals become 0, as the bf16 dot instruction reads them."""
    b = np.asarray(bits, np.uint16).astype(np.uint32)
    b[(b & 0x7F80) == 0] = 0
    if b.shape[0] % 2:
        b = np.concatenate([b, np.zeros((1, b.shape[1]), np.uint32)])
    return np.ascontiguousarray(b[0::2] | (b[1::2] << 16))


# Stored int8 quads: word [k//4, g] holds the bytes 128 + code(W[k + i, g]), i = 0..3, lowest
# first (k a multiple of 4), codes in [-127, 127] with one scale per column (``scale`` (G,)).
# Products over them quantise each row of X to signed bytes, one scale per block of inputs.
QUAD_DTYPE = np.dtype(np.int32)
QUAD_ROWS = 64  # rows of X quantised at a time: one block of k of them is 16 KB on the stack


def to_quads(codes: np.ndarray) -> np.ndarray:
    """(K, G) int8 codes -> the (ceil(K/4), G) int32 words of their quads, each byte offset by
    128 (unsigned, as vpdpbusd reads it); rows of zeros pad K."""
    c = np.asarray(codes, np.int8).astype(np.int16) + 128
    c = np.concatenate([c, np.full((-c.shape[0] % 4, c.shape[1]), 128, np.int16)]).astype(np.uint8)
    K4, G = c.shape[0] // 4, c.shape[1]
    return np.ascontiguousarray(c.reshape(K4, 4, G).transpose(0, 2, 1)).view(QUAD_DTYPE).reshape(K4, G)


def panel_width(dtype: np.dtype) -> int:
    """Columns per panel for activations of ``dtype``."""
    return PANEL_BYTES // np.dtype(dtype).itemsize


def word_columns(dtype) -> int:
    """Columns per 32-bit word of stored codes: 2 for bf16 bits, 4 for int8 codes, 1 for floats."""
    return {np.dtype(np.uint16): 2, np.dtype(np.int8): 4}.get(np.dtype(dtype), 1)


def _columns_in_words(Wt: np.ndarray) -> np.ndarray:
    """Columns reordered so that, in each block of ``cols`` x CODE_WORDS columns, part i of word
    j holds column i * CODE_WORDS + j. Where G is not a multiple of that block (int8, G = 16
    mod 32) its last 16 columns are one block of 4-word vectors (part i of word j: 4i + j)."""
    K, G = Wt.shape
    cols = word_columns(Wt.dtype)
    block = cols * CODE_WORDS
    main = G - G % block
    parts = [Wt[:, :main].reshape(K, main // block, cols, CODE_WORDS).transpose(0, 1, 3, 2).reshape(K, main)]
    if main < G:
        parts.append(Wt[:, main:].reshape(K, cols, -1).transpose(0, 2, 1).reshape(K, G - main))
    return np.ascontiguousarray(np.concatenate(parts, axis=1))


def to_panels(Wt: np.ndarray, lanes: int) -> np.ndarray:
    """(K, G) row-major -> the same values panel-major (flat).

    Compressed codes (bf16 bits as uint16, int8 codes) are first reordered within blocks of
    columns (``_columns_in_words``) so that the kernel widens them without a cross-lane
    extending load."""
    K, G = Wt.shape
    if G % lanes:
        raise ValueError(f"panel layout needs G ({G}) to be a multiple of {lanes}")
    if word_columns(Wt.dtype) > 1:
        Wt = _columns_in_words(Wt)
    bw = PANEL_BYTES * lanes // VECTOR_BYTES
    full = G // bw * bw
    parts = [Wt[:, :full].reshape(K, full // bw, bw).transpose(1, 0, 2).ravel()]
    if full < G:
        parts.append(Wt[:, full:].ravel())
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
        wsize = context.get_abi_sizeof(context.get_value_type(Wty.dtype))
        i8p = ir.IntType(8).as_pointer()
        cols = word_columns(np.dtype(Wty.dtype.name))
        pairs = Wty.dtype == types.uint32
        native_dot = pairs and _BF16_DOT
        quads = Wty.dtype == types.int32
        native_vnni = quads and _VNNI
        if Xty.ndim == 1:
            max_rows = 1
        else:
            max_rows = 2 if cols == 4 and not _AVX512 else MANY_ROWS[0]

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
                if quads:  # each k block's exact int32 sums, before its scales
                    self.iaccs = [[cgutils.alloca_once(builder, self.i32v) for _ in range(self.n)]
                                  for _ in range(rows)]

        if cols == 1:
            one_row = Vectors(ONE_ROW_VECTOR_BYTES, 1)
            many_rows = Vectors(MANY_ROWS[1], max_rows, MANY_ROWS[2]) if max_rows > 1 else None
        else:
            one_row = Vectors(CODE_WORDS * fsize, 1)
            blocks = 2 if _AVX512 and cols == 2 else 1
            many_rows = (Vectors(CODE_WORDS * fsize, max_rows, blocks * cols * CODE_WORDS * fsize)
                         if max_rows > 1 else None)
        # int8: the last 16 columns of a G = 16 mod 32, in 4-word vectors (``_columns_in_words``)
        short = {}
        if cols == 4:
            short[one_row] = Vectors(4 * fsize, 1, 16 * fsize)
            if many_rows is not None:
                short[many_rows] = Vectors(4 * fsize, max_rows, 16 * fsize)

        W = make_array(Wty)(context, builder, w_arg)
        X = make_array(Xty)(context, builder, x_arg)
        Z = make_array(Zty)(context, builder, z_arg)
        Kw, G = cgutils.unpack_tuple(builder, W.shape, 2)
        nrows, xrs, xcs, xlen = _row_geometry(builder, X, Xty)
        # k runs over inputs; stored pairs hold two of them per row (X's rows hold the K inputs)
        per_word = 2 if pairs else 4 if quads else 1
        K = builder.mul(Kw, c(per_word))
        K = builder.select(builder.icmp_signed("<", xlen, K), xlen, K) if per_word > 1 else Kw
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

        def load_weights(g, ptr, nv):
            """nv vectors of one stored row: floats, or 32-bit words of ``cols`` codes (or a pair) each."""
            vt = g.vec if cols == 1 and per_word == 1 else g.i32v
            step = g.L * wsize * cols
            return [builder.load(builder.bitcast(builder.gep(ptr, [c(v * step)]), vt.as_pointer()),
                                 align=min(wsize * cols, 4)) for v in range(nv)]

        def widen(g, word, i):
            """Part i of a word vector as floats: bf16, the low or high half of each word; int8,
            byte i as code * 2**24 (one in-lane byte shuffle and a convert; ``broadcast``
            scales x by 2**-24, exactly)."""
            L = g.L
            if cols == 4:  # byte i of each word to the top byte, zeros below
                bytes_ = builder.bitcast(word, ir.VectorType(ir.IntType(8), 4 * L))
                mask = [x for d in range(L) for x in (4 * L, 4 * L, 4 * L, 4 * d + i)]
                top = builder.shuffle_vector(bytes_, ir.Constant(ir.VectorType(ir.IntType(8), 4 * L), None),
                                             ir.Constant(ir.VectorType(ir.IntType(32), 4 * L), mask))
                return builder.sitofp(builder.bitcast(top, g.i32v), g.vec)
            bits = (builder.shl(word, ir.Constant(g.i32v, [16] * L)) if i == 0
                    else builder.and_(word, ir.Constant(g.i32v, [-65536] * L)))
            f32 = builder.bitcast(bits, ir.VectorType(ir.FloatType(), L))
            return f32 if fty == types.float32 else builder.fpext(f32, g.vec)

        def broadcast(g, row, k):
            p = builder.gep(xbase, [builder.add(builder.mul(row, xrs), builder.mul(k, xcs))])
            xv = builder.load(builder.bitcast(p, fl.as_pointer()))
            if Sty != types.none:
                sp = builder.gep(sbase, [builder.mul(k, ss)])
                xv = builder.fmul(xv, builder.load(builder.bitcast(sp, fl.as_pointer())))
                if cols == 4:  # the codes were widened as code * 2**24
                    xv = builder.fmul(xv, ir.Constant(fl, 2.0 ** -24))
            one = builder.insert_element(ir.Constant(g.vec, ir.Undefined), xv, ir.Constant(ir.IntType(32), 0))
            return builder.shuffle_vector(one, ir.Constant(g.vec, ir.Undefined),
                                          ir.Constant(ir.VectorType(ir.IntType(32), g.L), [0] * g.L))

        # a block of pairs or quads holds K_BLOCK stored rows, as many bytes as a block of float32 weights
        k_block = per_word * K_BLOCK
        if per_word > 1:
            PAIRS_PER_BLOCK = K_BLOCK
            i32 = ir.IntType(32)
            pair_buf = cgutils.alloca_once(builder, ir.ArrayType(i32, max_rows * PAIRS_PER_BLOCK))
            f16v, i16v = ir.VectorType(fl, 16), ir.VectorType(i32, 16)
            lane_index = ir.Constant(ir.VectorType(intp, 16), list(range(16)))

            def splat(v, vty):
                one = builder.insert_element(ir.Constant(vty, ir.Undefined), v, ir.Constant(i32, 0))
                return builder.shuffle_vector(one, ir.Constant(vty, ir.Undefined),
                                              ir.Constant(ir.VectorType(i32, vty.count), [0] * vty.count))

            def to_bf16(v):
                """16 floats -> 8 words of bf16 pairs, rounded to nearest even (denormals to 0)."""
                if native_dot:
                    return builder.bitcast(builder.fptrunc(v, ir.VectorType(_BFloat(), 16)), ir.VectorType(i32, 8))
                bits = builder.bitcast(v, i16v)
                odd = builder.and_(builder.lshr(bits, ir.Constant(i16v, [16] * 16)), ir.Constant(i16v, [1] * 16))
                top = builder.lshr(builder.add(builder.add(bits, ir.Constant(i16v, [0x7FFF] * 16)), odd),
                                   ir.Constant(i16v, [16] * 16))
                normal = builder.icmp_unsigned("!=", builder.and_(bits, ir.Constant(i16v, [0x7F800000] * 16)),
                                               ir.Constant(i16v, [0] * 16))
                top = builder.select(normal, top, ir.Constant(i16v, [0] * 16))
                half = builder.trunc(top, ir.VectorType(ir.IntType(16), 16))
                return builder.bitcast(half, ir.VectorType(i32, 8))

            def load_inputs(row, k, k1):
                """X[row, k:k+16] as 16 floats, zero from k1 on."""
                lanes = builder.add(splat(k, ir.VectorType(intp, 16)), lane_index)
                inside = builder.icmp_signed("<", lanes, splat(k1, ir.VectorType(intp, 16)))
                start = builder.gep(xbase, [builder.mul(row, xrs)])
                if Xty.layout == "C":
                    fn = cgutils.get_or_insert_function(
                        builder.module, ir.FunctionType(f16v, [f16v.as_pointer(), i32, ir.VectorType(ir.IntType(1), 16), f16v]),
                        "llvm.masked.load.v16f32.p0")
                    p = builder.bitcast(builder.gep(start, [builder.mul(k, c(fsize))]), f16v.as_pointer())
                    return builder.call(fn, [p, ir.Constant(i32, 4), inside, ir.Constant(f16v, None)])
                v = ir.Constant(f16v, None)
                last = builder.sub(k1, c(1))
                for i in range(16):  # strided rows: clamp the index so that every load is inside X
                    ki = builder.add(k, c(i))
                    ki = builder.select(builder.icmp_signed("<", ki, k1), ki, last)
                    xi = builder.load(builder.bitcast(builder.gep(start, [builder.mul(ki, xcs)]), fl.as_pointer()))
                    v = builder.insert_element(v, builder.select(builder.extract_element(inside, c(i)), xi, ir.Constant(fl, 0.0)),
                                               ir.Constant(i32, i))
                return v

            def convert_block(row0, tb, ks):
                """X[row0:row0+tb, k0:k1] as bf16 pairs into ``pair_buf`` (PAIRS_PER_BLOCK words a row)."""
                k0, k1 = ks
                for t in range(tb):
                    for j in range(k_block // 16):
                        v = load_inputs(builder.add(row0, c(t)), builder.add(k0, c(16 * j)), k1)
                        dst = builder.gep(pair_buf, [c(0), c(t * PAIRS_PER_BLOCK + 8 * j)])
                        builder.store(to_bf16(v), builder.bitcast(dst, ir.VectorType(i32, 8).as_pointer()), align=4)

            def broadcast_pair(g, t, kp):
                w = builder.load(builder.gep(pair_buf, [c(0), builder.add(c(t * PAIRS_PER_BLOCK), kp)]))
                return splat(w, g.i32v)

            def dot(g, w, xb, acc):
                """acc + the high halves' product, then + the low halves' (vdpbf16ps's order)."""
                if native_dot:
                    bvec = ir.VectorType(_BFloat(), 2 * g.L)
                    fn = cgutils.get_or_insert_function(
                        builder.module, ir.FunctionType(g.vec, [g.vec, bvec, bvec]),
                        f"llvm.x86.avx512bf16.dpbf16ps.{32 * g.L}")
                    return builder.call(fn, [acc, builder.bitcast(w, bvec), builder.bitcast(xb, bvec)])
                hi = lambda v: builder.bitcast(builder.and_(v, ir.Constant(g.i32v, [-65536] * g.L)), g.vec)
                lo = lambda v: builder.bitcast(builder.shl(v, ir.Constant(g.i32v, [16] * g.L)), g.vec)
                return builder.call(g.fma, [lo(w), lo(xb), builder.call(g.fma, [hi(w), hi(xb), acc])])

        if quads:
            # the inputs of QUAD_ROWS rows of X for one block of k, quantised once for every panel
            quad_buf = cgutils.alloca_once(builder, ir.ArrayType(i32, QUAD_ROWS * PAIRS_PER_BLOCK))
            row_scale = cgutils.alloca_once(builder, ir.ArrayType(fl, QUAD_ROWS))
            row_sum = cgutils.alloca_once(builder, ir.ArrayType(i32, QUAD_ROWS))
            chunk_start = [None]  # the first row of X whose inputs are in quad_buf
            i8x16 = ir.VectorType(ir.IntType(8), 16)

            def vector_call(name, vty, *vals):
                fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [v.type for v in vals]), name)
                return builder.call(fn, list(vals))

            def quantise_row(row, t, ks):
                """X[row, k0:k1] as signed bytes into row t of ``quad_buf`` (K_BLOCK words a row):
                q = roundeven(x * (127 / m)) with m = max |x| over the block, its scale m / 127 and
                the sum of its codes (for the weights' zero point)."""
                k0, k1 = ks
                vs = [load_inputs(row, builder.add(k0, c(16 * j)), k1) for j in range(k_block // 16)]
                m = vector_call("llvm.fabs.v16f32", f16v, vs[0])
                for v in vs[1:]:
                    m = vector_call("llvm.maxnum.v16f32", f16v, m, vector_call("llvm.fabs.v16f32", f16v, v))
                top = vector_call("llvm.vector.reduce.fmax.v16f32", fl, m)
                inv = builder.select(builder.fcmp_ordered(">", top, ir.Constant(fl, 0.0)),
                                     builder.fdiv(ir.Constant(fl, 127.0), top), ir.Constant(fl, 0.0))
                builder.store(builder.fdiv(top, ir.Constant(fl, 127.0)), builder.gep(row_scale, [c(0), t]))
                inv_v = splat(inv, f16v)
                total = ir.Constant(i16v, [0] * 16)
                for j, v in enumerate(vs):
                    q = builder.fptosi(vector_call("llvm.roundeven.v16f32", f16v, builder.fmul(v, inv_v)), i16v)
                    q = vector_call("llvm.smax.v16i32", i16v, vector_call("llvm.smin.v16i32", i16v, q,
                                                                          ir.Constant(i16v, [127] * 16)),
                                    ir.Constant(i16v, [-127] * 16))
                    total = builder.add(total, q)
                    dst = builder.gep(quad_buf, [c(0), builder.add(builder.mul(t, c(PAIRS_PER_BLOCK)), c(4 * j))])
                    builder.store(builder.trunc(q, i8x16), builder.bitcast(dst, i8x16.as_pointer()), align=1)
                builder.store(vector_call("llvm.vector.reduce.add.v16i32", i32, total),
                              builder.gep(row_sum, [c(0), t]))

            def dot4(g, w, xb, acc):
                """acc + the four products of each lane's bytes, unsigned (weights) by signed (x):
                vpdpbusd, or the same exact int32 sums without VNNI."""
                bytes_ = ir.VectorType(ir.IntType(8), 4 * g.L)
                if native_vnni:
                    return vector_call(f"llvm.x86.avx512.vpdpbusd.{32 * g.L}", g.i32v, acc,
                                       builder.bitcast(w, bytes_), builder.bitcast(xb, bytes_))
                wide = ir.VectorType(i32, 4 * g.L)
                p = builder.mul(builder.zext(builder.bitcast(w, bytes_), wide), builder.sext(builder.bitcast(xb, bytes_), wide))
                parts = [builder.shuffle_vector(p, ir.Constant(wide, ir.Undefined),
                                                ir.Constant(ir.VectorType(i32, g.L), [4 * d + i for d in range(g.L)]))
                         for i in range(4)]
                return builder.add(acc, builder.add(builder.add(parts[0], parts[1]), builder.add(parts[2], parts[3])))

        def prefetch(ptr):
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), [i8p] + [ir.IntType(32)] * 3), "llvm.prefetch.p0i8")
            builder.call(fn, [ptr] + [ir.Constant(ir.IntType(32), v) for v in (0, 3, 1)])  # read, keep, data

        def z_ptr(g, row, col, v):
            p = builder.gep(zbase, [builder.add(builder.mul(row, zrs), builder.mul(builder.add(col, c(v * g.L)), c(fsize)))])
            return builder.bitcast(p, g.vec.as_pointer())

        def panel(g, row0, tb, nv, col, panel_start, width, ks):
            """Z[row0:row0+tb, col:col+nv*L] += X[row0:row0+tb, k0:k1] @ panel[k0:k1] (nv a
            multiple of cols; ks = (k0, k1))."""
            accs = g.accs
            for t in range(tb):
                for v in range(nv):
                    builder.store(builder.load(z_ptr(g, builder.add(row0, c(t)), col, v), align=fsize), accs[t][v])
            row_bytes = builder.mul(width, c(wsize))
            if quads:  # X's rows are in quad_buf (``in_row_chunks``)
                q0 = builder.sub(row0, chunk_start[0])
                for t in range(tb):
                    for v in range(nv):
                        builder.store(ir.Constant(g.i32v, [0] * g.L), g.iaccs[t][v])
                kq0 = builder.sdiv(ks[0], c(4))
                kq1 = builder.sdiv(builder.add(ks[1], c(3)), c(4))
                with cgutils.for_range_slice(builder, kq0, kq1, c(1)) as (kq, _):
                    row = builder.gep(wbase, [builder.add(panel_start, builder.mul(kq, row_bytes))])
                    words = load_weights(g, row, nv)
                    for t in range(tb):
                        xw = builder.gep(quad_buf, [c(0), builder.add(builder.mul(builder.add(q0, c(t)), c(PAIRS_PER_BLOCK)),
                                                                      builder.sub(kq, kq0))])
                        xb = splat(builder.load(xw), g.i32v)
                        for v in range(nv):
                            builder.store(dot4(g, words[v], xb, builder.load(g.iaccs[t][v])), g.iaccs[t][v])
                for t in range(tb):
                    qt = builder.add(q0, c(t))
                    zero_point = splat(builder.mul(builder.load(builder.gep(row_sum, [c(0), qt])), ir.Constant(i32, 128)), g.i32v)
                    xscale = splat(builder.load(builder.gep(row_scale, [c(0), qt])), g.vec)
                    for v in range(nv):
                        exact = builder.sitofp(builder.sub(builder.load(g.iaccs[t][v]), zero_point), g.vec)
                        sp = builder.gep(sbase, [builder.mul(builder.add(col, c(v * g.L)), ss)])
                        wscale = builder.load(builder.bitcast(sp, g.vec.as_pointer()), align=fsize)
                        z = builder.call(g.fma, [exact, builder.fmul(xscale, wscale), builder.load(accs[t][v])])
                        builder.store(z, z_ptr(g, builder.add(row0, c(t)), col, v), align=fsize)
                return
            if pairs:
                convert_block(row0, tb, ks)
                kp0 = builder.sdiv(ks[0], c(2))
                kp1 = builder.sdiv(builder.add(ks[1], c(1)), c(2))
                with cgutils.for_range_slice(builder, kp0, kp1, c(1)) as (kp, _):
                    row = builder.gep(wbase, [builder.add(panel_start, builder.mul(kp, row_bytes))])
                    words = load_weights(g, row, nv)
                    for t in range(tb):
                        xb = broadcast_pair(g, t, builder.sub(kp, kp0))
                        for v in range(nv):
                            builder.store(dot(g, words[v], xb, builder.load(accs[t][v])), accs[t][v])
                for t in range(tb):
                    for v in range(nv):
                        builder.store(builder.load(accs[t][v]), z_ptr(g, builder.add(row0, c(t)), col, v), align=fsize)
                return
            with cgutils.for_range_slice(builder, ks[0], ks[1], c(1)) as (k, _):
                row = builder.gep(wbase, [builder.add(panel_start, builder.mul(k, row_bytes))])
                if cols > 1 and tb == 1:
                    for off in range(0, nv * g.L * wsize, 64):
                        prefetch(builder.gep(row, [c(CODE_PREFETCH_BYTES + off)]))
                words = load_weights(g, row, nv // cols)
                if cols == 1:
                    for t in range(tb):
                        xb = broadcast(g, builder.add(row0, c(t)), k)
                        for v in range(nv):
                            builder.store(builder.call(g.fma, [words[v], xb, builder.load(accs[t][v])]), accs[t][v])
                else:
                    xbs = [broadcast(g, builder.add(row0, c(t)), k) for t in range(tb)]
                    for j, word in enumerate(words):
                        for i in range(cols):
                            w = widen(g, word, i)
                            for t in range(tb):
                                a = accs[t][cols * j + i]
                                builder.store(builder.call(g.fma, [w, xbs[t], builder.load(a)]), a)
            for t in range(tb):
                for v in range(nv):
                    builder.store(builder.load(accs[t][v]), z_ptr(g, builder.add(row0, c(t)), col, v), align=fsize)

        def in_passes(g, row0, tb, ncols, col, start, width, ks):
            """A panel of ncols columns for rows row0:row0+tb, at most g.n vectors at a time."""
            block = cols * CODE_WORDS if cols > 1 else g.L
            whole = ncols - ncols % block
            nv = whole // g.L
            for v0 in range(0, nv, g.n):
                panel(g, row0, tb, min(g.n, nv - v0), builder.add(col, c(v0 * g.L)),
                      builder.add(start, c(v0 * g.L * wsize)), width, ks)
            if whole < ncols:
                q = short[g]
                panel(q, row0, tb, (ncols - whole) // q.L, builder.add(col, c(whole)),
                      builder.add(start, c(whole * wsize)), width, ks)

        def every_row(body, first_row=None, count=None):
            """body(g, row0, tb) over the rows (``count`` from ``first_row``: default all) in
            groups of max_rows, then the rest."""
            first_row = c(0) if first_row is None else first_row
            if many_rows is None:
                body(one_row, first_row, 1)
                return
            count = nrows if count is None else count
            groups = builder.sdiv(count, c(max_rows))
            with cgutils.for_range(builder, groups) as loop:
                body(many_rows, builder.add(first_row, builder.mul(loop.index, c(max_rows))), max_rows)
            rest = builder.sub(count, builder.mul(groups, c(max_rows)))
            for tb in range(1, max_rows):
                with builder.if_then(builder.icmp_signed("==", rest, c(tb))):
                    body(one_row if tb == 1 else many_rows,
                         builder.add(first_row, builder.mul(groups, c(max_rows))), tb)

        def in_k_blocks(body):
            """body((k0, k1)) over k in blocks of K_BLOCK rows of the panel (one block for one
            input row): a block stays in L1 while every group of rows passes over it, and each
            output's FMA chain goes on in k order from the value stored after the block before."""
            if many_rows is None and per_word == 1:  # pairs, quads: X is converted a block at a time
                body((c(0), K))
                return
            blocks = builder.sdiv(builder.add(K, c(k_block - 1)), c(k_block))
            with cgutils.for_range(builder, blocks) as loop:
                k0 = builder.mul(loop.index, c(k_block))
                k1 = builder.add(k0, c(k_block))
                body((k0, builder.select(builder.icmp_signed("<", k1, K), k1, K)))

        first = builder.sdiv(c0, c(BW))
        last = builder.sdiv(builder.select(builder.icmp_signed("<", c1, full_end), c1, full_end), c(BW))
        panel_bytes = builder.mul(builder.mul(Kw, c(BW)), c(wsize))
        tail = builder.sub(G, full_end)
        has_tail = builder.and_(builder.icmp_signed(">=", c1, G), builder.icmp_signed(">", tail, c(0)))
        step = VECTOR_BYTES // fsize if cols == 1 else 16  # G is a multiple of 64 bytes / 16 float32

        def in_panels(each_panel):
            """each_panel(ncols, col, start) over the whole panels of c0:c1, then the tail's."""
            with cgutils.for_range_slice(builder, first, last, c(1)) as (b, _):
                each_panel(c(BW), builder.mul(b, c(BW)), builder.mul(b, panel_bytes))
            with builder.if_then(has_tail):
                for ncols in range(step, BW, step):
                    with builder.if_then(builder.icmp_signed("==", tail, c(ncols))):
                        each_panel(c(ncols), full_end, builder.mul(nfull, panel_bytes))

        def passes(ks, first_row=None, count=None):
            return lambda ncols, col, start: every_row(
                lambda g, row0, tb: in_passes(g, row0, tb, ncols.constant, col, start, ncols, ks), first_row, count)

        if quads:
            # Chunks of QUAD_ROWS rows, then blocks of k, then panels: each block of a chunk's
            # inputs is quantised once for all the panels (one scale per row and block).
            chunks = builder.sdiv(builder.add(nrows, c(QUAD_ROWS - 1)), c(QUAD_ROWS))
            with cgutils.for_range(builder, chunks) as loop:
                r0 = builder.mul(loop.index, c(QUAD_ROWS))
                rest = builder.sub(nrows, r0)
                rc = builder.select(builder.icmp_signed("<", rest, c(QUAD_ROWS)), rest, c(QUAD_ROWS))
                chunk_start[0] = r0

                def block(ks):
                    with cgutils.for_range(builder, rc) as rows:
                        quantise_row(builder.add(r0, rows.index), rows.index, ks)
                    in_panels(passes(ks, r0, rc))
                in_k_blocks(block)
            return context.get_dummy_value()
        # Panels outside, then blocks of k, rows inside: a panel is streamed from memory once per
        # call, and a block of it stays in L1 while every group of rows passes over it.
        in_panels(lambda ncols, col, start: in_k_blocks(lambda ks: passes(ks)(ncols, col, start)))
        return context.get_dummy_value()

    return codegen


@intrinsic
def _panel_acc(typingctx, Wt, X, Z, scale, c0, c1):
    ok = (isinstance(Wt, types.Array) and Wt.ndim == 2 and Wt.layout == "C"
          and isinstance(Z, types.Array) and Z.layout == "C" and Z.dtype in (types.float32, types.float64)
          and isinstance(X, types.Array) and X.ndim == Z.ndim and X.dtype == Z.dtype
          and (Wt.dtype == Z.dtype or Wt.dtype in (types.uint16, types.int8)
               or (Wt.dtype == types.uint32 and Z.dtype == types.float32 and scale == types.none)
               or (Wt.dtype == types.int32 and Z.dtype == types.float32 and scale != types.none))
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
