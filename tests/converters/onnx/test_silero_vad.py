"""The Silero VAD ONNX models of the silero-vad pip package run whole in streamlstm: front end
(reflect pad, STFT conv, magnitude, four convs), LSTM and head, one 576-sample chunk per step,
against onnxruntime with its state fed back, over speech made by espeak-ng."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import streamlstm as sl
from support.speech import silero_chunks, speech_16k

ort = pytest.importorskip("onnxruntime")  # a test extra: installed by the README's test command
MODELS = {"silero_vad.onnx": {"input": (1, 576)}, "silero_vad_16k_op15.onnx": {"sequence": 576}}


def silero_file(name: str) -> Path:
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or spec.origin is None:
        pytest.fail("the silero-vad package is not installed: pip install --no-deps silero-vad "
                    "(the README's test command and .ci/run do)")
    return Path(spec.origin).parent / "data" / name


@pytest.fixture(scope="module")
def chunks(tmp_path_factory) -> np.ndarray:
    c = silero_chunks(speech_16k(tmp_path_factory.mktemp("speech")))
    assert len(c) >= 1000
    return c


@pytest.mark.parametrize("name", sorted(MODELS))
def test_whole_vad_matches_onnxruntime_over_speech(name, chunks):
    """Each chunk from onnxruntime's own state (the session's state is set to it: h then c, as
    silero's state tensor holds them) gives onnxruntime's probability and next state to 1e-5,
    except where onnxruntime's own float32 result is that far from float64 (a chunk near a
    sigmoid's steep part): there the two float32 results may differ by what onnxruntime's own
    rounding explains. Running free, both float32 runs drift apart only as far as onnxruntime
    drifts from a float64 run of the same graph."""
    path = silero_file(name)
    model = sl.load(path, constants={"sr": 16000}, dims=MODELS[name])
    exact = sl.load(path, constants={"sr": 16000}, dims=MODELS[name], dtype="float64")
    assert model.input_size == 576 and model.output_size == 1 and model.state_size == 256
    forced, free, f64 = model.session(), model.session(), exact.session()
    exact_state = f64.get_state()
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    state, sr = np.zeros((2, 1, 128), np.float32), np.array(16000, np.int64)
    got, free_got, want, want64, forced64, state_err = [], [], [], [], [], 0.0
    for x in chunks:
        forced.set_state(state.reshape(-1))
        got.append(float(forced.step(x)[0]))
        f64.set_state(state.reshape(-1).astype(np.float64))
        forced64.append(float(f64.step(x.astype(np.float64))[0]))
        f64.set_state(exact_state)
        out, state = ref.run(None, {"input": x[None], "state": state, "sr": sr})
        state_err = max(state_err, float(np.abs(forced.get_state() - state.reshape(-1)).max()))
        want.append(float(out.reshape(-1)[0]))
        free_got.append(float(free.step(x)[0]))
        want64.append(float(f64.step(x.astype(np.float64))[0]))
        exact_state = f64.get_state()
    got, free_got, want, want64, forced64 = map(np.array, (got, free_got, want, want64, forced64))
    ort_rounding = np.abs(want - forced64)
    assert (np.abs(got - want) <= 1e-5 + 2 * ort_rounding).all() and state_err <= 1e-4
    assert np.quantile(np.abs(got - want), 0.99) <= 1e-5
    speech = (want > 0.5).mean()
    assert 0.3 < speech < 0.97 and want.min() < 0.1, f"the test audio should hold speech and quiet ({speech:.2f})"
    ort_drift = np.abs(want - want64).max()
    assert np.abs(free_got - want).max() <= max(1e-5, 2.5 * ort_drift)
    assert np.abs(free_got - want64).max() <= max(1e-5, 1.5 * ort_drift)


def test_chunk_pool_and_run_agree_with_steps(chunks):
    model = sl.load(silero_file("silero_vad_16k_op15.onnx"), constants={"sr": 16000}, dims={"sequence": 576})
    X = chunks[:40]
    s = model.session()
    steps = np.array([s.step(x) for x in X])
    np.testing.assert_array_equal(model.run(X), steps)
    pool = model.pool(3)
    a, b = pool.open(), pool.open()
    Y = np.stack([pool.step([a, b], np.stack([x, X[-1 - t]])) for t, x in enumerate(X)], axis=1)
    np.testing.assert_array_equal(Y[0], steps)
    np.testing.assert_array_equal(Y[1], model.run(X[::-1]))


def test_frame_graph_errors_name_what_to_give():
    path = silero_file("silero_vad_16k_op15.onnx")
    with pytest.raises(sl.ConversionError, match="dims="):
        sl.load(path, constants={"sr": 16000})
    with pytest.raises(sl.ConversionError, match="no free dimension or input named"):
        sl.load(path, constants={"sr": 16000}, dims={"samples": 576})
    with pytest.raises(sl.ConversionError, match="not a graph input"):
        sl.load(path, constants={"rate": 16000}, dims={"sequence": 576})
    with pytest.raises(sl.ConversionError, match="shorter than the window|If"):
        sl.load(path, constants={"sr": 16000}, dims={"sequence": 100})
    for bad in (10 ** 12, -5, 2.5, True):   # hostile sizes: refused before anything is allocated
        with pytest.raises(sl.ConversionError, match="dims"):
            sl.load(path, constants={"sr": 16000}, dims={"sequence": bad})

