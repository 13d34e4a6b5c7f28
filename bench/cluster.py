"""StreamCluster against one in-process SessionPool: throughput, step latency, snapshot and recovery.

    python -m bench.cluster [--model kws] [--streams 1000 4000] [--shards 1 2] [--steps 200]
                            [--snapshot-every 32] [--num-cpus N]

For each stream count n, every stream advances one frame per step:

- ``pool``: one ``SessionPool.step`` over the n streams, in this process;
- ``cluster xS``: ``StreamCluster.step`` over the n keys on S shard actors (a local Ray
  instance), snapshots every ``--snapshot-every`` steps included.

Prints a markdown table: frames/s, step p50/p99 (ms), the time of one full ``snapshot()``,
and the recovery time after ``ray.kill`` of a shard (the first step after the kill minus a
normal step: start a replacement actor, load the model, restore, replay, retry). Every
cluster output is checked bit for bit against the pool's first.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import ray

import streamlstm as sl
from bench.zoo import zoo_network
from streamlstm.cluster import StreamCluster


def _percentiles(times: list[float]) -> tuple[float, float]:
    ms = np.array(times) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def measure(path: str, n: int, shards_list: list[int], steps: int, every: int) -> list[dict]:
    """One row per engine for n streams of the model at ``path``."""
    model = sl.load(path)
    rng = np.random.default_rng(n)
    frames = [rng.standard_normal((n, model.input_size)).astype(model.dtype) for _ in range(steps)]
    warm = model.pool(1)
    warm.step([warm.open()], frames[0][:1])  # compile in this process before timing
    pool = model.pool(n)
    ids = np.array([pool.open() for _ in range(n)])
    times, want = [], []
    for X in frames:
        t0 = time.perf_counter()
        want.append(pool.step(ids, X))
        times.append(time.perf_counter() - t0)
    p50, p99 = _percentiles(times)
    rows = [{"engine": "pool", "streams": n, "frames/s": n * steps / sum(times), "p50": p50, "p99": p99}]
    for shards in shards_list:
        with StreamCluster(path, shards=shards, capacity=n, snapshot_every=every) as c:
            keys = [f"stream{i}" for i in range(n)]
            for k in keys:
                c.open(k)
            times = []
            for X, Y in zip(frames, want):
                t0 = time.perf_counter()
                got = c.step(keys, X)
                times.append(time.perf_counter() - t0)
                if not np.array_equal(got, Y):
                    raise AssertionError(f"cluster x{shards}: outputs differ from the pool's")
            p50, p99 = _percentiles(times)
            snaps = []
            for _ in range(5):
                t0 = time.perf_counter()
                c.snapshot()
                snaps.append(time.perf_counter() - t0)
            for _ in range(every // 2):  # a log to replay
                c.step(keys, frames[0])
            ray.kill(c.shards[0])
            time.sleep(1.0)  # ray.kill returns at once; let the process die before timing
            t0 = time.perf_counter()
            c.step(keys, frames[0])
            recovery = time.perf_counter() - t0 - p50 / 1e3
            if c.recoveries != 1:
                raise AssertionError("the killed shard was not rebuilt")
            rows.append({"engine": f"cluster x{shards}", "streams": n, "frames/s": n * steps / sum(times),
                         "p50": p50, "p99": p99, "snapshot": float(np.median(snaps)) * 1e3,
                         "recovery": recovery * 1e3})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__.split("\n")[0])
    p.add_argument("--model", default="kws", help="zoo model (default kws)")
    p.add_argument("--streams", type=int, nargs="+", default=[1000, 4000])
    p.add_argument("--shards", type=int, nargs="+", default=[1, 2])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--snapshot-every", type=int, default=32)
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray instance "
                   "(default: max(--shards) + 1)")
    args = p.parse_args(argv)
    ray.init(num_cpus=args.num_cpus or max(args.shards) + 1, include_dashboard=False, log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, f"{args.model}.npz")
            zoo_network(args.model).save(path)
            model = sl.load(path)
            item = model.dtype.itemsize
            print(f"model {args.model}: {model.input_size} inputs, {model.output_size} outputs, "
                  f"{model.state_size} state values; payload per frame {model.input_size * item} B in, "
                  f"{model.output_size * item} B out; state {model.state_size * item} B per stream; "
                  f"{os.cpu_count()} CPUs\n")
            print("| engine | streams | frames/s | step p50 ms | step p99 ms | snapshot ms | recovery ms |")
            print("|---|---:|---:|---:|---:|---:|---:|")
            for n in args.streams:
                for r in measure(path, n, args.shards, args.steps, args.snapshot_every):
                    snap = f"{r['snapshot']:.1f}" if "snapshot" in r else "-"
                    rec = f"{r['recovery']:.0f}" if "recovery" in r else "-"
                    print(f"| {r['engine']} | {r['streams']} | {r['frames/s']:,.0f} | {r['p50']:.2f} | "
                          f"{r['p99']:.2f} | {snap} | {rec} |", flush=True)
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
