"""The first step after a pause: what a stream that goes quiet pays when frames resume.

    python bench/wake_latency.py [model] [--pauses N] [--pause-ms MS]

For a one-thread and a two-thread (``threads=2``) session of a zoo model, in alternation:
step 200 frames, then N times sleep ``--pause-ms`` and time one step. The pause outlasts the
helper's idle timeout, so every timed step of the two-thread session finds its helper asleep;
both sessions find their caches cooled by the pause.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import streamlstm as sl
from streamlstm.tools.zoo import NAMES, zoo_network


def first_steps_us(step, x: np.ndarray, pauses: int, pause_s: float) -> np.ndarray:
    pc = time.perf_counter_ns
    times = np.empty(pauses)
    for i in range(pauses):
        time.sleep(pause_s)
        t0 = pc()
        step(x)
        times[i] = (pc() - t0) / 1e3
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="vad", choices=NAMES)
    parser.add_argument("--pauses", type=int, default=150)
    parser.add_argument("--pause-ms", type=float, default=20.0)
    args = parser.parse_args(argv)
    model = sl.Model(zoo_network(args.model))
    x = np.random.default_rng(0).standard_normal(model.input_size).astype(np.float32)
    sessions = {"1 thread": model.session(), "2 threads": model.session(threads=2)}
    steps = {name: s.stepper(np.empty(model.output_size, np.float32)) for name, s in sessions.items()}
    for f in steps.values():
        for _ in range(200):
            f(x)
    times = {name: [] for name in steps}
    for _ in range(3):  # alternate, so drift of the machine hits both alike
        for name, f in steps.items():
            times[name].append(first_steps_us(f, x, args.pauses // 3, args.pause_ms / 1e3))
    print(f"{args.model}: first step after a {args.pause_ms:g} ms pause (µs, {args.pauses // 3 * 3} pauses)")
    print("| session | p50 | p90 | max |\n|---|---:|---:|---:|")
    for name, parts in times.items():
        t = np.concatenate(parts)
        print(f"| {name} | {np.median(t):.0f} | {np.percentile(t, 90):.0f} | {t.max():.0f} |")
    sessions["2 threads"].close()


if __name__ == "__main__":
    main()
