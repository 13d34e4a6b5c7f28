"""The side-by-side latency comparison behind ``streamlstm bench`` (and bench/compare.py).

For each model, one process runs every framework (see ``peers``) on the same random frames:

1. correctness first: each framework streams ``check_steps`` frames from a fresh state and its
   outputs are compared with streamlstm's; one off by more than ``tolerance`` is reported as
   failed and not timed;
2. per-step latency: interleaved rounds, each round steps every framework ``block`` frames (in
   a rotating order) so that drift of a noisy machine hits all alike; each block starts with
   ``block_warmup`` calls that are not recorded (the previous framework's block leaves every
   framework's weights and code cold: the first call of a block took 2-9x its p50 here, and 12
   cold blocks in 3000 steps would otherwise decide p99); every other call is timed with
   ``perf_counter_ns`` (garbage collector off while timing); p50/p90/p99/p99.9 per framework
   and the speedup over the best onnxruntime variant at ``threads`` intra-op threads;
3. chunk mode: ``Session.run`` on T frames (one thread, and ``threads=2`` where the model has
   products to share) against each framework's sequence call on the same T; the speedup
   column is over the best onnxruntime variant of the run, whatever its thread count;
   chunk and pool calls run in rotating blocks per engine, each after ``SETTLE_S`` of
   unrecorded calls (``_in_blocks``), so that no engine meets another's spinning threads;
4. with ``pool`` > 0 (``--pool N``): ``SessionPool.step`` advancing N streams by one frame per
   call against onnxruntime running the same N frames as one batch (``onnx_batch``, the caller
   gathering and scattering every stream's state), in blocks as chunk mode; float32 models
   also run their pool with ``weights="bf16dot"`` (the bf16 dot product) and
   ``weights="int8dot"`` (the int8 dot product), their deviations from the float32 outputs
   reported and bounded by ``DOT_TOLERANCES``;
5. cold start (zoo ``kws`` and user files): a new process with a warm compile cache does
   import + load + first step.

``machine_info`` records the host CPU features that chose the kernels' code paths
(``probes.code_paths``). Before the models, ``machine_stalls`` measures how often the machine takes the CPU away from a
busy thread that has nothing else to do (a hypervisor, other tenants): the tail that no
framework can avoid, to read p99 against.

The result is a JSON-ready dict; ``report`` turns it into a table, a JSON file and a plot.
"""

from __future__ import annotations

import gc
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import cache
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Callable

import numpy as np

from .. import Model, __version__, load
from .peers import FRAMEWORKS, OnnxIO, OrtRunPeer, Peer, Skipped, StreamlstmPeer, TorchPeer, TractPeer, \
    analyse_onnx, installed, make_peers, ort_session
from .probes import code_paths, shares_products
from .zoo import NAMES as ZOO_NAMES
from .zoo import zoo_network

SILERO = "silero-vad"                          # the whole Silero VAD of the installed silero-vad package
SILERO_FILE = "silero_vad_16k_op15.onnx"
NAMES = ZOO_NAMES + (SILERO,)                  # every model name ``streamlstm bench --models`` knows

QUANTILES = [float(q) for q in range(1, 100)] + [99.5, 99.9]
TOLERANCE = 1e-4
BF16_DOT_TOLERANCE = 0.05  # bf16 inputs and weights in every product: |error| grows with the model
INT8_DOT_TOLERANCE = 0.1   # int8 inputs and weights in every product
DOT_TOLERANCES = {"bf16dot": BF16_DOT_TOLERANCE, "int8dot": INT8_DOT_TOLERANCE}  # the pool's opt-in formats
EXPECTED_PEERS = 7   # for the progress bar's first estimate; corrected once a model's peers are known
COLD_START_CODE = (
    "import sys, time\n"
    "t0 = time.perf_counter()\n"
    "import numpy as np, streamlstm as sl\n"
    "m = sl.load(sys.argv[1])\n"
    "x = np.zeros(m.input_size, m.dtype)\n"
    "y = m.session().step(x) if m.streamable else m.run(x[None])\n"
    "print(time.perf_counter() - t0)\n"
)
NUMBA_FLOOR_MODULE = "from numba import njit\n\n@njit(cache=True)\ndef first(x):\n    return x[0] + 1.0\n"
NUMBA_FLOOR_CODE = (
    "import sys, time\n"
    "sys.path.insert(0, '.')\n"
    "t0 = time.perf_counter()\n"
    "import numpy as np, _trivial_njit\n"
    "_trivial_njit.first(np.zeros(1))\n"
    "print(time.perf_counter() - t0)\n"
)


