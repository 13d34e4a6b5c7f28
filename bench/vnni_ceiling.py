"""What int8 products on VNNI (``vpdpbusd``) would give a pool step: the product alone.

    python bench/vnni_ceiling.py [--models tiny,kws,vad,enh,big] [--streams 256]

streamlstm's ``weights="int8"`` widens its codes to float32 and multiplies in float32; it runs
no VNNI instruction. A VNNI format would also need 8-bit inputs: ``vpdpbusd`` multiplies
unsigned bytes by signed bytes, four per 32-bit lane, 64 multiply-adds per zmm instruction
against an FMA's 16. This script times that instruction on the products of a pool step of
each zoo model (its stored matrices, over blocks of the pool's rows), with the inputs already
in bytes, against the same products in float32 through the kernels' product (``panel_acc``)
and onnxruntime's MLAS. It is the ceiling such a format could reach: the quantisation of the
inputs, the scales and the zero-point correction would come on top. Exact int32 results are
checked against NumPy. Needs AVX512-VNNI (``avx512vnni``).
"""

from __future__ import annotations

import argparse

import numpy as np
from llvmlite import binding as llvm
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.arrayobj import make_array

import streamlstm as sl
from streamlstm.tools.probes import pool_block_rows, stored_products
from streamlstm.tools.zoo import zoo_network

from product_ceiling import _mlas, blocks_s, products_s

ROWS, VECTORS = 4, 4  # a block: 4 rows x 4 zmm of 16 int32 columns, 16 accumulators
COLUMNS = 16 * VECTORS


@intrinsic
def _vnni_block(typingctx, W, U, Z, r0, c0):
    """Z[r0:r0+4, c0:c0+64] += U[r0:r0+4] . W[:, c0:c0+64], U's words four unsigned bytes of
    consecutive inputs, W's words four signed bytes of consecutive rows of one column."""
    def codegen(context, builder, sig, args):
        w_arg, u_arg, z_arg, r0, c0 = args
        i32, i64 = ir.IntType(32), ir.IntType(64)
        v16, v64 = ir.VectorType(i32, 16), ir.VectorType(ir.IntType(8), 64)
        c = lambda v: ir.Constant(i64, v)
        Wm, Um, Zm = (make_array(t)(context, builder, a) for t, a in zip(sig.args[:3], args[:3]))
        K4, G = cgutils.unpack_tuple(builder, Wm.shape, 2)
        UK = cgutils.unpack_tuple(builder, Um.shape, 2)[1]
        ZG = cgutils.unpack_tuple(builder, Zm.shape, 2)[1]
        dot = cgutils.get_or_insert_function(builder.module, ir.FunctionType(v16, [v16, v64, v64]),
                                             "llvm.x86.avx512.vpdpbusd.512")
        accs = [[cgutils.alloca_once(builder, v16) for _ in range(VECTORS)] for _ in range(ROWS)]

        def vector_at(base, index):
            return builder.bitcast(builder.gep(base, [index]), v16.as_pointer())

        def z_at(i, j):
            return vector_at(Zm.data, builder.add(builder.mul(builder.add(r0, c(i)), ZG), builder.add(c0, c(16 * j))))
        for i in range(ROWS):
            for j in range(VECTORS):
                builder.store(builder.load(z_at(i, j), align=4), accs[i][j])
        with cgutils.for_range(builder, K4) as loop:
            k = loop.index
            ws = [builder.load(vector_at(Wm.data, builder.add(builder.mul(k, G), builder.add(c0, c(16 * j)))), align=4)
                  for j in range(VECTORS)]
            for i in range(ROWS):
                u = builder.load(builder.gep(Um.data, [builder.add(builder.mul(builder.add(r0, c(i)), UK), k)]))
                u = builder.insert_element(ir.Constant(v16, ir.Undefined), u, ir.Constant(i32, 0))
                u = builder.bitcast(builder.shuffle_vector(u, ir.Constant(v16, ir.Undefined),
                                                           ir.Constant(v16, [0] * 16)), v64)
                for j in range(VECTORS):
                    builder.store(builder.call(dot, [builder.load(accs[i][j]), u, builder.bitcast(ws[j], v64)]),
                                  accs[i][j])
        for i in range(ROWS):
            for j in range(VECTORS):
                builder.store(builder.load(accs[i][j]), z_at(i, j), align=4)
        return context.get_dummy_value()
    return types.void(W, U, Z, r0, c0), codegen


@njit(nogil=True)
def vnni_product(W, U, Z):
    """Z += U . W over whole blocks (rows a multiple of 4, columns of 64)."""
    for c0 in range(0, W.shape[1], COLUMNS):
        for r0 in range(0, U.shape[0], ROWS):
            _vnni_block(W, U, Z, r0, c0)


def quads(codes: np.ndarray) -> np.ndarray:
    """(K, G) int8 -> (K/4, G) int32 words of four consecutive rows of each column."""
    K, G = codes.shape
    return np.ascontiguousarray(codes.reshape(K // 4, 4, G).transpose(0, 2, 1)).view(np.int32).reshape(K // 4, G)


def _up(v: int, m: int) -> int:
    return -(-v // m) * m


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="tiny,kws,vad,enh,big")
    ap.add_argument("--streams", type=int, default=256)
    a = ap.parse_args(argv)
    if not llvm.get_host_cpu_features().get("avx512vnni", False):
        print("this CPU has no AVX512-VNNI: nothing to measure")
        return 0
    rng = np.random.default_rng(0)
    print("| model | float32 products, panel_acc (ms) | GMAC/s | MLAS (ms) | GMAC/s | int8 vpdpbusd (ms) | GMAC/s "
          "| vpdpbusd / panel_acc |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in a.models.split(","):
        model = sl.Model(zoo_network(name))
        n = a.streams
        rows = pool_block_rows(model, n)
        shapes = [(rows, K, G) for K, G in sum(stored_products(model), [])]
        macs = sum(n * K * G for _, K, G in shapes)
        ints = []
        for T, K, G in shapes:
            codes = np.zeros((_up(K, 4), _up(G, COLUMNS)), np.int8)
            codes[:K, :G] = rng.integers(-127, 128, (K, G))
            inputs = np.zeros((T, _up(K, 4)), np.uint8)
            inputs[:, :K] = rng.integers(0, 256, (T, K))
            W, U, Z = quads(codes), inputs.view(np.int32), np.zeros((T, codes.shape[1]), np.int32)
            vnni_product(W, U, Z)
            if not np.array_equal(Z, inputs.astype(np.int64) @ codes.astype(np.int64)):
                raise AssertionError(f"{name}: vpdpbusd product differs from NumPy's")
            ints.append((W, U, Z))
        f32 = products_s(shapes, n // rows, "float", rng)
        i8 = blocks_s(vnni_product, ints, n // rows)
        mlas = _mlas([(n, K, G) for _, K, G in shapes], rng)
        print(f"| {name} | {f32 * 1e3:.2f} | {macs / f32 / 1e9:.1f} | {mlas * 1e3:.2f} | {macs / mlas / 1e9:.1f} | "
              f"{i8 * 1e3:.2f} | {macs / i8 / 1e9:.1f} | {f32 / i8:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
