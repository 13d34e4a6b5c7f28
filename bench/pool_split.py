"""What splitting a pool step over two threads gives, by stream count: the data behind
``pool.threaded_rows``.

    python bench/pool_split.py [--models tiny,kws,vad,enh,big] [--streams 32,64,128,256]

For each zoo model and stream count, times ``SessionPool.step`` (median of interleaved calls)
on one thread and on two threads forced to split every step of 64 streams or more, and prints
the step's multiply-adds, both times, their ratio and whether the pool's own threshold
(``threaded_rows``) would split it.
"""

from __future__ import annotations

import argparse

import numpy as np

import streamlstm as sl
from streamlstm.tools.probes import pool_splitting_from, threaded_rows
from streamlstm.tools.zoo import zoo_network

from step_breakdown import per_call_us


def _timed(pools, X, rounds: int) -> list[float]:
    calls = []
    for pool in pools:
        n = X.shape[0]
        ids = np.array([pool.open() for _ in range(n)], dtype=np.int64)
        out = np.empty((n, pool.model.output_size), pool.model.dtype)
        calls.append(lambda pool=pool, ids=ids, out=out: pool.step(ids, X, out=out))
    for call in calls:
        call()
    medians = [[] for _ in calls]
    for _ in range(rounds):
        for m, call in zip(medians, calls):
            m.append(per_call_us(call, 20))
    return [float(np.median(m)) for m in medians]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="tiny,kws,vad,enh,big")
    ap.add_argument("--streams", default="32,64,128,256")
    ap.add_argument("--rounds", type=int, default=10)
    a = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    print("| model | streams | multiply-adds per step | 1 thread (µs) | 2 threads, split (µs) | 1 / 2 | pool splits |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name in a.models.split(","):
        model = sl.Model(zoo_network(name))
        per_frame = model.plan.products_per_frame
        for n in (int(v) for v in a.streams.split(",")):
            X = rng.standard_normal((n, model.input_size)).astype(model.dtype)
            one, two = _timed([model.pool(n), pool_splitting_from(model, n, 2, 64)], X, a.rounds)
            splits = "yes" if n >= threaded_rows(model.plan) else "no"
            print(f"| {name} | {n} | {n * per_frame / 1e6:.1f} M | {one:.0f} | {two:.0f} | {one / two:.2f} | {splits} |",
                  flush=True)


if __name__ == "__main__":
    main()
