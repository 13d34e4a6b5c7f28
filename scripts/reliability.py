"""The long and heavy reliability runs behind docs/RELIABILITY.md (CI runs short versions in tests/).

    python scripts/reliability.py all                    # everything below, default sizes (~15 min on 2 cores)
    python scripts/reliability.py fuzz --files 2000      # mutated files per seed format, through the sandbox
    python scripts/reliability.py memory                 # every hostile file under RLIMIT_AS: peak RSS per file
    python scripts/reliability.py frames --examples 2000 # hypothesis examples per frame-fuzz test and model
    python scripts/reliability.py longrun --steps 1000000
    python scripts/reliability.py stress --threads 8 --seconds 60
    ... --json figures.json                              # also write the figures as JSON

Each section prints its figures and exits non-zero when something broke the contract. Reuses
the test helpers in tests/ (sandbox, mutations, crafted files, stress runs).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
sys.path.insert(0, str(TESTS))

import numba  # noqa: E402
import numpy as np  # noqa: E402

from support import crafted_files  # noqa: E402
from support import mutations as M  # noqa: E402
from support.loader_sandbox import Sandbox  # noqa: E402
from support.stress_runs import concurrency_stress, long_run  # noqa: E402

MAX_SECONDS, MAX_RSS_MB = 10.0, 256


def header() -> dict:
    info = {"python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__,
            "cpus": os.cpu_count(), "machine": platform.machine()}
    print(f"# {' '.join(f'{k}={v}' for k, v in info.items())}")
    return info


# ---------------------------------------------------------------------------------- loaders
def fuzz(files: int, seed: int, workdir: Path) -> dict:
    """The corpus, the crafted files, and ``files`` random mutations of each seed, all sandboxed."""
    counts = collections.Counter()
    by_level = collections.Counter()
    problems: list[str] = []
    worst_seconds = worst_rss = 0.0
    kept = workdir / "problems"
    t0 = time.perf_counter()
    inputs: list[tuple[str, Path]] = []
    for p in sorted((TESTS / "corpus").glob("*/*")):
        if p.suffix != ".py":
            inputs.append((f"corpus/{p.parent.name}", p))
    for fmt, name, p in crafted_files.build_all(workdir / "crafted"):
        inputs.append((f"crafted/{fmt}", p))

    with Sandbox(workdir / "sandbox", timeout=60) as box:
        def check(label: str, path: Path, data: bytes | None = None):
            nonlocal worst_seconds, worst_rss
            out = box.load(path)
            counts[(label, out.status)] += 1
            worst_seconds = max(worst_seconds, out.seconds)
            worst_rss = max(worst_rss, out.peak_rss_mb)
            problem = out.problem(max_seconds=MAX_SECONDS, max_rss_mb=MAX_RSS_MB)
            if problem is None and out.status == "ok" and not out.extra.get("finite", True):
                problem = f"{path}: loaded, but finite frames give non-finite outputs"
            if problem is None and box.marker.exists():
                problem = f"{path}: code from the file ran (marker written)"
            if problem:
                kept.mkdir(parents=True, exist_ok=True)
                copy = kept / f"{len(problems):04d}_{path.name}"
                if data is not None:
                    copy.write_bytes(data)
                elif path.is_file():
                    shutil.copy(path, copy)
                problems.append(problem.splitlines()[0][:400] + f"  [kept as {copy}]")

        for label, path in inputs:
            check(label, path)
        for name, kind in M.SEED_KINDS.items():
            data = (M.SEEDS_DIR / name).read_bytes()
            path = workdir / f"mutated{Path(name).suffix}"
            for i in range(files):
                rnd = random.Random(f"{seed}:{name}:{i}")
                try:
                    level, blob = M.random_mutation(kind, data, rnd)
                except Exception:
                    counts[("mutator", "skipped")] += 1
                    continue
                by_level[level] += 1
                path.write_bytes(blob)
                check(f"mutated/{kind}", path, blob)
            print(f"  {name}: {files} mutations done ({time.perf_counter() - t0:.0f} s)", flush=True)
        restarts = box.restarts
        marker = box.marker.exists()

    total = sum(n for (label, _), n in counts.items() if label != "mutator")
    print(f"\n## loader fuzzing: {total} files in {time.perf_counter() - t0:.0f} s "
          f"(slowest load {worst_seconds:.2f} s, largest peak RSS increase {worst_rss:.0f} MB, "
          f"sandbox restarts {restarts})")
    labels = sorted({label for label, _ in counts})
    for label in labels:
        row = {status: counts[(label, status)] for status in ("ok", "error", "crash", "hang", "skipped")
               if counts[(label, status)]}
        print(f"  {label:28s} {row}")
    print(f"  mutation levels: {dict(by_level)}")
    print(f"  problems: {len(problems)}")
    for p in problems[:50]:
        print(f"    {p}")
    return {"files": total, "problems": problems, "slowest_s": worst_seconds, "max_peak_rss_mb": worst_rss,
            "restarts": restarts, "marker_written": marker,
            "by_label": {f"{l}:{s}": n for (l, s), n in counts.items()}, "mutation_levels": dict(by_level)}


# ---------------------------------------------------------------------------------- memory budget
def memory(workdir: Path, mem_limit_mb: int) -> dict:
    """Every committed malicious sample and every crafted hostile file, loaded one by one in the
    sandbox under an address-space cap (RLIMIT_AS, ``mem_limit_mb`` above the child's start-up
    size): the outcome, the file's size and the peak resident memory the load added."""
    inputs = [(f"corpus/{p.parent.name}", p.name, p) for p in sorted((TESTS / "corpus").glob("*/*"))
              if p.suffix != ".py"]
    inputs += [(f"crafted/{fmt}", name, p) for fmt, name, p in crafted_files.build_all(workdir / "crafted")]
    rows, problems = [], []
    t0 = time.perf_counter()
    with Sandbox(workdir / "sandbox", mem_limit_mb=mem_limit_mb, timeout=60) as box:
        for label, name, path in inputs:
            out = box.load(path)
            problem = out.problem(max_seconds=MAX_SECONDS, max_rss_mb=MAX_RSS_MB)
            expected = crafted_files.REFUSAL.get(name)
            if problem is None and expected is not None and not (out.value_error and expected in out.message):
                problem = f"{path}: expected a refusal saying {expected!r}, got {out.status}: {out.message[:200]}"
            size = budget_source_bytes(path)
            rows.append({"input": f"{label}/{name}", "bytes": size, "status": out.status,
                         "peak_rss_mb": round(out.peak_rss_mb, 2), "seconds": round(out.seconds, 3),
                         "message": out.message[:160], "problem": problem})
            if problem:
                problems.append(problem.splitlines()[0][:400])
    rows.sort(key=lambda r: -r["peak_rss_mb"])
    print(f"\n## memory budget: {len(rows)} hostile files, each under RLIMIT_AS = start-up + {mem_limit_mb} MB "
          f"({time.perf_counter() - t0:.0f} s)")
    print(f"  {'peak RSS MB':>11s} {'file bytes':>11s}  {'status':6s} input")
    for r in rows:
        print(f"  {r['peak_rss_mb']:11.1f} {r['bytes']:11d}  {r['status']:6s} {r['input']}")
    print(f"  largest peak RSS increase {rows[0]['peak_rss_mb']:.1f} MB ({rows[0]['input']}); problems: {len(problems)}")
    for p in problems:
        print(f"    {p}")
    return {"files": len(rows), "mem_limit_mb": mem_limit_mb, "rows": rows, "problems": problems,
            "max_peak_rss_mb": rows[0]["peak_rss_mb"] if rows else 0.0}


