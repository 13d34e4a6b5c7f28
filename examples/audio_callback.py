"""Calling a streamlstm session from your own Numba code: an audio-style callback loop.

An audio host hands the application one block of samples at a time (here 10 ms at 16 kHz).
The whole per-block work -- feature extraction, one network step, smoothing -- runs in a
single ``@njit(nogil=True)`` function, with no Python in the loop:

    kern = model.kernel()              # Kernel(step, weights, table, work_size)
    state, work = session.buffers()    # the session's live state and scratch
    rc = kern.step(kern.weights, kern.table, state, work, x, y)   # inside @njit code

``kern.step`` is the jitted dispatcher the Session itself calls; it advances the session's
state in place and returns 0, or -(t+1) when frame t holds NaN/Inf (state untouched).

Run:  python examples/audio_callback.py [--blocks N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from numba import njit

import streamlstm as sl

RATE, HOP, BANDS = 16000, 160, 40


def vad_network(seed: int = 0) -> sl.Network:
    """A small voice-activity detector with random weights: 40 log-band features -> P(speech)."""
    rng = np.random.default_rng(seed)
    H = 64
    return sl.Network([
        sl.LSTM(W=rng.normal(size=(1, 4 * H, BANDS)) / np.sqrt(BANDS), R=rng.normal(size=(1, 4 * H, H)) / np.sqrt(H),
                Wb=rng.normal(size=(1, 4 * H)) * 0.1),
        sl.Dense(W=rng.normal(size=(1, H)) / np.sqrt(H), b=np.zeros(1)),
        sl.Activation("Sigmoid"),
    ])


def make_callback(model: sl.Model):
    """Compile the per-block callback around ``model``'s step function."""
    step = model.kernel().step  # a global of the jitted callback: resolved at compile time

    @njit(nogil=True, fastmath=True)
    def callback(samples, bands, weights, table, state, work, feat, prob, smooth):
        """One audio block -> features -> one network step -> smoothed probability.

        Returns 0, or a negative code when the features held NaN/Inf (state untouched).
        """
        for b in range(feat.shape[0]):
            acc = 0.0
            for i in range(samples.shape[0]):
                acc += bands[b, i] * samples[i]
            feat[b] = np.float32(np.log(acc * acc + 1e-6))
        rc = step(weights, table, state, work, feat, prob)
        if rc != 0:
            return rc
        smooth[0] = np.float32(0.9) * smooth[0] + np.float32(0.1) * prob[0]
        return 0

    return callback


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="audio-style callback loop over a streamlstm session")
    ap.add_argument("--blocks", type=int, default=1000, help="number of 10 ms audio blocks to process")
    a = ap.parse_args(argv)

    model = sl.Model(vad_network())
    kern = model.kernel()
    session = model.session()
    state, work = session.buffers()
    callback = make_callback(model)

    rng = np.random.default_rng(1)
    bands = (rng.normal(size=(BANDS, HOP)) / np.sqrt(HOP)).astype(np.float32)
    audio = (rng.normal(size=a.blocks * HOP) * np.repeat(rng.uniform(0.01, 1.0, a.blocks), HOP)).astype(np.float32)
    feat = np.empty(BANDS, np.float32)
    prob = np.empty(1, np.float32)
    smooth = np.zeros(1, np.float32)

    callback(audio[:HOP], bands, kern.weights, kern.table, state, work, feat, prob, smooth)  # compile
    session.reset()
    smooth[0] = 0.0

    probs = np.empty(a.blocks, np.float32)
    feats = np.empty((a.blocks, BANDS), np.float32)
    times = np.empty(a.blocks)
    for k in range(a.blocks):  # the "audio host": one callback per arriving block
        t0 = time.perf_counter()
        rc = callback(audio[k * HOP:(k + 1) * HOP], bands, kern.weights, kern.table, state, work,
                      feat, prob, smooth)
        times[k] = time.perf_counter() - t0
        if rc != 0:
            raise RuntimeError(f"block {k}: bad features (code {rc})")
        probs[k], feats[k] = prob[0], feat

    # The same frames through the ordinary Python API give exactly the same outputs.
    check = model.session()
    ref = np.array([check.step(f)[0] for f in feats], np.float32)
    diff = float(np.abs(ref - probs).max())
    print(f"{a.blocks} blocks of {HOP} samples: callback median {np.median(times) * 1e6:.1f} us "
          f"(p99 {np.percentile(times, 99) * 1e6:.1f} us), smoothed P(speech) at end {smooth[0]:.3f}")
    print(f"max abs diff vs Session.step: {diff}")
    print(f"state equal to Session's: {np.array_equal(check.get_state(), session.get_state())}")


if __name__ == "__main__":
    main()
