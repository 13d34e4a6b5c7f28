"""The memory roofline of the zoo: weight bytes per step over measured streaming bandwidth.

    python bench/roofline.py [--json bench.json]

A step reads every weight once, so no implementation can step faster than streaming the
model's weight bytes. This script times, on one core, a vectorised read of a buffer exactly as
large as each zoo model's weights (float32 and bf16), reports the bandwidth and the floor, and
compares the floor with streamlstm's measured ``Session.step`` p50. Given the JSON of a
``streamlstm bench`` run, it also prints the highest speedup over the best onnxruntime variant
that the floor allows.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from numba import njit

import streamlstm as sl
from streamlstm.plan import aligned_bytes
from streamlstm.zoo import NAMES, zoo_network


@njit(fastmath=True, cache=True, nogil=True)
def _stream(a: np.ndarray, repeats: int) -> float:
    s = np.float32(0)
    for _ in range(repeats):
        for i in range(a.shape[0]):
            s += a[i]
    return s


def stream_seconds(nbytes: int, rounds: int = 15) -> float:
    """Best time of one full read of an ``nbytes`` buffer (kept hot in whatever cache fits it),
    allocated like the Plan's weights (transparent huge pages from 2 MB, as streamlstm's own)."""
    a = aligned_bytes(max(nbytes // 4, 16) * 4).view(np.float32)
    a[:] = 1.0
    repeats = max(3, int(2e8 // a.nbytes))
    _stream(a, 1)
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        _stream(a, repeats)
        best = min(best, (time.perf_counter() - t) / repeats)
    return best


def step_p50(model: sl.Model, steps: int) -> float:
    s = model.session()
    x = np.random.default_rng(0).normal(size=model.input_size).astype(np.float32)
    out = np.empty(model.output_size, np.float32)
    for _ in range(50):
        s.step(x, out=out)
    times = np.empty(steps)
    for i in range(steps):
        t = time.perf_counter_ns()
        s.step(x, out=out)
        times[i] = time.perf_counter_ns() - t
    return float(np.median(times)) / 1e3


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="a `streamlstm bench --json` file, for the best onnxruntime p50")
    parser.add_argument("--models", nargs="+", default=list(NAMES), choices=NAMES)
    args = parser.parse_args(argv)
    ort = {}
    if args.json:
        with open(args.json) as fh:
            for entry in json.load(fh).get("models", []):
                best = [f["p50_us"] for f in entry.get("frameworks", [])
                        if f.get("name") == entry.get("ort_reference") and f.get("p50_us")]
                if best:
                    ort[entry["name"]] = best[0]
    print("| model | weights | bandwidth | floor | streamlstm p50 | % of floor | ORT best p50 "
          "| max speedup the floor allows |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.models:
        for fmt in ("float", "bf16"):
            model = sl.Model(zoo_network(name), weights=fmt)
            nbytes = model.plan.weight_bytes
            sec = stream_seconds(nbytes)
            floor = sec * 1e6
            p50 = step_p50(model, 300 if name == "big" else 3000)
            o = ort.get(name)
            label = name if fmt == "float" else f"{name} (bf16)"
            print(f"| {label} | {nbytes / 1e6:.2f} MB | {nbytes / sec / 1e9:.0f} GB/s | {floor:.1f} us "
                  f"| {p50:.1f} us | {100 * floor / p50:.0f}% | {f'{o:.1f} us' if o else '-'} "
                  f"| {f'{o / floor:.2f}x' if o else '-'} |", flush=True)


if __name__ == "__main__":
    main()
