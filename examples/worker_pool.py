"""Serving many streams from worker processes: a Model pickles, so it travels to each worker.

The parent loads (or builds) a model once and hands it to a ``multiprocessing`` pool; each worker
keeps one Session per stream it owns and advances it chunk by chunk. Streams are routed to
workers by ``hash(stream id) % workers`` so a stream's state always lives in one process.

Run:  python examples/worker_pool.py [MODEL] [--streams N] [--frames T] [--workers W] [--out Y.npz]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp

import numpy as np

import streamlstm as sl

_model: sl.Model | None = None
_sessions: dict[int, sl.Session] = {}


def demo_network(inputs: int = 16, hidden: int = 32, seed: int = 0) -> sl.Network:
    rng = np.random.default_rng(seed)
    return sl.Network([
        sl.GRU(W=rng.normal(size=(1, 3 * hidden, inputs)) / 4, R=rng.normal(size=(1, 3 * hidden, hidden)) / 6),
        sl.Dense(W=rng.normal(size=(2, hidden)) / 6, b=np.zeros(2)),
    ])


def _init(model: sl.Model) -> None:
    global _model
    _model = model


def _advance(job: tuple[int, np.ndarray]) -> tuple[int, np.ndarray]:
    """Advance stream ``sid`` by a chunk of frames, opening its session on first sight."""
    sid, chunk = job
    session = _sessions.get(sid)
    if session is None:
        session = _sessions[sid] = _model.session()
    return sid, session.run(chunk)


def serve(model: sl.Model, frames: np.ndarray, workers: int, chunk: int = 10) -> np.ndarray:
    """Outputs (streams, T, O) of every stream, computed in ``workers`` processes."""
    n, T, _ = frames.shape
    out = np.empty((n, T, model.output_size), model.dtype)
    ctx = mp.get_context("spawn")
    # One single-process pool per worker: a stream's jobs always reach the process holding it.
    procs = [ctx.Pool(1, initializer=_init, initargs=(model,)) for _ in range(workers)]
    try:
        for t0 in range(0, T, chunk):
            pending = [procs[sid % workers].apply_async(_advance, ((sid, frames[sid, t0:t0 + chunk]),))
                       for sid in range(n)]
            for p in pending:
                sid, y = p.get(timeout=600)
                out[sid, t0:t0 + chunk] = y
    finally:
        for p in procs:
            p.close()
            p.join()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", help="a model file (default: a small random GRU)")
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", help="write the outputs to this .npz")
    args = ap.parse_args()
    model = sl.load(args.model) if args.model else sl.Model(demo_network())
    frames = np.random.default_rng(1).normal(size=(args.streams, args.frames, model.input_size))
    Y = serve(model, frames.astype(model.dtype), args.workers)
    if args.out:
        np.savez(args.out, frames=frames.astype(model.dtype), outputs=Y)
    print(f"{args.streams} streams x {args.frames} frames served by {args.workers} worker processes")


if __name__ == "__main__":
    main()