def budget_source_bytes(path: Path) -> int:
    """The bytes the load budget is sized on (0 for what is not a regular file or directory)."""
    from streamlstm.budget import source_bytes

    try:
        return source_bytes(path) if path.is_file() or path.is_dir() else 0
    except OSError:
        return 0


# ---------------------------------------------------------------------------------- frames
def frames(examples: int, workdir: Path) -> dict:
    counts_file = workdir / "frame_counts.json"
    env = {**os.environ, "STREAMLSTM_FRAME_EXAMPLES": str(examples), "STREAMLSTM_FRAME_COUNTS": str(counts_file)}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W",
                           "ignore::RuntimeWarning", str(TESTS / "hostile" / "test_fuzz_frames.py")],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    tried = json.loads(counts_file.read_text()) if counts_file.exists() else {}
    total = sum(tried.values())
    print(f"\n## frame fuzzing: {total} inputs in {time.perf_counter() - t0:.0f} s "
          f"({examples} examples per test and model)")
    for k in sorted(tried):
        print(f"  {k:32s} {tried[k]}")
    print("  " + proc.stdout.strip().splitlines()[-1])
    if proc.returncode:
        print(proc.stdout[-5000:])
    return {"inputs": total, "by_call": tried, "passed": proc.returncode == 0}


