"""The memory roofline of the zoo: weight bytes per step over measured streaming bandwidth.

    python bench/roofline.py [--json bench.json]

A step reads every weight once, so no implementation can step faster than streaming the
model's weight bytes. This script times, on one core, a vectorised read of a buffer exactly as
large as each zoo model's weights (float32 and bf16) and reports:

- the bandwidth and the floor: the best time of one read, repeated reads amortising the call;
- the floor p50: the median of single reads, each a call from Python timed like a
  ``Session.step`` in the bench (a step that only read its weights would take this long);
- streamlstm's measured ``Session.step`` p50 and its share of the floor p50.

Given the JSON of a ``streamlstm bench`` run, it also prints the highest speedup over the best
onnxruntime variant that the floor p50 allows.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from numba import njit

import streamlstm as sl
from streamlstm.tools.probes import direct_call, weight_like_buffer
from streamlstm.tools.zoo import NAMES, zoo_network


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
    a = weight_like_buffer(nbytes)
    repeats = max(3, int(2e8 // a.nbytes))
    _stream(a, 1)
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        _stream(a, repeats)
        best = min(best, (time.perf_counter() - t) / repeats)
    return best


def read_p50(nbytes: int, calls: int) -> float:
    """Median µs of one read of an ``nbytes`` buffer per call from Python (after 50 warm-up
    calls), timed like a bench step."""
    a = weight_like_buffer(nbytes)
    read = direct_call(_stream, a, 1)
    for _ in range(50):
        read(a, 1)
    times = np.empty(calls)
    for i in range(calls):
        t = time.perf_counter_ns()
        read(a, 1)
        times[i] = time.perf_counter_ns() - t
    return float(np.median(times)) / 1e3


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
    print("| model | weights | bandwidth | floor | floor p50 | streamlstm p50 | % of floor p50 "
          "| ORT best p50 | max speedup the floor p50 allows |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.models:
        for fmt in ("float", "bf16"):
            model = sl.Model(zoo_network(name), weights=fmt)
            nbytes = model.plan.weight_bytes
            steps = 300 if name == "big" else 3000
            sec = stream_seconds(nbytes)
            floor_p50 = read_p50(nbytes, steps)
            p50 = step_p50(model, steps)
            o = ort.get(name)
            label = name if fmt == "float" else f"{name} (bf16)"
            print(f"| {label} | {nbytes / 1e6:.2f} MB | {nbytes / sec / 1e9:.0f} GB/s | {sec * 1e6:.1f} us "
                  f"| {floor_p50:.1f} us | {p50:.1f} us | {100 * floor_p50 / p50:.0f}% "
                  f"| {f'{o:.1f} us' if o else '-'} | {f'{o / floor_p50:.2f}x' if o else '-'} |", flush=True)


if __name__ == "__main__":
    main()
