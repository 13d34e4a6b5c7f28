"""The whole Silero VAD, front end included, streamed over a WAV file: one streamlstm step per
32 ms chunk, no onnxruntime at run time.

silero's own wrapper feeds its ONNX model 512 new samples at 16 kHz plus the last 64 samples
of the chunk before (576 in all), with a sample-rate input and the LSTM state fed back.
streamlstm loads the graph whole (``constants`` fixes the sample rate, ``dims`` the chunk
length), keeps the state in the session, and returns the speech probability of each chunk.

Run:  pip install --no-deps silero-vad
      python examples/vad_wav.py speech.wav        (16 kHz mono 16-bit; e.g. espeak-ng output resampled)
"""

from __future__ import annotations

import argparse
import importlib.util
import wave
from pathlib import Path

import numpy as np

import streamlstm as sl

RATE = 16000
NEW, CONTEXT = 512, 64


def silero_model(name: str = "silero_vad_16k_op15.onnx") -> sl.Model:
    """The VAD from the installed silero-vad package, loaded whole."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or spec.origin is None:
        raise SystemExit("the silero-vad package is not installed: pip install --no-deps silero-vad")
    return sl.load(Path(spec.origin).parent / "data" / name, constants={"sr": RATE},
                   dims={"sequence": CONTEXT + NEW})


def read_wav(path: str | Path) -> np.ndarray:
    """The first channel of a 16-bit WAV, as float32 in [-1, 1), resampled to 16 kHz if needed."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16-bit samples, got {8 * w.getsampwidth()}-bit")
        rate, ch = w.getframerate(), w.getnchannels()
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, ch)[:, 0] / 32768.0
    if rate != RATE:
        t = np.arange(int(len(pcm) * RATE / rate)) / RATE
        pcm = np.interp(t, np.arange(len(pcm)) / rate, pcm)
    return pcm.astype(np.float32)


def speech_probabilities(model: sl.Model, audio: np.ndarray) -> np.ndarray:
    """One probability per 512 new samples, stepping one stream chunk by chunk."""
    session = model.session()
    out = np.empty(1, np.float32)
    chunk = np.zeros(CONTEXT + NEW, np.float32)
    probs = []
    for start in range(0, len(audio) - NEW + 1, NEW):
        chunk[:CONTEXT] = chunk[-CONTEXT:]          # the last 64 samples of the chunk before
        chunk[CONTEXT:] = audio[start:start + NEW]
        session.step(chunk, out=out)
        probs.append(float(out[0]))
    return np.array(probs)


def segments(probs: np.ndarray, threshold: float = 0.5) -> list[tuple[float, float]]:
    """(start, end) seconds of the runs of chunks above ``threshold``."""
    on = np.concatenate([[False], probs > threshold, [False]])
    edges = np.flatnonzero(on[1:] != on[:-1])
    sec = NEW / RATE
    return [(a * sec, b * sec) for a, b in zip(edges[::2], edges[1::2])]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("wav")
    ap.add_argument("--threshold", type=float, default=0.5)
    args = ap.parse_args()
    probs = speech_probabilities(silero_model(), read_wav(args.wav))
    print(f"{len(probs)} chunks of {1000 * NEW // RATE} ms")
    for a, b in segments(probs, args.threshold):
        print(f"speech {a:6.2f} s - {b:6.2f} s")


if __name__ == "__main__":
    main()
