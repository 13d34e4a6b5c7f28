"""Where the time of one zoo step goes: the whole step against a plain read of its weight bytes.

    python bench/step_breakdown.py [model] [--rounds N]

Times, in interleaved rounds (median of per-call medians):

- ``step``: ``Session.stepper(out)``, as the bench times streamlstm;
- ``read``: a plain vectorised read of a buffer as large as the Plan's weights, allocated like
  them and called without dispatch like a step.

Both are one call from Python, so their difference is the work that is not streaming weights
(gate maths, activations, the layer loop): what a faster step would have to hide under the
weight stream. The split of a step into its matrix products and gate maths needs kernel
internals and lives with the kernels' own tests, not here.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import streamlstm as sl
from streamlstm.tools.probes import direct_call, weight_like_buffer
from streamlstm.tools.zoo import NAMES, zoo_network

from roofline import _stream


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
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    model = sl.Model(zoo_network(args.model))
    rng = np.random.default_rng(0)
    x = rng.normal(size=model.input_size).astype(np.float32)
    out = np.empty(model.output_size, np.float32)
    step = model.session().stepper(out)
    nbytes = model.plan.weight_bytes
    w = weight_like_buffer(nbytes)
    read = direct_call(_stream, w, 1)
    parts = {
        "step": lambda: step(x),
        "read": lambda: read(w, 1),
    }
    for fn in parts.values():
        fn()
    medians = {name: [] for name in parts}
    for _ in range(args.rounds):
        for name, fn in parts.items():
            medians[name].append(per_call_us(fn, 300 if nbytes < (8 << 20) else 30))
    result = {name: float(np.median(v)) for name, v in medians.items()}
    print(f"{args.model}: {nbytes / 1e6:.2f} MB of weights")
    print("| part | µs |\n|---|---:|")
    for name, us in result.items():
        print(f"| {name} | {us:.2f} |")
    print(f"| step - read | {result['step'] - result['read']:.2f} |")


if __name__ == "__main__":
    main()
