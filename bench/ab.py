"""Before/after latency of two checkouts, measured interleaved in one session.

Each checkout needs its own environment with streamlstm installed from it (``TREE/.venv``).
Rounds alternate A, B, A, B, ...: each runs that tree's ``streamlstm bench`` for streamlstm
alone, so both trees meet the same machine states. Prints, per model and variant, the median
over rounds of the step p50 (and the chunk mode's per-frame p50) and the ratio B / A.

    python bench/ab.py /path/to/before /path/to/after [--rounds 3] [--models tiny,kws]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def run_bench(tree: Path, models: str, steps: int, out: Path) -> dict:
    exe = tree / ".venv" / "bin" / "streamlstm"
    cmd = [str(exe), "bench", "--frameworks", "streamlstm", "--models", models, "--steps", str(steps),
           "--no-cold-start", "--no-progress", "--json", str(out), "--plot", str(out.with_suffix(".png"))]
    subprocess.run(cmd, cwd=tree, check=True, stdout=subprocess.DEVNULL, timeout=3600)
    return json.loads(out.read_text())


def p50s(result: dict) -> dict[tuple[str, str], float]:
    """(model, variant) -> p50 in us; chunk rows give the per-frame p50."""
    out = {}
    for m in result["models"]:
        for f in m["frameworks"]:
            if f.get("status") == "ok":
                out[(m["name"], f["name"])] = f["p50_us"]
        for f in (m.get("chunk") or {}).get("frameworks", []):
            if f.get("status") == "ok":
                out[(m["name"], f"{f['name']} chunk/frame")] = f["per_frame_p50_us"]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--models", default="tiny,kws,vad,enh,big")
    ap.add_argument("--steps", type=int, default=3000)
    args = ap.parse_args()
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for side in ("before", "after"):
                res = run_bench(getattr(args, side).resolve(), args.models, args.steps, Path(tmp) / f"{side}{r}.json")
                runs[side].append(p50s(res))
                print(f"round {r + 1}/{args.rounds}: {side} done", file=sys.stderr)
    keys = [k for k in runs["before"][0] if all(k in run for side in runs.values() for run in side)]
    print("| model | variant | before p50 us | after p50 us | after / before |")
    print("|---|---|---:|---:|---:|")
    for k in keys:
        a = statistics.median(run[k] for run in runs["before"])
        b = statistics.median(run[k] for run in runs["after"])
        print(f"| {k[0]} | {k[1]} | {a:.2f} | {b:.2f} | {b / a:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