# ---------------------------------------------------------------------------------- long run
def longrun(steps: int) -> dict:
    t0 = time.perf_counter()

    def progress(r, done, phase):
        if done % 100_000 == 0 or done == steps:
            extra = (f"rss {r.rss_samples[-1][1] / 2**20:.2f} MB  max|h| {r.max_abs_h:.3f}  "
                     f"max|c| {r.max_abs_c:.3f}" if phase == "engine" else f"max err so far {r.max_err:.2e}")
            print(f"  {phase:9s} {done:>9d} steps  {time.perf_counter() - t0:6.0f} s  {extra}", flush=True)

    r = long_run(steps, chunk=10_000, warmup=20_000, progress=progress)
    ok = r.rss_growth <= 1 << 20 and r.max_err <= 1e-5 and r.finite and r.max_abs_h <= 1.0
    print(f"\n## long run: {r.steps} steps of {r.model}, one frame per call")
    print(f"  step time {r.us_per_step:.2f} us/step (Python loop included)")
    print(f"  resident memory after warm-up (20000 steps) {r.rss_after_warmup / 2**20:.2f} MB, at the end "
          f"{r.rss_end / 2**20:.2f} MB, max {r.rss_max / 2**20:.2f} MB: growth {r.rss_growth} bytes")
    print(f"  max abs error vs float64 reference over all steps {r.max_err:.3e}; last 10000 steps {r.err_last_chunk:.3e}")
    print(f"  state bounds: max |h| {r.max_abs_h:.4f}, max |c| {r.max_abs_c:.4f}, all finite: {r.finite}")
    return {"steps": r.steps, "us_per_step": r.us_per_step, "rss_after_warmup": r.rss_after_warmup,
            "rss_end": r.rss_end, "rss_max": r.rss_max, "rss_growth": r.rss_growth, "max_err": r.max_err,
            "err_last_chunk": r.err_last_chunk, "max_abs_h": r.max_abs_h, "max_abs_c": r.max_abs_c,
            "finite": r.finite, "ok": ok}


# ---------------------------------------------------------------------------------- stress
def stress(threads: int, seconds: float) -> dict:
    r = concurrency_stress(threads, seconds)
    c = r.counts
    print(f"\n## concurrency stress: {threads} threads for {seconds:.0f} s on one Model and one pool")
    for k in sorted(c):
        print(f"  {k:18s} {c[k]}")
    print(f"  failures: {len(r.failures)}")
    for f in r.failures[:20]:
        print(f"    {f}")
    return {"threads": threads, "seconds": seconds, "counts": dict(c), "failures": r.failures}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["all", "fuzz", "memory", "frames", "longrun", "stress"])
    ap.add_argument("--files", type=int, default=2000, help="mutations per seed file (7 seeds)")
    ap.add_argument("--examples", type=int, default=2000, help="hypothesis examples per frame test and model")
    ap.add_argument("--steps", type=int, default=1_000_000)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mem-limit-mb", type=int, default=1024,
                    help="memory mode: address space allowed above the sandbox child's start-up size")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--workdir", type=Path, help="keep inputs that broke the contract here (default: a temp dir)")
    a = ap.parse_args(argv)
    figures = {"env": header()}
    workdir = a.workdir or Path(tempfile.mkdtemp(prefix="streamlstm-reliability-"))
    workdir.mkdir(parents=True, exist_ok=True)
    ok = True
    if a.what in ("all", "fuzz"):
        f = figures["fuzz"] = fuzz(a.files, a.seed, workdir)
        ok &= not f["problems"] and not f["marker_written"]
    if a.what in ("all", "memory"):
        f = figures["memory"] = memory(workdir, a.mem_limit_mb)
        ok &= not f["problems"]
    if a.what in ("all", "frames"):
        f = figures["frames"] = frames(a.examples, workdir)
        ok &= f["passed"]
    if a.what in ("all", "longrun"):
        f = figures["longrun"] = longrun(a.steps)
        ok &= f["ok"]
    if a.what in ("all", "stress"):
        f = figures["stress"] = stress(a.threads, a.seconds)
        ok &= not f["failures"]
    if a.json:
        a.json.write_text(json.dumps(figures, indent=2, default=str))
    if ok and not a.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
        print("\nOK")
    else:
        print(f"\n{'OK' if ok else 'FAILED'} (inputs kept under {workdir})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
