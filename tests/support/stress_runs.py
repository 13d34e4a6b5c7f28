"""The long run and the concurrency stress, parameterised by size: tests/test_stress.py runs them
short, scripts/reliability.py runs them at full length.

``long_run``: one session steps ``steps`` frames of a zoo model (``kws`` by default) one at a
time; resident memory (``/proc/self/statm``) is sampled after warm-up and at the end, every
chunk's outputs are compared with the float64 reference (``reference.py``) run over the same
frames from the same start, and the state's largest values are tracked.

``concurrency_stress``: threads share one Model and one SessionPool for a bounded time, each
opening, stepping, running, resetting, restoring and dropping its own sessions and pool slots at
random, probing closed pool ids, and running the stateless ``Model.run``. Every stream logs what
it was fed and what came out; when it ends (and for those still open at the end) it is replayed
serially on a fresh Session and must match bit for bit: any cross-talk between streams breaks it.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

import streamlstm as sl
from support.reference import reference_run
from streamlstm.tools.zoo import zoo_network

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """Resident set size of this process, from /proc/self/statm."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE


# ---------------------------------------------------------------------------------- long run
@dataclass
class LongRun:
    model: str
    steps: int = 0
    seconds_stepping: float = 0.0
    rss_after_warmup: int = 0
    rss_end: int = 0
    rss_max: int = 0
    max_err: float = 0.0            # over every step compared with the reference
    err_last_chunk: float = 0.0
    max_abs_h: float = 0.0
    max_abs_c: float = 0.0
    finite: bool = True
    rss_samples: list = field(default_factory=list)  # (step, bytes)

    @property
    def rss_growth(self) -> int:
        return self.rss_end - self.rss_after_warmup

    @property
    def us_per_step(self) -> float:
        return 1e6 * self.seconds_stepping / max(self.steps, 1)


def _state_extremes(network: sl.Network, flat: np.ndarray) -> tuple[float, float]:
    """(max |h|, max |c|) of a state laid out per layer and direction as h (P values) then c (H)."""
    h_max = c_max = 0.0
    off = 0
    for layer in network.layers:
        if not isinstance(layer, (sl.LSTM, sl.GRU, sl.RNN)):
            continue
        for _ in range(layer.num_directions):
            P = layer.unit_output_size
            h_max = max(h_max, float(np.max(np.abs(flat[off:off + P]))))
            off += P
            if isinstance(layer, sl.LSTM):
                c_max = max(c_max, float(np.max(np.abs(flat[off:off + layer.hidden_size]))))
                off += layer.hidden_size
    assert off == flat.size, "unexpected state layout"
    return h_max, c_max


def long_run(steps: int, *, name: str = "kws", chunk: int = 10_000, warmup: int = 20_000, seed: int = 0,
             reference: bool = True, progress=None) -> LongRun:
    """Step ``steps`` frames, then (``reference``) replay the same frames through the float64
    reference and compare every output. The two passes are apart so the reference's temporary
    arrays do not blur the engine's memory figures; all outputs are kept in one array allocated
    (and touched) before the run."""
    net = zoo_network(name)
    model = sl.Model(net)
    s = model.session()
    I, O = model.input_size, model.output_size
    X = np.ones((chunk, I), np.float32)    # rewritten in place every chunk
    Y = np.full((steps, O), np.nan, np.float32)
    out = LongRun(name)
    rng = np.random.default_rng(seed)
    done = 0
    while done < steps:
        n = min(chunk, steps - done)
        rng.standard_normal(out=X[:n], dtype=np.float32)
        Yc = Y[done:done + n]
        step = s.step
        t0 = time.perf_counter()
        for t in range(n):
            step(X[t], out=Yc[t])
        out.seconds_stepping += time.perf_counter() - t0
        done += n
        rss = rss_bytes()
        if not out.rss_after_warmup and done >= warmup:
            out.rss_after_warmup = rss
        if out.rss_after_warmup:
            out.rss_max = max(out.rss_max, rss)
        out.rss_samples.append((done, rss))
        st = s.get_state()
        out.finite &= bool(np.all(np.isfinite(st)) and np.all(np.isfinite(Yc)))
        h, c = _state_extremes(net, st)
        out.max_abs_h, out.max_abs_c = max(out.max_abs_h, h), max(out.max_abs_c, c)
        if progress:
            progress(out, done, "engine")
    out.steps = done
    out.rss_end = out.rss_samples[-1][1]
    if not out.rss_after_warmup:
        out.rss_after_warmup = out.rss_samples[0][1]
    if reference:
        rng = np.random.default_rng(seed)
        ref_state, done = None, 0
        while done < steps:
            n = min(chunk, steps - done)
            rng.standard_normal(out=X[:n], dtype=np.float32)
            Yr, ref_state = reference_run(net, X[:n].astype(np.float64), ref_state)
            out.err_last_chunk = float(np.max(np.abs(Y[done:done + n] - Yr)))
            out.max_err = max(out.max_err, out.err_last_chunk)
            done += n
            if progress:
                progress(out, done, "reference")
    return out


# ---------------------------------------------------------------------------------- concurrency
@dataclass
class Stress:
    threads: int
    seconds: float
    counts: Counter = field(default_factory=Counter)
    failures: list = field(default_factory=list)


class _Stream:
    """What one stream was fed and what came out, in order."""

    __slots__ = ("events",)

    def __init__(self):
        self.events: list[tuple] = []


