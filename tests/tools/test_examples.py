"""The examples run: a microphone-style callback fed from a WAV file that espeak-ng speaks, and
token streaming through a one-hot front end, each checked against the float64 reference."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

import streamlstm as sl
from support.reference import reference_run

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory) -> Path:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed (apt-get install -y espeak-ng; .ci/run does)")
    path = tmp_path_factory.mktemp("wav") / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(path), "streaming speech, one block at a time"], check=True,
                   capture_output=True, timeout=60)
    return path


def test_microphone_callback_from_wav(speech_wav):
    mic = _example("microphone_wav")
    model = sl.Model(mic.zoo_network("vad"))
    vad = mic.VoiceActivity(model)
    blocks = mic.play_wav(speech_wav, vad.callback)

    with wave.open(str(speech_wav), "rb") as w:   # the file framed independently of the example
        rate, n = w.getframerate(), w.getnframes()
        audio = np.frombuffer(w.readframes(n), "<i2").astype(np.float64) / 32768.0
    hop = round(rate * mic.BLOCK_SECONDS)
    assert blocks == -(-n // hop) and blocks > 50
    audio = np.concatenate([audio, np.zeros(blocks * hop - n)]).reshape(blocks, hop)
    window = np.hanning(hop)
    spectrum = np.abs(np.fft.rfft(audio * window, axis=1)) ** 2
    edges = np.linspace(0, spectrum.shape[1], mic.BANDS + 1).astype(int)
    want = np.log(np.stack([spectrum[:, a:b].sum(axis=1) for a, b in zip(edges[:-1], edges[1:])], 1) + 1e-10)
    feats = np.stack(vad.features)
    np.testing.assert_allclose(feats, want, rtol=1e-4, atol=1e-3)
    assert feats.max(axis=1).max() - feats.max(axis=1).min() > 5   # speech and its pauses differ

    ref, _ = reference_run(model.network, feats.astype(np.float64))
    np.testing.assert_allclose(np.array(vad.probabilities), ref[:, 0], atol=1e-5)
    assert 0.0 <= vad.smoothed <= 1.0


def test_microphone_example_runs_as_script(speech_wav):
    out = subprocess.run([sys.executable, str(EXAMPLES / "microphone_wav.py"), str(speech_wav)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "blocks of 10 ms" in out.stdout


def test_microphone_refuses_other_sample_widths(tmp_path):
    mic = _example("microphone_wav")
    path = tmp_path / "8bit.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(8000)
        w.writeframes(bytes(800))
    with pytest.raises(ValueError, match="16-bit"):
        mic.play_wav(path, lambda *a: None)


def test_token_stream_matches_the_reference_over_the_fed_tokens():
    tok = _example("token_stream")
    model = tok.char_model()
    prompt = [tok.VOCAB.index(c) for c in "the "]
    ids = tok.generate(model, prompt, 40, seed=3)
    assert len(ids) == 40 and all(0 <= i < len(tok.VOCAB) for i in ids)
    assert ids == tok.generate(model, prompt, 40, seed=3)   # a fresh stream each time: same text

    fed = prompt + ids[:-1]   # every token the stream consumed, in order
    onehot = np.eye(len(tok.VOCAB))[fed]
    ref, _ = reference_run(model.network, onehot)
    stream = tok.TokenStream(model)
    got = np.stack([stream.feed(t).copy() for t in fed])
    np.testing.assert_allclose(got, ref, atol=1e-5)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="vocabulary"):
        stream.feed(len(tok.VOCAB))


def test_token_example_runs_as_script():
    out = subprocess.run([sys.executable, str(EXAMPLES / "token_stream.py"), "--tokens", "20", "--prompt", "hi "],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    line = out.stdout.rstrip("\n")
    assert line.startswith("hi ") and len(line) == 23


def test_vad_example_streams_the_whole_silero_model(tmp_path):
    from support.speech import silero_chunks, speech_16k

    ort = pytest.importorskip("onnxruntime")
    vad = _example("vad_wav")
    audio = speech_16k(tmp_path, repeats=2)
    path = tmp_path / "speech16k.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.clip(audio, -1, 1 - 2 ** -15) * 32768).astype("<i2").tobytes())
    pcm = vad.read_wav(path)
    probs = vad.speech_probabilities(vad.silero_model(), pcm)
    spec = importlib.util.find_spec("silero_vad")
    ref = ort.InferenceSession(str(Path(spec.origin).parent / "data" / "silero_vad_16k_op15.onnx"),
                               providers=["CPUExecutionProvider"])
    state, want = np.zeros((2, 1, 128), np.float32), []
    for x in silero_chunks(pcm):
        out, state = ref.run(None, {"input": x[None], "state": state, "sr": np.array(16000, np.int64)})
        want.append(float(out.reshape(-1)[0]))
    assert probs.shape == (len(want),)
    assert np.quantile(np.abs(probs - np.array(want)), 0.99) <= 1e-5
    segs = vad.segments(probs)
    assert 1 <= len(segs) and all(b > a for a, b in segs)
    out = subprocess.run([sys.executable, str(EXAMPLES / "vad_wav.py"), str(path)], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "speech" in out.stdout and "chunks of 32 ms" in out.stdout
