"""What bounds a pool step and a chunk: their matrix products alone, outside any engine.

    python bench/product_ceiling.py [--models vad,enh,big] [--streams 256] [--frames 100]

A pool step over many streams is matrix-matrix work. For each zoo model this times, on one
thread and in one process:

- ``pool step``: ``SessionPool.step`` over ``--streams`` streams (threads=1);
- ``products``: the same step's matrix products alone (every stored matrix of the model's plan),
  through the kernels' product on blocks of the pool's block size;
- ``MLAS``: the same products as onnxruntime ``MatMul`` nodes (one thread), which is what its
  batched call runs them with;
- ``bf16dot``: the pool step and its products with ``weights="bf16dot"`` (bf16 pairs of rows,
  ``vdpbf16ps`` where the CPU has AVX512_BF16).

GMAC/s = multiply-adds of the products / time. When both engines run the products at the same
rate, a pool step cannot beat onnxruntime's batch by more than what it saves outside them.

A second table times the recurrent products of a ``--frames`` chunk alone: one row per frame
through every layer's recurrent matrix, on one core, and on two cores that each take half of
every matrix's columns (two threads started beforehand, no synchronisation between frames).
Each frame needs the previous h, so no engine's chunk runs these faster than the two-core
figure allows, short of keeping the matrices in cache.
"""

from __future__ import annotations

import argparse
import threading
import time

import numpy as np
from numba import njit

import streamlstm as sl
from streamlstm.tools.peers import ort_session
from streamlstm.tools.probes import panel_matrix, panel_product, pool_block_rows, stored_products
from streamlstm.tools.zoo import zoo_network

from step_breakdown import per_call_us


def _median_s(fn, reps: int) -> float:
    """Median seconds of ``reps`` calls of ``fn``, after one that is not timed."""
    fn()
    return per_call_us(fn, reps) / 1e6


def _mlas(shapes, rng) -> float:
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits, inputs, feeds = [], [], [], {}
    for i, (T, K, G) in enumerate(shapes):
        nodes.append(helper.make_node("MatMul", [f"x{i}", f"w{i}"], [f"y{i}"]))
        inits.append(numpy_helper.from_array(rng.standard_normal((K, G)).astype(np.float32), f"w{i}"))
        inputs.append(helper.make_tensor_value_info(f"x{i}", TensorProto.FLOAT, [T, K]))
        feeds[f"x{i}"] = rng.standard_normal((T, K)).astype(np.float32)
    outputs = [helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, None) for i in range(len(shapes))]
    graph = helper.make_graph(nodes, "products", inputs, outputs, inits)
    sess = ort_session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString(), 1)
    return _median_s(lambda: sess.run(None, feeds), 15)


def _pool_step_s(model, X: np.ndarray) -> float:
    n = X.shape[0]
    pool = model.pool(n)
    ids = np.array([pool.open() for _ in range(n)], dtype=np.int64)
    out = np.empty((n, model.output_size), np.float32)
    return _median_s(lambda: pool.step(ids, X, out=out), 15)


def blocks_s(product, operands, blocks: int) -> float:
    """Median seconds of ``blocks`` rounds of ``product(*ops)`` for every ``ops`` of ``operands``."""
    def call():
        for _ in range(blocks):
            for ops in operands:
                product(*ops)
    return _median_s(call, 15)


def products_s(shapes, blocks: int, weights: str, rng) -> float:
    """Seconds of ``blocks`` rounds of the (T, K, G) products through the kernels' product."""
    operands = [(panel_matrix(rng.standard_normal((K, G)), weights), rng.standard_normal((T, K)).astype(np.float32),
                 np.zeros((T, G), np.float32)) for T, K, G in shapes]
    return blocks_s(panel_product, operands, blocks)


@njit(nogil=True, cache=True)
def _recurrent_frames(mats, h, z, frames):
    for _ in range(frames):
        for W in mats:
            panel_product(W, h, z)


def _chunk_floor(model, frames: int, rng) -> tuple[float, float]:
    recurrent = stored_products(model)[1]  # one state width K for every recurrent row of the zoo
    K = recurrent[0][0]
    halves_at = [(G // 2) // 16 * 16 for _, G in recurrent]

    def stored(widths):
        return tuple(panel_matrix(rng.standard_normal((K, G))) for G in widths)
    whole = stored([G for _, G in recurrent])
    halves = [stored(halves_at), stored([G - m for (_, G), m in zip(recurrent, halves_at)])]
    h = rng.standard_normal(K).astype(np.float32)
    width = max(G for _, G in recurrent)
    z, zs = np.zeros(width, np.float32), [np.zeros(width, np.float32) for _ in range(2)]
    one = _median_s(lambda: _recurrent_frames(whole, h, z, frames), 9)
    start, end = threading.Barrier(3), threading.Barrier(3)
    rounds = 10

    def worker(i):  # started once: the timed part is the work between the two barriers
        for _ in range(rounds):
            start.wait()
            _recurrent_frames(halves[i], h, zs[i], frames)
            end.wait()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()

    def two():
        start.wait()
        end.wait()
    two_s = _median_s(two, rounds - 1)
    for t in threads:
        t.join()
    return one, two_s


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="vad,enh,big")
    ap.add_argument("--streams", type=int, default=256)
    ap.add_argument("--frames", type=int, default=100)
    a = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    print("| model | pool step (ms) | its products, panel_acc (ms) | GMAC/s | the same products, MLAS (ms) | GMAC/s "
          "| bf16dot pool step (ms) | its products, bf16 pairs (ms) | GMAC/s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in a.models.split(","):
        net = zoo_network(name)
        n = a.streams
        models = [sl.Model(net, weights=weights) for weights in ("float", "bf16dot")]
        X = rng.standard_normal((n, models[0].input_size)).astype(np.float32)
        steps, products, macs = [], [], []
        for model in models:
            weights = model.plan.weight_format
            steps.append(_pool_step_s(model, X))
            rows = pool_block_rows(model, n)
            shapes = [(rows, K, G) for K, G in sum(stored_products(model), [])]
            products.append(products_s(shapes, n // rows, weights, rng))
            macs.append(sum(n * K * G for _, K, G in shapes))
            if weights == "float":
                theirs = _mlas([(n, K, G) for _, K, G in shapes], rng)
        (step, step_dot), (ours, ours_dot), (mac, mac_dot) = steps, products, macs
        print(f"| {name} | {step * 1e3:.2f} | {ours * 1e3:.2f} | {mac / ours / 1e9:.1f} | {theirs * 1e3:.2f} | "
              f"{mac / theirs / 1e9:.1f} | {step_dot * 1e3:.2f} | {ours_dot * 1e3:.2f} | "
              f"{mac_dot / ours_dot / 1e9:.1f} |", flush=True)
    print()
    print(f"| model | recurrent products of {a.frames} frames, one core (ms) | two cores, halves (ms) |")
    print("|---|---:|---:|")
    for name in a.models.split(","):
        one, two = _chunk_floor(sl.load(zoo_network(name)), a.frames, rng)
        print(f"| {name} | {one * 1e3:.2f} | {two * 1e3:.2f} |", flush=True)


if __name__ == "__main__":
    main()
