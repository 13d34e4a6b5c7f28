"""Where the time of one zoo step goes: the whole step against its parts, in one process.

    python bench/step_breakdown.py [model] [--rounds N]

Times, in interleaved rounds (median of per-call medians):

- ``step``: ``Session.stepper(out)``, as the bench times streamlstm;
- ``products``: only the step's matrix products (``panel_acc`` on the Plan's own weights);
- ``read``: a plain vectorised read of the Plan's whole weight buffer;
- ``gate math``: the fused LSTM gate update of one layer (FMA-bound rational tanh/sigmoid),
  on data already in L1, once per LSTM layer of the model.

Each of the first three is one call from Python, so their differences are the work that is
not streaming weights: what a faster step would have to hide under the weight stream.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from numba import njit

import streamlstm as sl
from streamlstm.kernels import layout as L
from streamlstm.kernels.cells import lstm_fused_fast
from streamlstm.kernels.config import JIT
from streamlstm.kernels.simd import panel_acc
from streamlstm.kernels.views import matrix
from streamlstm.tools.zoo import NAMES, zoo_network

from roofline import _stream


def product_shapes(plan) -> np.ndarray:
    """(offset, K, G) of every matrix product of one step, in the order the step runs them."""
    table, shapes = plan.table, []
    for r in range(1, table[0, L.HDR_NROWS] + 1):
        row = table[r]
        if row[L.C_KIND] in (L.K_LSTM, L.K_GRU, L.K_RNN, L.K_DENSE):
            shapes.append((row[L.C_WX], row[L.C_K], row[L.C_G]))
        if row[L.C_KIND] in (L.K_LSTM, L.K_RNN):
            shapes.append((row[L.C_WR], row[L.C_P], row[L.C_G]))
        if row[L.C_KIND] == L.K_GRU:  # the z,r block, then the candidate's own product
            shapes.append((row[L.C_WR], row[L.C_H], 2 * row[L.C_HP]))
            shapes.append((row[L.C_WR2], row[L.C_H], row[L.C_HP]))
    return np.array(shapes, dtype=np.int64)


@njit(**JIT)
def _products(w, shapes, x, z):
    for i in range(shapes.shape[0]):
        off, K, G = shapes[i, 0], shapes[i, 1], shapes[i, 2]
        panel_acc(matrix(w, off, K, G), x[:K], z[:G])


@njit(**JIT)
def _gates(z, c, h, H, repeats):
    for _ in range(repeats):
        lstm_fused_fast(z, c, h, H, H)


def per_call_us(fn, calls: int) -> float:
    times = np.empty(calls)
    for i in range(calls):
        t = time.perf_counter_ns()
        fn()
        times[i] = time.perf_counter_ns() - t
    return float(np.median(times)) / 1e3


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="enh", choices=NAMES)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args(argv)
    network = zoo_network(args.model)
    model = sl.Model(network)
    plan = model.plan
    if plan.dtype != np.float32:
        raise SystemExit("float32 models only")
    rng = np.random.default_rng(0)
    x = rng.normal(size=model.input_size).astype(np.float32)
    out = np.empty(model.output_size, np.float32)
    step = model.session().stepper(out)
    shapes = product_shapes(plan)
    width = int(max(shapes[:, 1].max(), shapes[:, 2].max()))
    xs, zs = (rng.normal(size=width) * 0.01).astype(np.float32), np.zeros(width, np.float32)
    w = plan.weights
    lstm_sizes = [int(plan.table[r, L.C_H]) for r in range(1, plan.table[0, L.HDR_NROWS] + 1)
                  if plan.table[r, L.C_KIND] == L.K_LSTM]
    parts = {
        "step": lambda: step(x),
        "products": lambda: _products(w, shapes, xs, zs),
        "read": lambda: _stream(w, 1),
    }
    for fn in parts.values():
        fn()
    medians = {name: [] for name in parts}
    for _ in range(args.rounds):
        for name, fn in parts.items():
            medians[name].append(per_call_us(fn, 300 if w.nbytes < (8 << 20) else 30))
    gates = 0.0
    for H in lstm_sizes:
        z, c, h = rng.normal(size=4 * H).astype(np.float32), np.zeros(H, np.float32), np.zeros(H, np.float32)
        _gates(z, c, h, H, 10)
        t = time.perf_counter_ns()
        _gates(z, c, h, H, 10000)
        gates += (time.perf_counter_ns() - t) / 10000 / 1e3
    result = {name: float(np.median(v)) for name, v in medians.items()}
    print(f"{args.model}: {w.nbytes / 1e6:.2f} MB of weights, {len(shapes)} products per step")
    print("| part | µs |\n|---|---:|")
    for name, us in result.items():
        print(f"| {name} | {us:.2f} |")
    print(f"| gate math ({len(lstm_sizes)} LSTM layers, L1-hot) | {gates:.2f} |")
    print(f"| step - products | {result['step'] - result['products']:.2f} |")
    print(f"| products - read | {result['products'] - result['read']:.2f} |")


if __name__ == "__main__":
    main()
