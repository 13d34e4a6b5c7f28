"""Chunk mode on one and two threads against onnxruntime on one and its default threads, in
blocks separated by pauses.

    python bench/chunk_blocks.py [--models enh,big] [--rounds 6] [--block 8] [--pause 0.05]

A two-thread engine that runs right after another meets that engine's spinning threads
(onnxruntime's pool spins after a run, a streamlstm helper for ~10 ms before it parks) on the
second core of a 2-core host. Here each engine runs ``--block`` calls of ``Session.run`` /
``InferenceSession.run`` on 100 frames (the first 2 unrecorded) after a ``--pause`` long enough
for the other's threads to park, in rotating order; medians per engine and speedups over the
best onnxruntime variant. ``streamlstm bench`` times its chunk table in blocks too (after
100 ms of unrecorded calls instead of a pause); this script varies the block and the pause.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import streamlstm as sl
from streamlstm.tools.peers import OrtRunPeer, analyse_onnx, ort_session
from streamlstm.tools.zoo import zoo_network


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="tiny,kws,vad,enh,big")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--block", type=int, default=8)
    ap.add_argument("--pause", type=float, default=0.05)
    ap.add_argument("--frames", type=int, default=100)
    a = ap.parse_args(argv)
    print("| model | streamlstm 1 thread | streamlstm 2 threads | ORT 1 thread | ORT default threads "
          "| 1 thread vs best ORT | 2 threads vs best ORT |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in a.models.split(","):
        m = sl.Model(zoo_network(name))
        X = np.random.default_rng(0).standard_normal((a.frames, m.input_size)).astype(np.float32)
        b = m.to_onnx()
        b = b if isinstance(b, bytes) else b.SerializeToString()
        ort = {}
        for th in (1, None):
            s = ort_session(b, th)
            ort[th] = OrtRunPeer(s, analyse_onnx(s, m.input_size, m.output_size, b), th)
        s1, s2 = m.session(), m.session(threads=2)
        calls = {"sl1": lambda: s1.run(X), "sl2": lambda: s2.run(X),
                 "ort1": lambda: ort[1].chunk(X), "ortD": lambda: ort[None].chunk(X)}
        times = {k: [] for k in calls}
        keys = list(calls)
        for r in range(a.rounds):
            for j in range(len(keys)):
                k = keys[(j + r) % len(keys)]
                time.sleep(a.pause)
                for i in range(a.block):
                    t0 = time.perf_counter_ns()
                    calls[k]()
                    if i >= 2:
                        times[k].append(time.perf_counter_ns() - t0)
        s2.close()
        med = {k: float(np.median(v)) / 1e3 for k, v in times.items()}
        best = min(med["ort1"], med["ortD"])
        print(f"| {name} | {med['sl1']:.0f} | {med['sl2']:.0f} | {med['ort1']:.0f} | {med['ortD']:.0f} | "
              f"{best / med['sl1']:.2f}x | {best / med['sl2']:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
