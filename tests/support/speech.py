"""Test speech: espeak-ng speaks a text, resampled here to 16 kHz mono float32, with silences."""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

TEXT = ("Streaming models listen to audio one chunk at a time. The detector should notice when someone "
        "speaks and when the room is quiet again. Numbers such as one two three and long words help.")


def speech_16k(tmp: Path, repeats: int = 3, silence_s: float = 1.5) -> np.ndarray:
    """About ``repeats`` x 11 s of speech, each followed by ``silence_s`` of faint noise, at 16 kHz."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed (apt-get install -y espeak-ng; .ci/run does)")
    path = tmp / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(path), TEXT], check=True, capture_output=True, timeout=60)
    with wave.open(str(path)) as w:
        rate, raw = w.getframerate(), w.readframes(w.getnframes())
    pcm = np.frombuffer(raw, np.int16).astype(np.float64) / 32768.0
    t16 = np.arange(int(len(pcm) * 16000 / rate)) / 16000.0
    voice = np.interp(t16, np.arange(len(pcm)) / rate, pcm)
    rng = np.random.default_rng(0)
    parts = []
    for _ in range(repeats):
        parts += [voice, rng.normal(0, 1e-3, int(16000 * silence_s))]
    return np.concatenate(parts).astype(np.float32)


def silero_chunks(audio: np.ndarray, new: int = 512, context: int = 64) -> np.ndarray:
    """(n, context + new) chunks as silero's own wrapper builds them: each starts with the last
    ``context`` samples of the one before (zeros for the first)."""
    n = len(audio) // new
    padded = np.concatenate([np.zeros(context, np.float32), audio[:n * new]])
    return np.stack([padded[i * new:i * new + context + new] for i in range(n)])
