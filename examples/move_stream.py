"""Moving a live stream to another process: ``save_state`` bytes carry the model's fingerprint.

Process A advances a stream for a while, saves its state and sends the bytes over a pipe.
Process B, which loaded the same model file itself, restores them and continues the stream;
its outputs are the ones A would have produced. A state from any other model is refused.

Run:  python examples/move_stream.py MODEL.npz [--frames T] [--out Y.npz]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp

import numpy as np

import streamlstm as sl


def continue_stream(path: str, conn) -> None:
    """Process B: load the model, receive (state bytes, frames), send back the outputs."""
    model = sl.load(path)
    blob, frames = conn.recv()
    session = model.session()
    session.load_state(blob)
    conn.send(session.run(frames))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="a model file both processes load")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--out", help="write the inputs and outputs to this .npz")
    args = ap.parse_args()
    model = sl.load(args.model)
    X = np.random.default_rng(2).normal(size=(args.frames, model.input_size)).astype(model.dtype)
    half = args.frames // 2
    session = model.session()
    first = session.run(X[:half])
    ctx = mp.get_context("spawn")
    here, there = ctx.Pipe()
    b = ctx.Process(target=continue_stream, args=(args.model, there))
    b.start()
    here.send((session.save_state(), X[half:]))
    second = here.recv()
    b.join()
    Y = np.concatenate([first, second])
    if args.out:
        np.savez(args.out, frames=X, outputs=Y)
    print(f"stream moved after {half} frames; {args.frames - half} more frames ran in process {b.pid}")


if __name__ == "__main__":
    main()