def replay(model: sl.Model, stream: _Stream) -> str | None:
    """Feed the stream's log to a fresh Session; the first difference, or None."""
    s = model.session()
    for k, ev in enumerate(stream.events):
        if ev[0] == "step":
            y = s.step(ev[1])
            if not np.array_equal(y, ev[2]):
                return f"event {k} (step): max diff {np.max(np.abs(y - ev[2]))}"
        elif ev[0] == "run":
            Y = s.run(ev[1])
            if not np.array_equal(Y, ev[2]):
                return f"event {k} (run of {len(ev[1])} frames): max diff {np.max(np.abs(Y - ev[2]))}"
        elif ev[0] == "reset":
            s.reset()
        elif ev[0] == "set":
            s.set_state(ev[1])
    return None


def _worker(k: int, model: sl.Model, pool, deadline: float, seed: int, run_X: np.ndarray,
            run_Y: np.ndarray, stress: Stress, lock: threading.Lock) -> None:
    rng = np.random.default_rng(seed)
    I = model.input_size
    counts = Counter()
    sessions: list[tuple[sl.Session, _Stream]] = []
    slots: dict[int, _Stream] = {}
    stale: list[int] = []
    failures = []

    def finish(stream: _Stream, what: str):
        bad = replay(model, stream)
        counts["replays"] += 1
        counts["replayed_events"] += len(stream.events)
        if bad:
            failures.append(f"thread {k}: {what}: {bad}")

    def frame():
        return rng.standard_normal(I, dtype=np.float32)

    while time.monotonic() < deadline and not failures:
        op = rng.integers(12)
        if op == 0 or not sessions:                       # open a session
            if len(sessions) < 3:
                sessions.append((model.session(), _Stream()))
                counts["session_opens"] += 1
        elif op in (1, 2, 3):                             # step one of them
            s, log = sessions[rng.integers(len(sessions))]
            x = frame()
            log.events.append(("step", x, s.step(x).copy()))
            counts["session_steps"] += 1
        elif op == 4:                                     # a chunk
            s, log = sessions[rng.integers(len(sessions))]
            X = rng.standard_normal((int(rng.integers(1, 20)), I), dtype=np.float32)
            log.events.append(("run", X, s.run(X)))
            counts["session_steps"] += len(X)
        elif op == 5:                                     # reset, or restore another stream's state
            s, log = sessions[rng.integers(len(sessions))]
            if rng.random() < 0.5:
                s.reset()
                log.events.append(("reset",))
                counts["resets"] += 1
            else:
                other, _ = sessions[rng.integers(len(sessions))]
                st = other.get_state()
                s.set_state(st)
                log.events.append(("set", st))
                counts["set_states"] += 1
        elif op == 6:                                     # drop a session: replay it
            s, log = sessions.pop(rng.integers(len(sessions)))
            finish(log, "session")
            counts["session_closes"] += 1
        elif op == 7:                                     # open a pool slot
            if len(slots) < 4:
                try:
                    slots[pool.open()] = _Stream()
                    counts["slot_opens"] += 1
                except ValueError:
                    counts["pool_full"] += 1
        elif op in (8, 9) and slots:                      # step some of my slots together
            ids = [i for i in slots if rng.random() < 0.7] or [next(iter(slots))]
            X = rng.standard_normal((len(ids), I), dtype=np.float32)
            Y = pool.step(ids, X)
            for j, sid in enumerate(ids):
                slots[sid].events.append(("step", X[j].copy(), Y[j].copy()))
            counts["pool_steps"] += len(ids)
        elif op == 10 and slots:                          # reset or close a slot
            sid = list(slots)[rng.integers(len(slots))]
            if rng.random() < 0.4:
                pool.reset(sid)
                slots[sid].events.append(("reset",))
                counts["resets"] += 1
            else:
                pool.close(sid)
                finish(slots.pop(sid), f"pool stream {sid}")
                stale.append(sid)
                counts["slot_closes"] += 1
        elif op == 11:                                    # a closed id must stay dead; Model.run is stateless
            if stale:
                sid = stale[rng.integers(len(stale))]
                try:
                    pool.step([sid], frame()[None])
                    failures.append(f"thread {k}: closed pool id {sid} was accepted")
                except ValueError:
                    counts["stale_refusals"] += 1
            if not np.array_equal(model.run(run_X), run_Y):
                failures.append(f"thread {k}: Model.run differs from the serial run")
            counts["model_runs"] += 1
    for s, log in sessions:
        finish(log, "session (open at the end)")
    for sid, log in slots.items():
        finish(log, f"pool stream {sid} (open at the end)")
        pool.close(sid)
    with lock:
        stress.counts.update(counts)
        stress.failures.extend(failures)


def concurrency_stress(threads: int = 8, seconds: float = 3.0, *, name: str = "kws", capacity: int = 24,
                       seed: int = 0) -> Stress:
    model = sl.Model(zoo_network(name))
    pool = model.pool(capacity)
    run_X = np.random.default_rng(seed + 1000).standard_normal((50, model.input_size), dtype=np.float32)
    run_Y = model.run(run_X)
    model.session().step(run_X[0])            # compile before the clock starts
    pool.step([pool.open()], run_X[:1])
    pool.close(pool.ids()[0])
    stress = Stress(threads, seconds)
    lock = threading.Lock()
    errors: list[BaseException] = []
    deadline = time.monotonic() + seconds

    def guarded(k):
        try:
            _worker(k, model, pool, deadline, seed * 100 + k, run_X, run_Y, stress, lock)
        except BaseException as e:  # an unexpected exception in a thread is a failure, not a silent exit
            errors.append(e)

    ts = [threading.Thread(target=guarded, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(seconds + 600)
    stress.failures += [f"{type(e).__name__}: {e}" for e in errors]
    stress.failures += [f"thread still running after {seconds + 600} s" for t in ts if t.is_alive()]
    if len(pool):
        stress.failures.append(f"{len(pool)} pool slots left open")
    return stress
