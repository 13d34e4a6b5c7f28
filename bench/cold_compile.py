"""Cold compile time: what a new install pays on first use, measured in fresh processes.

    python bench/cold_compile.py [--dtypes float32 float64] [--weights float] [--model kws] [--alone]

Each measurement runs in a new Python process whose ``NUMBA_CACHE_DIR`` is a new empty
directory, so nothing is loaded from an earlier compile. One process per dtype does, in this
order, what a user's first run does: ``import streamlstm``, the first ``session()`` + ``step``,
the first ``Model.run``, the first ``pool.step``; each figure is the wall time of that call,
and in brackets the process's CPU time (compiling is single-threaded, so on a loaded host the
CPU time is the steadier figure).
Later calls reuse what earlier ones compiled (shared callees), so with ``--alone`` each of the
three also runs first in a process of its own. Public API only. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

PROBE = r"""
import json, sys, time
t0, c0 = time.perf_counter(), time.process_time()
import numpy as np
import streamlstm as sl
from streamlstm.tools.zoo import zoo_network
times = {"import": time.perf_counter() - t0, "cpu import": time.process_time() - c0}
model = sl.Model(zoo_network(sys.argv[1]), dtype=sys.argv[2], weights=sys.argv[3])
x = np.zeros(model.input_size, model.dtype)

def first_step():
    model.session().step(x)

def first_run():
    model.run(np.zeros((4, model.input_size), model.dtype))

def first_pool_step():
    pool = model.pool(4)
    ids = [pool.open() for _ in range(2)]
    pool.step(ids, np.zeros((2, model.input_size), model.dtype))

for name in sys.argv[4].split(","):
    t, c = time.perf_counter(), time.process_time()
    {"step": first_step, "run": first_run, "pool": first_pool_step}[name]()
    times[name], times["cpu " + name] = time.perf_counter() - t, time.process_time() - c
print(json.dumps(times))
"""

USES = ("step", "run", "pool")


def measure(model: str, dtype: str, weights: str, uses: tuple[str, ...]) -> dict[str, float]:
    """Seconds per first use, in a fresh process with an empty Numba cache."""
    with tempfile.TemporaryDirectory(prefix="streamlstm-cold-") as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        out = subprocess.run([sys.executable, "-c", PROBE, model, dtype, weights, ",".join(uses)],
                             env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"probe failed ({dtype}, {weights}):\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    ap.add_argument("--weights", nargs="+", default=["float"], help="float, bf16, int8 (float32 only)")
    ap.add_argument("--model", default="kws", help="a zoo model name")
    ap.add_argument("--alone", action="store_true", help="also time each use first in its own process")
    ap.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    args = ap.parse_args(argv)
    rows = []
    for dtype in args.dtypes:
        for weights in args.weights:
            if weights != "float" and dtype != "float32":
                continue
            t = measure(args.model, dtype, weights, USES)
            row = {"dtype": dtype, "weights": weights, "mode": "in sequence", **t,
                   "total": sum(t[u] for u in USES), "cpu total": sum(t["cpu " + u] for u in USES)}
            rows.append(row)
            if args.alone:
                alone = {}
                for u in USES:
                    t = measure(args.model, dtype, weights, (u,))
                    alone.update({u: t[u], "cpu " + u: t["cpu " + u]})
                rows.append({"dtype": dtype, "weights": weights, "mode": "each alone", **alone})
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return 0
    print(f"model {args.model}, wall seconds (CPU seconds), empty cache, {os.cpu_count()} CPUs")
    print("| dtype | weights | mode | import | first step | first run | first pool.step | total |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        cells = [f"{r[k]:.1f} ({r['cpu ' + k]:.1f})" if k in r else "" for k in ("import", *USES, "total")]
        print(f"| {r['dtype']} | {r['weights']} | {r['mode']} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
