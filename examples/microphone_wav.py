"""A microphone-style callback fed from a WAV file: voice activity, one 10 ms block at a time.

A sound-card library (sounddevice, PyAudio, JACK...) calls the application back with each block
of samples as it is recorded: ``callback(indata, frames, time, status)``. Here a WAV file plays
the microphone: ``play_wav`` reads it with the standard ``wave`` module and calls the callback
once per 10 ms block, in order, as the card would. The callback turns the block into 64
log-band energies and advances one streamlstm stream by one step, so the network's state
carries everything heard so far and no past audio is kept.

The network is the bench zoo's ``vad`` (64 bands -> LSTM 128 -> Dense 1 -> Sigmoid) with random
weights: the example shows the streaming plumbing, not a trained detector. To use a real one,
replace ``zoo_network("vad")`` with ``sl.load("your_vad.onnx")`` and its own features.

Run:  python examples/microphone_wav.py speech.wav     (e.g. espeak-ng -w speech.wav "hello")
"""

from __future__ import annotations

import argparse
import wave
from pathlib import Path
from typing import Callable

import numpy as np

import streamlstm as sl
from streamlstm.tools.zoo import zoo_network

BLOCK_SECONDS = 0.01
BANDS = 64


def band_energies(block: np.ndarray, bands: int = BANDS) -> np.ndarray:
    """log energy of ``bands`` equal-width frequency bands of one block (Hann window)."""
    spectrum = np.abs(np.fft.rfft(block * np.hanning(block.size))) ** 2
    edges = np.linspace(0, spectrum.size, bands + 1).astype(int)
    sums = np.add.reduceat(spectrum, edges[:-1]) if spectrum.size >= bands else np.zeros(bands)
    return np.log(sums + 1e-10).astype(np.float32)


class VoiceActivity:
    """The application's state: one streamlstm stream and what it has said so far."""

    def __init__(self, model: sl.Model, smoothing: float = 0.9):
        self.session = model.session()
        self.out = np.empty(model.output_size, np.float32)
        self.smoothing = smoothing
        self.smoothed = 0.0
        self.features: list[np.ndarray] = []
        self.probabilities: list[float] = []

    def callback(self, indata: np.ndarray, frames: int, time: float, status: str | None) -> None:
        """Called once per recorded block (the sounddevice signature): indata is (frames, channels)."""
        if status:
            raise RuntimeError(f"audio device reported {status}")
        feat = band_energies(indata[:, 0])
        self.session.step(feat, out=self.out)   # no allocation; the stream's state advances
        p = float(self.out[0])
        self.smoothed = self.smoothing * self.smoothed + (1 - self.smoothing) * p
        self.features.append(feat)
        self.probabilities.append(p)


def play_wav(path: str | Path, callback: Callable, block_seconds: float = BLOCK_SECONDS) -> int:
    """Call ``callback`` with each block of a 16-bit PCM WAV file, like a sound card; returns the
    number of blocks. The last, partial block is padded with silence."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16-bit PCM, got {8 * w.getsampwidth()}-bit samples")
        rate, channels = w.getframerate(), w.getnchannels()
        hop = max(1, round(rate * block_seconds))
        blocks = 0
        while True:
            raw = w.readframes(hop)
            if not raw:
                return blocks
            samples = np.frombuffer(raw, "<i2").reshape(-1, channels).astype(np.float32) / 32768.0
            if len(samples) < hop:
                samples = np.vstack([samples, np.zeros((hop - len(samples), channels), np.float32)])
            callback(samples, hop, blocks * block_seconds, None)
            blocks += 1


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("wav", help="a 16-bit PCM WAV file standing in for the microphone")
    a = ap.parse_args(argv)
    vad = VoiceActivity(sl.Model(zoo_network("vad")))
    blocks = play_wav(a.wav, vad.callback)
    print(f"{blocks} blocks of {BLOCK_SECONDS * 1000:.0f} ms; smoothed P(speech) at the end {vad.smoothed:.3f}")


if __name__ == "__main__":
    main()
