"""Before/after latency of two checkouts, interleaved block by block in one session.

Each checkout needs its own environment with streamlstm installed from it (``TREE/.venv``). One
worker process per checkout loads the same zoo model; the driver then alternates short blocks
between the two workers (A, B, B, A, ...), so both meet the same machine state, which on a
shared VM drifts within seconds. A block is ``--block`` calls of one frame (``Session.stepper``),
of one 100-frame chunk (``Session.run``) or of one pool step over 256 streams, each call timed
alone; the figure per side is the median over all its calls, and the ratio is after / before.
A process's memory layout moves its timings too, so all this is repeated with fresh worker pairs
and the median ratio over pairs is reported, with its range.

    python bench/ab.py /path/to/before /path/to/after [--rounds 40] [--models tiny,kws]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

# Runs inside each checkout's environment: read a command per line, answer with JSON.
WORKER = r"""
import json, sys, time
import numpy as np
import streamlstm as sl
try:
    from streamlstm.tools.zoo import zoo_network
except ImportError:
    from streamlstm.zoo import zoo_network

calls = {}
for line in sys.stdin:
    cmd = json.loads(line)
    if cmd["op"] == "load":
        m = sl.Model(zoo_network(cmd["model"]))
        rng = np.random.default_rng(0)
        X = rng.normal(size=(100, m.input_size)).astype(np.float32)
        P = rng.normal(size=(256, m.input_size)).astype(np.float32)
        step = m.session().stepper()
        sess = m.session()
        pool = m.pool(256)
        ids = [pool.open() for _ in range(256)]
        calls = {"step": lambda k: step(X[k % 100]), "chunk": lambda k: sess.run(X),
                 "pool": lambda k: pool.step(ids, P)}
        for f in calls.values():
            for k in range(20):
                f(k)
        print(json.dumps({"ok": True}), flush=True)
    else:
        f, n, out = calls[cmd["op"]], cmd["n"], []
        clock = time.perf_counter_ns
        for k in range(n):
            t0 = clock()
            f(k)
            out.append(clock() - t0)
        print(json.dumps(out), flush=True)
"""

BLOCKS = {"step": 200, "chunk": 5, "pool": 3}  # calls per block: roughly a few ms each


class Worker:
    def __init__(self, tree: Path):
        self.proc = subprocess.Popen([str(tree / ".venv" / "bin" / "python"), "-c", WORKER], cwd=tree,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env={"STREAMLSTM_QUIET": "1", "PATH": "/usr/bin:/bin"})

    def ask(self, **cmd):
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--rounds", type=int, default=40, help="blocks per side and mode (default 40)")
    ap.add_argument("--models", default="tiny,kws,vad,enh,big")
    ap.add_argument("--modes", default="step,chunk,pool")
    ap.add_argument("--pairs", type=int, default=5,
                    help="fresh worker pairs per model: a process's memory layout moves its timings, "
                         "so the ratio is the median over pairs (default 5)")
    args = ap.parse_args()
    modes = args.modes.split(",")
    print("| model | call | before p50 us | after p50 us | after / before (median of pairs) | range |")
    print("|---|---|---:|---:|---:|---|")
    for model in args.models.split(","):
        ratios = {m: [] for m in modes}
        p50s = {m: {"before": [], "after": []} for m in modes}
        for _ in range(args.pairs):
            workers = {side: Worker(getattr(args, side).resolve()) for side in ("before", "after")}
            try:
                for w in workers.values():
                    w.ask(op="load", model=model)
                for mode in modes:
                    times = {"before": [], "after": []}
                    for r in range(args.rounds):
                        order = ("before", "after") if r % 2 == 0 else ("after", "before")
                        for side in order:
                            times[side] += workers[side].ask(op=mode, n=BLOCKS[mode])
                    a, b = (float(np.median(times[s])) / 1000 for s in ("before", "after"))
                    p50s[mode]["before"].append(a)
                    p50s[mode]["after"].append(b)
                    ratios[mode].append(b / a)
            finally:
                for w in workers.values():
                    w.close()
        for mode in modes:
            a, b = (float(np.median(p50s[mode][s])) for s in ("before", "after"))
            r = ratios[mode]
            print(f"| {model} | {mode} | {a:.2f} | {b:.2f} | {float(np.median(r)):.3f} | "
                  f"{min(r):.2f}-{max(r):.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