@dataclass
class Target:
    """One model to compare: the streamlstm Model and the ONNX bytes onnxruntime/tract run."""

    name: str
    model: Model
    onnx: bytes | None                 # what onnxruntime and tract step frame by frame
    exported: bytes | None             # Model.to_onnx(): known layout, used for chunk mode
    origin: str                        # "zoo", "onnx", "torch", "keras", "native"
    onnx_note: str = ""
    path: str | None = None            # file a new process loads for the cold-start measure
    cold_start: bool = False
    io: OnnxIO | None = None           # how to step ``onnx`` when analyse_onnx cannot tell (silero)


def _export(model: Model) -> tuple[bytes | None, str]:
    try:
        return model.to_onnx().SerializeToString(), "the model exported by Model.to_onnx()"
    except Exception as e:  # noqa: BLE001 - e.g. a projection ONNX cannot express
        return None, f"no ONNX export: {type(e).__name__}: {e}"


def zoo_target(name: str, dtype: str = "float32", weights: str = "float") -> Target:
    model = Model(zoo_network(name), dtype=dtype, weights=weights)
    onnx, note = _export(model)
    return Target(name, model, onnx, onnx, "zoo", note, cold_start=name == "kws" and weights == "float")


def silero_target(dtype: str = "float32") -> Target | str:
    """The Silero VAD from the installed package, whole, or why it cannot run. onnxruntime runs the
    package's own file: ``input`` one 576-sample chunk, ``state`` fed back, ``sr`` 16000 every call."""
    import importlib.util

    spec = importlib.util.find_spec("silero_vad")
    if spec is None or spec.origin is None:
        return "the silero-vad package is not installed (pip install --no-deps silero-vad)"
    path = Path(spec.origin).parent / "data" / SILERO_FILE
    if not path.is_file():
        return f"{path} is missing from the silero-vad package"
    try:
        model = load(path, dtype=dtype, constants={"sr": 16000}, dims={"sequence": 576})
    except Exception as e:  # noqa: BLE001 - an importer that cannot take the file yet is a reason
        return f"streamlstm cannot import {SILERO_FILE} whole: {type(e).__name__}: {e}"
    io = OnnxIO("input", (1, 576), np.float32, "output",
                [("state", "stateN", (2, 1, 128), np.float32)], time_axis=None,
                outputs=["output", "stateN"], constants={"sr": np.array(16000, np.int64)})
    return Target(SILERO, model, path.read_bytes(), None, "onnx", f"the silero-vad package's {SILERO_FILE}",
                  str(path), io=io)


def file_target(path: str | os.PathLike, dtype: str = "float32", **options) -> Target:
    """A user's file (ONNX, PyTorch, Keras, .npz). onnxruntime runs the file itself when it is an
    ONNX model that can be stepped frame by frame (state inputs/outputs), else Model.to_onnx()."""
    p = Path(path)
    model = load(p, dtype=dtype, **options)
    exported, note = _export(model)
    origin = {".onnx": "onnx", ".npz": "native", ".keras": "keras", ".h5": "keras", ".hdf5": "keras"}.get(
        p.suffix.lower(), "torch")
    onnx = exported
    if origin == "onnx":
        own = p.read_bytes()
        sub_graph = options.get("inputs") or options.get("outputs")
        why = "a part of the graph was imported (inputs=/outputs=)" if sub_graph else _steppable(model, own)
        if why is None:
            onnx, note = own, "the user's ONNX file"
        else:
            note = f"the user's ONNX file cannot be stepped frame by frame ({why}); {note}"
    return Target(p.name, model, onnx, exported, origin, note, str(p), cold_start=not options)


