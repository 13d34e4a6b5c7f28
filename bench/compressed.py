"""Compressed weights on the zoo: p50 step latency and max abs deviation from float32.

    python bench/compressed.py [--models tiny kws vad enh big] [--steps 2000]

For each model and weight format (float32, bf16, int8) one process times ``Session.step`` in
interleaved rounds (so drift hits all formats alike) and streams 500 random frames to measure
the largest deviation of the outputs from float32. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import streamlstm as sl
from streamlstm.tools.zoo import NAMES, zoo_network

FORMATS = ("float", "bf16", "int8")


def measure(name: str, steps: int, rounds: int = 10) -> dict:
    net = zoo_network(name)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, net.input_size)).astype(np.float32)
    models = {f: sl.Model(net, weights=f) for f in FORMATS}
    reference = models["float"].run(X)
    deviation = {f: float(np.abs(m.run(X) - reference).max()) for f, m in models.items()}
    sessions = {f: m.session() for f, m in models.items()}
    outs = {f: np.empty(m.output_size, np.float32) for f, m in models.items()}
    times: dict[str, list[int]] = {f: [] for f in FORMATS}
    per_round = max(1, steps // rounds)
    for f in FORMATS:  # warm-up
        for x in X[:20]:
            sessions[f].step(x, out=outs[f])
    for r in range(rounds):
        for f in FORMATS:
            s, out = sessions[f], outs[f]
            for i in range(per_round):
                x = X[(r * per_round + i) % len(X)]
                t0 = time.perf_counter_ns()
                s.step(x, out=out)
                times[f].append(time.perf_counter_ns() - t0)
    p50 = {f: float(np.median(times[f])) / 1e3 for f in FORMATS}
    return {"model": name, "p50_us": p50, "max_abs_dev": deviation,
            "weight_bytes": {f: models[f].plan.weight_bytes for f in FORMATS}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(NAMES), choices=NAMES)
    parser.add_argument("--steps", type=int, default=2000, help="timed steps per model and format")
    args = parser.parse_args(argv)
    print("| model | float32 p50 (us) | bf16 p50 (us) | int8 p50 (us) | bf16 speedup | int8 speedup "
          "| bf16 max abs dev | int8 max abs dev | weight MB f32/bf16/int8 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        r = measure(name, args.steps if name != "big" else max(200, args.steps // 10))
        p, d, b = r["p50_us"], r["max_abs_dev"], r["weight_bytes"]
        print(f"| {name} | {p['float']:.2f} | {p['bf16']:.2f} | {p['int8']:.2f} "
              f"| {p['float'] / p['bf16']:.2f}x | {p['float'] / p['int8']:.2f}x "
              f"| {d['bf16']:.1e} | {d['int8']:.1e} "
              f"| {b['float'] / 1e6:.2f}/{b['bf16'] / 1e6:.2f}/{b['int8'] / 1e6:.2f} |", flush=True)


if __name__ == "__main__":
    main()
