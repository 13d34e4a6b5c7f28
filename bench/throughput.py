"""Many-stream throughput: frames/s of SessionPool.step against per-stream loops and onnxruntime.

    python -m bench.throughput [--models kws vad] [--streams 1 16 256 1024] [--seconds 0.5]
                               [--threads N]

For each zoo model and stream count n, every stream advances by one frame per round:

- ``pool.step``: one call ``pool.step(ids, X)`` for the n streams (``threads=1``, then
  ``threads=N`` in the second table, which splits steps of >= 64 streams over N threads);
- ``Session.step`` loop: a Python loop over n sessions;
- ORT batch: onnxruntime runs the n frames as one batch (``bench/onnx_batch.py``); the caller
  gathers the n streams' states from its (capacity, H) arrays and scatters the new ones back;
- ORT loop: a Python loop of n single-stream onnxruntime calls on ``model.to_onnx()``.

Prints two markdown tables of frames/s (best of several trials) and the pool's speedups: every
engine on one thread, then pool and onnxruntime batch on N threads (default: all CPUs). Every
round's outputs are checked first: pool == Session.step exactly, onnxruntime within 1e-4.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import onnxruntime as ort

import streamlstm as sl
from bench.onnx_batch import batch_onnx, state_specs
from bench.zoo import zoo_network


def rate(fn, frames: int, seconds: float, trials: int = 5) -> float:
    """Best frames/s of ``fn`` (which advances ``frames`` frames) over a few timed trials."""
    fn()
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-7)
    reps = max(1, int(seconds / trials / once))
    best = float("inf")
    for _ in range(trials):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - t0) / reps)
    return frames / best


def _ort_session(proto, threads: int) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])


def measure(name: str, n: int, seconds: float, threads: int = 1, check: bool = True) -> dict:
    """frames/s of the four ways to advance n streams of zoo model ``name``; pool and onnxruntime
    batch on ``threads`` threads (then the two single-threaded loops are skipped)."""
    network = zoo_network(name)
    model = sl.Model(network)
    rng = np.random.default_rng(n)
    frames = [rng.standard_normal((n, model.input_size)).astype(np.float32) for _ in range(4)]
    k = [0]

    def next_frames():
        k[0] = (k[0] + 1) & 3
        return frames[k[0]]

    pool = sl.SessionPool(model, n, threads=threads)
    ids = np.array([pool.open() for _ in range(n)], dtype=np.int64)
    out = np.empty((n, model.output_size), np.float32)

    def pool_round():
        pool.step(ids, next_frames(), out=out)

    sessions = [model.session() for _ in range(n)]

    def session_round():
        X = next_frames()
        for i, s in enumerate(sessions):
            s.step(X[i])

    # onnxruntime, batched: the caller holds every stream's state and gathers/scatters it.
    batch = _ort_session(batch_onnx(network), threads)
    specs = state_specs(network)
    held = {i: np.zeros((1, n, w), np.float32) for i, _, w in specs}
    out_names = ["y"] + [o for _, o, _ in specs]

    def ort_batch_round():
        feed = {"x": next_frames()}
        for i, _, _ in specs:
            feed[i] = held[i][:, ids]
        res = batch.run(out_names, feed)
        for (i, _, _), r in zip(specs, res[1:]):
            held[i][:, ids] = r
        return res[0]

    # onnxruntime, one stream per call, on the project's own export.
    single = _ort_session(model.to_onnx(), 1)
    s_inputs = [i.name for i in single.get_inputs() if i.name != "x"]
    s_outputs = [o.name for o in single.get_outputs()]
    shapes = {i.name: [d if isinstance(d, int) else 1 for d in i.shape] for i in single.get_inputs()}
    s_states = [{nm: np.zeros(shapes[nm], np.float32) for nm in s_inputs} for _ in range(n)]

    def ort_loop_round():
        X = next_frames()
        for i in range(n):
            feed = dict(s_states[i])
            feed["x"] = X[i:i + 1]
            res = single.run(s_outputs, feed)
            s_states[i] = dict(zip(s_inputs, res[1:]))

    if check:  # all four agree on the first rounds before anything is timed
        for _ in range(3):
            X = frames[(k[0] + 1) & 3]
            yp = pool.step(ids, X)
            ys = np.stack([s.step(X[i]) for i, s in enumerate(sessions)])
            yb = ort_batch_round()
            assert np.array_equal(yp, ys), "pool.step != Session.step"
            assert np.abs(yp - yb).max() < 1e-4, f"pool vs onnxruntime batch: {np.abs(yp - yb).max()}"
    r = {"pool": rate(pool_round, n, seconds), "ort_batch": rate(ort_batch_round, n, seconds)}
    if threads == 1:
        r["session"] = rate(session_round, n, seconds)
        r["ort_loop"] = rate(ort_loop_round, n, seconds)
    return r


def _fmt(x: float) -> str:
    return f"{x / 1e6:.2f} M" if x >= 1e6 else f"{x / 1e3:.0f} k"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["kws", "vad"])
    ap.add_argument("--streams", nargs="+", type=int, default=[1, 16, 256, 1024])
    ap.add_argument("--seconds", type=float, default=0.5, help="time budget per measurement")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="threads for the second table (pool.step and onnxruntime batch); 1 skips it")
    a = ap.parse_args(argv)
    print(f"onnxruntime {ort.__version__}, {os.cpu_count()} CPUs; frames/s, best of 5 trials\n")
    print("One thread everywhere (onnxruntime intra_op_num_threads=1):\n")
    print("| model | streams | pool.step | Session.step loop | ORT batch | ORT loop | pool / ORT batch "
          "| pool / ORT loop |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    loops = {}
    for name in a.models:
        for n in a.streams:
            r = measure(name, n, a.seconds)
            loops[name, n] = r["ort_loop"]
            print(f"| {name} | {n} | {_fmt(r['pool'])} | {_fmt(r['session'])} | {_fmt(r['ort_batch'])} | "
                  f"{_fmt(r['ort_loop'])} | {r['pool'] / r['ort_batch']:.2f}x | "
                  f"{r['pool'] / r['ort_loop']:.1f}x |", flush=True)
    if a.threads <= 1:
        return
    T = a.threads
    print(f"\n{T} threads: SessionPool(model, n, threads={T}) and onnxruntime intra_op_num_threads={T} "
          "(ORT loop from the table above):\n")
    print(f"| model | streams | pool.step ({T} threads) | ORT batch ({T} threads) | pool / ORT batch "
          "| pool / ORT loop |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in a.models:
        for n in a.streams:
            r = measure(name, n, a.seconds, threads=T)
            print(f"| {name} | {n} | {_fmt(r['pool'])} | {_fmt(r['ort_batch'])} | "
                  f"{r['pool'] / r['ort_batch']:.2f}x | {r['pool'] / loops[name, n]:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