def _steppable(model: Model, onnx_bytes: bytes) -> str | None:
    """None when onnxruntime can step this ONNX model frame by frame and match streamlstm."""
    if not installed("onnxruntime"):
        return "onnxruntime is not installed"
    try:
        sess = ort_session(onnx_bytes, 1)
        io = analyse_onnx(sess, model.input_size, model.output_size, onnx_bytes)
        if not io.states:
            return "it has no state inputs/outputs"
        X = frames_for(model, np.random.default_rng(1), 20)
        err = _max_err(OrtRunPeer(sess, io, 1).stream(X), StreamlstmPeer(model).stream(X))
        return None if err <= TOLERANCE else f"its outputs differ from streamlstm's by {err:.2g}"
    except Exception as e:  # noqa: BLE001
        return f"{type(e).__name__}: {e}"


def frames_for(model: Model, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` random frames ``model`` accepts: token ids when it starts with an Embedding."""
    if model.vocabulary:
        return rng.integers(0, model.vocabulary, size=(n, 1)).astype(model.dtype)
    return rng.standard_normal((n, model.input_size)).astype(model.dtype)


def _max_err(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64).reshape(b.shape)
    d = np.abs(a - b)
    return float(d.max()) if np.all(np.isfinite(d)) else float("inf")


# ---------------------------------------------------------------------------- statistics
def stats_us(ns: np.ndarray) -> dict:
    us = np.asarray(ns, dtype=np.float64) / 1e3
    p = np.percentile(us, [50, 90, 99, 99.9])
    return {"n": int(us.size), "p50_us": float(p[0]), "p90_us": float(p[1]), "p99_us": float(p[2]),
            "p999_us": float(p[3]), "mean_us": float(us.mean()), "min_us": float(us.min()),
            "max_us": float(us.max()), "quantiles_us": [float(v) for v in np.percentile(us, QUANTILES)]}


def machine_stalls(seconds: float = 0.5, threshold_ns: int = 5000) -> dict:
    """Gaps of ``threshold_ns`` or more in a busy loop that only reads the clock: how often the
    machine stalls a running thread and for how long. A call of d µs is hit with probability
    about d x ``per_ms`` / 1000, so where that exceeds 1% p99 includes a stall."""
    pc = time.perf_counter_ns
    gaps = []
    start = last = pc()
    end = start + int(seconds * 1e9)
    while last < end:
        now = pc()
        if now - last >= threshold_ns:
            gaps.append(now - last)
        last = now
    us = np.asarray(gaps, dtype=np.float64) / 1e3
    elapsed_ms = (last - start) / 1e6
    return {"seconds": seconds, "threshold_us": threshold_ns / 1e3, "per_ms": float(us.size / elapsed_ms),
            "median_us": float(np.median(us)) if us.size else 0.0,
            "p90_us": float(np.percentile(us, 90)) if us.size else 0.0,
            "lost_share": float(us.sum() / (elapsed_ms * 1e3))}


def _timer_floor_ns() -> float:
    f, x, pc = (lambda x: x), np.zeros(1), time.perf_counter_ns
    ts = []
    for _ in range(2000):
        t0 = pc()
        f(x)
        ts.append(pc() - t0)
    return float(np.median(ts))


class Progress:
    """A one-line progress bar on stderr (only when enabled, e.g. stderr is a terminal)."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.done, self.enabled, self.last = max(total, 1), 0, enabled, 0.0

    def advance(self, n: int, label: str) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and (now - self.last > 0.2 or self.done >= self.total):
            self.last = now
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(30 * frac) + "." * (30 - int(30 * frac))
            sys.stderr.write(f"\r[{bar}] {100 * frac:3.0f}% {label:<40.40}")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write(f"\r[{'#' * 30}] 100% {'done':<40}\n")
            sys.stderr.flush()


# ---------------------------------------------------------------------------- the run
@dataclass
class Settings:
    steps: int = 3000
    block: int = 250
    block_warmup: int = 5
    threads: int = 1
    check_steps: int = 200
    chunk: int = 100
    chunk_reps: int = 30
    tolerance: float = TOLERANCE
    frameworks: tuple = FRAMEWORKS
    cold_start: bool = True
    pool: int = 0  # streams per pool step (0: no pool table)
    pool_reps: int = 60
    seed: int = 0
    extra: dict = field(default_factory=dict)


def _check(peers: list[Peer], model: Model, X: np.ndarray, tol: float) -> tuple[list[Peer], list[dict]]:
    ref = peers[0].stream(X)
    ok, rows = [peers[0]], [{"name": peers[0].name, "status": "ok", "max_abs_error": 0.0}]
    for p in peers[1:]:
        try:
            err = _max_err(p.stream(X), ref)
        except Exception as e:  # noqa: BLE001 - a framework that breaks is a result
            rows.append({"name": p.name, "status": "failed", "max_abs_error": None,
                         "note": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"})
            continue
        if err <= tol:
            ok.append(p)
            rows.append({"name": p.name, "status": "ok", "max_abs_error": err})
        else:
            rows.append({"name": p.name, "status": "failed", "max_abs_error": err,
                         "note": f"outputs differ from streamlstm's by {err:.3g} > {tol:g}; not timed"})
    return ok, rows


def _time_steps(peers: list[Peer], frames: list, s: Settings, progress: Progress, label: str) -> list[np.ndarray]:
    rounds = max(1, -(-s.steps // s.block))
    times = [np.empty(rounds * s.block, dtype=np.int64) for _ in peers]
    fns = []
    for p in peers:
        p.reset()
        f = p.step_fn()
        for x in frames[:50]:  # warm-up, not recorded
            f(x)
        fns.append(f)
    pc, nf = time.perf_counter_ns, len(frames)
    gc.collect()
    gc.disable()
    try:
        for r in range(rounds):
            for j in range(len(peers)):
                k = (j + r) % len(peers)
                f, out, base = fns[k], times[k], r * s.block
                start = (base + 37 * k) % nf
                xs = [frames[(start + i) % nf] for i in range(s.block_warmup + s.block)]
                for x in xs[:s.block_warmup]:
                    f(x)
                xs = xs[s.block_warmup:]
                buf = []
                app = buf.append
                for x in xs:
                    t0 = pc()
                    f(x)
                    app(pc() - t0)
                out[base:base + s.block] = buf
                progress.advance(s.block, f"{label}: {peers[k].name}")
    finally:
        gc.enable()
    return times


def _chunk_peers(t: Target, s: Settings) -> tuple[list[Peer], list[Skipped]]:
    peers: list[Peer] = [StreamlstmPeer(t.model)]
    if t.model.streamable and shares_products(t.model) and (os.cpu_count() or 1) >= 2:
        peers.append(StreamlstmPeer(t.model, threads=2))
    skipped: list[Skipped] = []
    fw = set(s.frameworks)
    if t.exported is None:
        skipped.append(Skipped("onnxruntime", "onnxruntime", t.onnx_note))
    elif "onnxruntime" in fw and installed("onnxruntime"):
        for th in (s.threads, None):
            sess = ort_session(t.exported, th)
            peers.append(OrtRunPeer(sess, analyse_onnx(sess, t.model.input_size, t.model.output_size, t.exported), th))
    if "pytorch" in fw and installed("torch"):
        try:
            peers.append(TorchPeer(t.model, s.threads))
        except Exception as e:  # noqa: BLE001
            skipped.append(Skipped("pytorch", "pytorch", f"{type(e).__name__}: {e}"))
    if "tract" in fw and installed("tract") and installed("onnxruntime") and t.exported is not None:
        try:
            io = analyse_onnx(ort_session(t.exported, 1), t.model.input_size, t.model.output_size, t.exported)
            peers.append(TractPeer(t.exported, io, T=s.chunk))
        except Exception as e:  # noqa: BLE001
            skipped.append(Skipped("tract", "tract", f"{type(e).__name__}: {str(e).splitlines()[0]}"))
    return peers, skipped


def _run_chunks(t: Target, s: Settings, rng: np.random.Generator, progress: Progress) -> dict:
    T, model = s.chunk, t.model
    X = frames_for(model, rng, T)
    ref = StreamlstmPeer(model).stream(X) if model.streamable else model.run(X)
    peers, skipped = _chunk_peers(t, s)
    fresh = not model.streamable  # whole sequences from a fresh state instead of continuing a stream
    rows, timed = [], []
    for p in peers:
        try:
            p.reset()
            err = _max_err(p.chunk(X), ref)
        except Exception as e:  # noqa: BLE001
            rows.append({"name": p.name, "framework": p.framework, "status": "failed",
                         "note": f"{type(e).__name__}: {e}"})
            continue
        if err > s.tolerance:
            rows.append({"name": p.name, "framework": p.framework, "status": "failed", "max_abs_error": err,
                         "note": f"outputs differ from streamlstm's by {err:.3g}"})
            continue
        rows.append({"name": p.name, "framework": p.framework, "threads": p.threads, "status": "ok",
                     "max_abs_error": err, "note": p.note})
        timed.append((p, rows[-1]))
    def call(p):
        if fresh:
            p.reset()
        t0 = time.perf_counter_ns()
        p.chunk(X)
        return time.perf_counter_ns() - t0

    times = _in_blocks([lambda p=p: call(p) for p, _ in timed], s.chunk_reps,
                         lambda: progress.advance(1, f"{t.name}: chunk T={T}"))
    for (p, row), ts in zip(timed, times):
        st = stats_us(np.array(ts))
        row.update({k: st[k] for k in ("n", "p50_us", "p90_us", "p99_us", "mean_us", "min_us")})
        row["per_frame_p50_us"] = st["p50_us"] / T
    _speedups(rows, s.threads)
    _best_speedups(rows)
    for p, _ in timed:
        if isinstance(p, StreamlstmPeer):
            p.session.close()
    return {"T": T, "frameworks": rows, "skipped": [vars(k) for k in skipped],
            "mode": "whole sequence from a fresh state" if fresh else "continuing the stream"}


def _speedups(rows: list[dict], threads: int) -> str | None:
    """Add speedup_vs_ort = (best onnxruntime p50 at ``threads`` threads) / p50; return its name."""
    ort = [r for r in rows if r.get("framework") == "onnxruntime" and r.get("threads") == threads
           and r.get("status") == "ok" and "p50_us" in r]
    if not ort:
        return None
    best = min(ort, key=lambda r: r["p50_us"])
    for r in rows:
        if r.get("status") == "ok" and "p50_us" in r:
            r["speedup_vs_ort"] = best["p50_us"] / r["p50_us"]
    return best["name"]


def _pool_callers(t: Target, s: Settings, X: np.ndarray) -> tuple[list[tuple[str, str, int | None, float, Callable]],
                                                                    list[dict]]:
    """(name, framework, threads, tolerance, call) of every pool variant, and rows for those
    that failed."""
    model, n = t.model, X.shape[0]
    callers, failed = [], []
    pools = [(model, "", s.tolerance)]
    if model.dtype == np.float32 and model.plan.weight_format == "float":
        pools += [(Model(model.network, weights=fmt), f", weights={fmt}", max(s.tolerance, tol))
                  for fmt, tol in DOT_TOLERANCES.items()]
    for m, label, tol in pools:
        for th in sorted({1, 2, s.threads}):  # 2: onnxruntime's default threads take both cores too
            pool = m.pool(n, threads=th)
            ids = np.array([pool.open() for _ in range(n)], dtype=np.int64)
            out = np.empty((n, m.output_size), m.dtype)
            callers.append((f"streamlstm pool.step{label} ({th} thread{'s' if th > 1 else ''})", "streamlstm", th,
                            tol, lambda pool=pool, ids=ids, out=out: pool.step(ids, X, out=out)))
    if "onnxruntime" not in s.frameworks or not installed("onnxruntime"):
        return callers, failed
    try:
        from .onnx_batch import batch_onnx, state_specs

        proto = batch_onnx(model.network, model.dtype).SerializeToString()
        specs = state_specs(model.network)
    except Exception as e:  # noqa: BLE001 - a network the batched graph does not cover is a result
        failed.append({"name": "onnxruntime batch", "framework": "onnxruntime", "status": "skipped",
                       "note": f"{type(e).__name__}: {e}"})
        return callers, failed
    for th in (s.threads, None):
        sess = ort_session(proto, th)
        held = {i: np.zeros((1, n, w), model.dtype) for i, _, w in specs}
        names = ["y"] + [o for _, o, _ in specs]

        def batch(sess=sess, held=held, names=names):
            # the caller holds every stream's state: gather, run the batch, scatter back
            feed = {"x": X, **{i: held[i] for i, _, _ in specs}}
            res = sess.run(names, feed)
            for (i, _, _), r in zip(specs, res[1:]):
                held[i][...] = r
            return res[0]
        label = "default threads" if th is None else f"{th} thread{'s' if th > 1 else ''}"
        callers.append((f"onnxruntime batch ({label})", "onnxruntime", th, s.tolerance, batch))
    return callers, failed


def _run_pool(t: Target, s: Settings, rng: np.random.Generator, progress: Progress) -> dict:
    """One frame for each of ``s.pool`` streams per call: ``SessionPool.step`` against onnxruntime
    running the same frames as one batch (``onnx_batch``), in blocks (``_in_blocks``)."""
    model, n = t.model, s.pool
    X = frames_for(model, rng, n)
    callers, rows = _pool_callers(t, s, X)
    first = None
    timed = []
    for name, fw, th, tol, call in callers:
        y = np.array(call(), copy=True)
        if first is None:
            first = y
        err = _max_err(y, first)
        if err > tol:
            rows.append({"name": name, "framework": fw, "threads": th, "status": "failed", "max_abs_error": err,
                         "note": f"outputs differ from streamlstm's by {err:.3g}"})
            continue
        rows.append({"name": name, "framework": fw, "threads": th, "status": "ok", "max_abs_error": err})
        timed.append((call, rows[-1]))
    def timed_call(call):
        t0 = time.perf_counter_ns()
        call()
        return time.perf_counter_ns() - t0

    times = _in_blocks([lambda c=c: timed_call(c) for c, _ in timed], s.pool_reps, lambda: None)
    progress.advance(1, f"{t.name}: pool of {n}")
    for (_, row), ts in zip(timed, times):
        st = stats_us(np.array(ts))
        row.update({k: st[k] for k in ("n", "p50_us", "p90_us", "p99_us", "mean_us", "min_us")})
        row["frames_per_s"] = n / (st["p50_us"] * 1e-6)
    _best_speedups(rows)
    return {"streams": n, "frameworks": rows}


# Chunk and pool calls run in blocks, each after unrecorded calls that last at least this long:
# a call that follows another engine's meets that engine's threads still spinning on the second
# core (onnxruntime's pool spins after a run), which slowed a two-thread pool step after an
# onnxruntime batch for about 60 ms of calls (docs/PERFORMANCE.md).
SETTLE_S = 0.1
CALLS_PER_BLOCK = 5


def block_rounds(reps: int) -> int:
    """Rounds of ``_in_blocks`` that record ``reps`` calls of each engine."""
    return max(1, -(-reps // CALLS_PER_BLOCK))


def _in_blocks(calls: list, reps: int, after_round) -> list[list[int]]:
    """Rounds in which each call runs one block, the order rotating between rounds, with the
    collector off: unrecorded calls for at least ``SETTLE_S`` (at least two), then
    ``CALLS_PER_BLOCK`` recorded ones. At most ``block_rounds(reps)`` rounds, and no more after
    30 s once 2 are done. Returns each call's recorded times."""
    times: list[list[int]] = [[] for _ in calls]
    gc.collect()
    gc.disable()
    try:
        budget = time.monotonic() + 30.0
        for r in range(block_rounds(reps)):
            for j in range(len(calls)):
                k = (j + r) % len(calls)
                settled = time.monotonic() + SETTLE_S
                calls[k]()
                calls[k]()
                while time.monotonic() < settled:
                    calls[k]()
                times[k].extend(calls[k]() for _ in range(CALLS_PER_BLOCK))
            after_round()
            if r >= 1 and time.monotonic() > budget:
                break
    finally:
        gc.enable()
    return times


def _best_speedups(rows: list[dict]) -> None:
    """Add speedup_vs_best_ort = (best onnxruntime p50 at any thread count in the run) / p50."""
    ort = [r["p50_us"] for r in rows if r.get("framework") == "onnxruntime" and r.get("status") == "ok"
           and "p50_us" in r]
    if ort:
        for r in rows:
            if r.get("status") == "ok" and "p50_us" in r:
                r["speedup_vs_best_ort"] = min(ort) / r["p50_us"]


def _new_processes(cmd: list[str], runs: int, cwd: str | None = None) -> tuple[list[float], list[float]] | str:
    """(printed seconds, whole-process seconds) of ``runs`` runs of ``cmd`` after one that fills
    the compile cache, or the error of a run that failed."""
    inner, wall = [], []
    for i in range(runs + 1):
        t0 = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=cwd)
        t1 = time.perf_counter()
        if out.returncode != 0:
            return out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"
        if i:
            inner.append(float(out.stdout.strip().splitlines()[-1]))
            wall.append(t1 - t0)
    return inner, wall


@cache  # a property of the machine, not of a model: measured once per process
def numba_floor(runs: int = 3) -> float | None:
    """Median seconds for a new process to import numpy and Numba and call one trivial cached
    ``@njit`` function: what any Numba library pays before its own work (None if it failed)."""
    with tempfile.TemporaryDirectory() as d:
        Path(d, "_trivial_njit.py").write_text(NUMBA_FLOOR_MODULE)
        res = _new_processes([sys.executable, "-c", NUMBA_FLOOR_CODE], runs, cwd=d)
    return None if isinstance(res, str) else float(np.median(res[0]))


def cold_start(path: str, runs: int = 3) -> dict:
    """Seconds for a new process (warm compile cache) to import streamlstm, load ``path`` and step
    once, next to ``numba_floor``."""
    res = _new_processes([sys.executable, "-c", COLD_START_CODE, str(path)], runs)
    if isinstance(res, str):
        return {"error": res}
    inner, wall = res
    return {"seconds": float(np.median(inner)), "process_seconds": float(np.median(wall)), "runs": runs,
            "numba_floor_seconds": numba_floor(runs),
            "what": "new process, warm compile cache: import streamlstm + load + first step "
                    "(process_seconds adds interpreter start-up; numba_floor_seconds: import numpy + "
                    "numba and call a trivial cached @njit function)"}


def _describe(model: Model) -> dict:
    net = model.network
    return {"input_size": model.input_size, "output_size": model.output_size, "dtype": model.dtype.name,
            "layers": [f"{l.kind} {a}->{b}" for l, (a, b) in zip(net.layers, net.layer_sizes())],
            "params": int(sum(a.size for l in net.layers for a in l.arrays().values())),
            "state_size": model.state_size, "weight_bytes": model.plan.weight_bytes}


def machine_info() -> dict:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    except OSError:
        pass
    versions = {}
    for pkg in ("numpy", "numba", "onnxruntime", "torch", "tract"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "versions": versions, "code_paths": code_paths()}


def bench_target(t: Target, s: Settings, progress: Progress, rng: np.random.Generator) -> dict:
    """Everything measured for one model (see the module docstring)."""
    model = t.model
    res = {"name": t.name, "origin": t.origin, "onnx": t.onnx_note if t.onnx is not None else None,
           **_describe(model)}
    peers, skipped = make_peers(model, t.onnx, threads=s.threads, frameworks=s.frameworks,
                                onnx_note=t.onnx_note, io=t.io)
    rows = []
    progress.total += (len(peers) - EXPECTED_PEERS) * max(1, -(-s.steps // s.block)) * s.block
    if peers:
        Xc = frames_for(model, rng, s.check_steps)
        peers, checks = _check(peers, model, Xc, s.tolerance)
        by_name = {p.name: p for p in peers}
        frames = list(frames_for(model, rng, min(max(s.steps, 1000), 4096)))
        times = _time_steps(peers, frames, s, progress, t.name)
        stats = {p.name: stats_us(ts) for p, ts in zip(peers, times)}
        for c in checks:
            p = by_name.get(c["name"])
            row = {"name": c["name"], "framework": p.framework if p else c["name"].split()[0],
                   "threads": p.threads if p else None, "status": c["status"],
                   "max_abs_error": c["max_abs_error"], "note": c.get("note", p.note if p else "")}
            if p is not None:
                row.update(stats[p.name])
            rows.append(row)
    rows += [{"name": k.name, "framework": k.framework, "status": "skipped", "note": k.note} for k in skipped]
    res["ort_reference"] = _speedups(rows, s.threads)
    res["frameworks"] = rows
    if s.chunk > 0:
        res["chunk"] = _run_chunks(t, s, rng, progress)
    if s.pool > 0 and model.streamable:
        res["pool"] = _run_pool(t, s, rng, progress)
    if s.cold_start and t.cold_start:
        if t.path is not None:
            res["cold_start"] = cold_start(t.path)
        else:
            with tempfile.TemporaryDirectory() as d:
                path = os.path.join(d, f"{t.name}.npz")
                model.save(path)
                res["cold_start"] = cold_start(path)
        progress.advance(1, f"{t.name}: cold start")
    return res


def run_benchmark(targets: list[Target], settings: Settings | None = None, *,
                  progress: bool = False, argv: list[str] | None = None,
                  on_model: Callable[[dict], None] | None = None) -> dict:
    """Compare every target on every framework; returns the JSON-ready result (see report)."""
    s = settings or Settings()
    rng = np.random.default_rng(s.seed)
    per_model = max(1, -(-s.steps // s.block)) * s.block * EXPECTED_PEERS + (block_rounds(s.chunk_reps) if s.chunk else 0) + 1 + (1 if s.pool else 0)
    bar = Progress(per_model * len(targets), progress)
    result = {
        "streamlstm_version": __version__,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "streamlstm " + " ".join(argv) if argv is not None else None,
        "machine": machine_info(),
        "settings": {"steps": s.steps, "block": s.block, "block_warmup": s.block_warmup, "threads": s.threads,
                     "check_steps": s.check_steps,
                     "chunk_T": s.chunk, "chunk_reps": s.chunk_reps, "pool_streams": s.pool, "tolerance": s.tolerance,
                     "calls_per_block": CALLS_PER_BLOCK, "block_settle_s": SETTLE_S,
                     "frameworks": list(s.frameworks), "seed": s.seed,
                     "timer_floor_ns": _timer_floor_ns(), **s.extra},
        "machine_stalls": machine_stalls(),
        "quantiles": QUANTILES,
        "models": [],
    }
    try:
        for t in targets:
            res = bench_target(t, s, bar, rng)
            result["models"].append(res)
            if on_model is not None:
                on_model(res)
    finally:
        bar.close()
    result["checks_passed"] = all(r["status"] != "failed" for m in result["models"]
                                  for r in m["frameworks"] + m.get("pool", {}).get("frameworks", []))
    return result


def zoo_targets(names: list[str] | None = None, dtype: str = "float32", weights: str = "float") -> list[Target]:
    """The zoo models ``names`` (default: all, and the Silero VAD when its package is installed);
    a model that cannot run is left out with its reason on stderr."""
    names = list(names or NAMES)
    bad = [n for n in names if n not in NAMES]
    if bad:
        raise ValueError(f"unknown zoo model(s) {bad}; known: {', '.join(NAMES)}")
    targets = []
    for n in names:
        if n != SILERO:
            targets.append(zoo_target(n, dtype, weights))
            continue
        t = silero_target(dtype) if weights == "float" else f"weights={weights!r} is not offered for it"
        if isinstance(t, str):
            print(f"streamlstm bench: skipping {SILERO}: {t}", file=sys.stderr)
        else:
            targets.append(t)
    return targets
