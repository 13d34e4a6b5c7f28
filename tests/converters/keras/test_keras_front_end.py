"""Keras front-end layers: Embedding, Conv1D over time (causal streams, same runs whole),
BatchNormalization folded at load and LayerNormalization, on a Keras 2 ``.h5`` name classifier
(float64 Keras 2 reference) and Keras 3 models (torch backend) compared with ``predict``."""

from __future__ import annotations

import os

os.environ["KERAS_BACKEND"] = "torch"

import numpy as np
import pytest

import keras
import streamlstm as sl
from streamlstm.converters.keras import import_keras
from streamlstm.errors import ConversionError
from streamlstm.network import GRU, Dense, Elementwise, Embedding, LayerNorm, TimeConv1d
from support import keras2_fixture as k2

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

L = keras.layers
TOL = 1e-5
T = 400
V, D = 30, 12


def _stream(model: sl.Model, X) -> np.ndarray:
    s = model.session()
    return np.stack([s.step(x) for x in X])


# ---------------------------------------------------------------------------------- Keras 2 .h5
def _name_classifier(rng):
    return [k2.embedding(rng, "embedding", V, D),
            k2.lstm(rng, "lstm", D, 16, return_sequences=False),
            k2.dense(rng, "dense", 16, 5, activation="softmax")]


def test_keras2_h5_embedding_lstm_dense_name_classifier(tmp_path):
    layers = _name_classifier(np.random.default_rng(3))
    path = tmp_path / "names.h5"
    k2.write_h5(path, layers, 1, keras_version="2.11.0")
    model = sl.load(str(path))
    assert isinstance(model.network.layers[0], Embedding) and model.input_size == 1
    rng = np.random.default_rng(4)
    for n in (1, 7, 23):  # names of several lengths, one stream each
        ids = rng.integers(1, V, size=n)
        ref = k2.forward(layers, ids)
        s = model.session()
        got = np.stack([s.step(int(t)) for t in ids])
        assert np.abs(got - ref).max() <= TOL
        assert np.abs(got[-1] - ref[-1]).max() <= TOL  # Keras's one output: the last frame's
    ids = rng.integers(0, V, size=T)
    ref = k2.forward(layers, ids)
    s = model.session()
    got = np.stack([s.step(t if i % 3 else np.array([t])) for i, t in enumerate(ids)])  # np.int64, (1,) array
    assert np.abs(got - ref).max() <= TOL
    assert np.abs(model.run(ids.reshape(-1, 1)) - ref).max() <= TOL


def test_keras2_out_of_range_token_is_refused_state_untouched(tmp_path):
    layers = _name_classifier(np.random.default_rng(5))
    k2.write_h5(tmp_path / "m.h5", layers, 1)
    s = sl.load(str(tmp_path / "m.h5")).session()
    s.step(3)
    before = [a.copy() for a in s.get_state()]
    for bad in (V, -1):
        with pytest.raises(ValueError):
            s.step(bad)
    assert all(np.array_equal(a, b) for a, b in zip(before, s.get_state()))


def test_keras2_mask_zero_warns(tmp_path):
    rng = np.random.default_rng(6)
    layers = [k2.embedding(rng, "embedding", V, D, mask_zero=True), k2.lstm(rng, "lstm", D, 8)]
    k2.write_h5(tmp_path / "m.h5", layers, 1)
    with pytest.warns(UserWarning, match="mask_zero"):
        import_keras(str(tmp_path / "m.h5"))


@pytest.mark.parametrize("padding", ["causal", "same"])
def test_keras2_h5_conv_batchnorm_gru(tmp_path, padding):
    rng = np.random.default_rng(15)
    layers = [k2.conv1d(rng, "conv1d", 4, 10, 3, padding=padding, dilation=2),
              k2.batch_norm(rng, "batch_normalization", 10),
              k2.simple("Activation", "activation", activation="relu"),
              k2.conv1d(rng, "conv1d_1", 10, 8, 2, padding=padding, activation="tanh"),
              k2.batch_norm(rng, "batch_normalization_1", 8, epsilon=1e-2),
              k2.gru(rng, "gru", 8, 12),
              k2.dense(rng, "dense", 12, 2, activation="sigmoid")]
    k2.write_h5(tmp_path / "sensor.h5", layers, 4, keras_version="2.11.0", functional=True)
    model = sl.load(str(tmp_path / "sensor.h5"))
    assert [l.kind for l in model.network.layers] == ["TimeConv1d", "TimeConv1d", "GRU", "Dense"]
    X = np.random.default_rng(16).standard_normal((T, 4)).astype(np.float32)
    ref = k2.forward(layers, X)
    assert np.abs(model.run(X) - ref).max() <= TOL
    if padding == "causal":
        assert np.abs(_stream(model, X) - ref).max() <= TOL


# ---------------------------------------------------------------------------------- Keras 3
def _set_bn_stats(model, seed: int) -> None:
    """Non-trivial running statistics (a freshly built BatchNormalization is the identity)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            shapes = [w.shape for w in layer.get_weights()]
            layer.set_weights([rng.uniform(0.5, 1.5, shapes[0]), rng.uniform(-0.5, 0.5, shapes[1]),
                               rng.uniform(-1, 1, shapes[2]), rng.uniform(0.5, 2.0, shapes[3])])


def _sensor(padding: str, C: int = 6):
    """A conv + GRU sensor model: two Conv1D with BatchNorm (before and after an activation)."""
    keras.utils.set_random_seed(7)
    inp = keras.Input((None, C))
    x = L.Conv1D(16, 3, padding=padding, dilation_rate=2)(inp)
    x = L.BatchNormalization()(x)
    x = L.Activation("relu")(x)
    x = L.Conv1D(12, 2, padding=padding, activation="tanh")(x)
    x = L.BatchNormalization(epsilon=1e-2)(x)
    x = L.GRU(24, return_sequences=True)(x)
    x = L.LayerNormalization()(x)
    out = L.Dense(3, activation="sigmoid")(x)
    m = keras.Model(inp, out)
    _set_bn_stats(m, 8)
    return m


@pytest.fixture(scope="module")
def sensor_X():
    return np.random.default_rng(9).standard_normal((T, 6)).astype(np.float32)


@pytest.mark.parametrize("via", ["keras", "h5", "memory"])
def test_keras3_causal_conv_gru_batchnorm_streams(tmp_path, sensor_X, via):
    m = _sensor("causal")
    ref = m.predict(sensor_X[None], verbose=0)[0]
    src = m
    if via != "memory":
        src = str(tmp_path / f"sensor.{via}")
        m.save(src)
    model = sl.load(src)
    # the first BatchNorm folded into the conv before it, the second into the GRU after it
    assert [type(l) for l in model.network.layers] == [TimeConv1d, TimeConv1d, GRU, LayerNorm, Dense]
    assert model.network.layers[0].activation.name == "Relu"
    assert model.network.layers[0].padding == (4, 0)
    assert np.abs(_stream(model, sensor_X) - ref).max() <= TOL
    assert np.abs(model.run(sensor_X) - ref).max() <= TOL
    s = model.session()  # chunked steps continue the convolution history
    got = np.concatenate([s.run(sensor_X[:137]), s.run(sensor_X[137:])])
    assert np.abs(got - ref).max() <= TOL


def test_keras3_same_conv_runs_whole_and_refuses_step(tmp_path, sensor_X):
    m = _sensor("same")
    ref = m.predict(sensor_X[None], verbose=0)[0]
    m.save(tmp_path / "same.keras")
    model = sl.load(str(tmp_path / "same.keras"))
    assert model.network.layers[0].padding == (2, 2) and model.network.layers[1].padding == (0, 1)
    assert np.abs(model.run(sensor_X) - ref).max() <= TOL
    with pytest.raises(ValueError, match="future frames"):
        model.session().step(sensor_X[0])


@pytest.mark.parametrize("layers, kinds", [
    (lambda: [L.Dense(8), L.BatchNormalization(), L.Activation("relu"), L.GRU(6, return_sequences=True)],
     [Dense, GRU]),                                   # folded into the Dense before it
    (lambda: [L.Dense(8, activation="relu"), L.BatchNormalization(), L.GRU(6, return_sequences=True)],
     [Dense, GRU]),                                   # into the GRU after it
    (lambda: [L.Dense(8, activation="relu"), L.BatchNormalization(), L.LayerNormalization(),
              L.GRU(6, return_sequences=True)],
     [Dense, Elementwise, Elementwise, LayerNorm, GRU]),  # neither: a scale and a shift
])
def test_keras3_dense_batchnorm_folds(layers, kinds):
    keras.utils.set_random_seed(10)
    m = keras.Sequential([keras.Input((None, 4)), *layers()])
    _set_bn_stats(m, 11)
    X = np.random.default_rng(12).standard_normal((50, 4)).astype(np.float32)
    model = sl.load(m)
    assert [type(l) for l in model.network.layers] == kinds
    assert np.abs(_stream(model, X) - m.predict(X[None], verbose=0)[0]).max() <= TOL


def test_keras3_embedding_gru_tagger(tmp_path):
    keras.utils.set_random_seed(13)
    m = keras.Sequential([keras.Input((None,), dtype="int32"), L.Embedding(V, D), L.LayerNormalization(),
                          L.GRU(10, return_sequences=True), L.Dense(4, activation="softmax")])
    m.save(tmp_path / "tagger.keras")
    ids = np.random.default_rng(14).integers(0, V, size=200)
    ref = m.predict(ids[None].astype(np.int32), verbose=0)[0]
    model = sl.load(str(tmp_path / "tagger.keras"))
    assert np.abs(_stream(model, ids) - ref).max() <= TOL


@pytest.mark.parametrize("layer, match", [
    (lambda: L.Conv1D(4, 3, padding="valid"), "fewer frames"),
    (lambda: L.Conv1D(4, 3, strides=2, padding="causal"), "strides=2"),
    (lambda: L.LayerNormalization(rms_scaling=True), "rms_scaling"),
])
def test_keras3_unstreamable_front_ends_are_refused(layer, match):
    m = keras.Sequential([keras.Input((None, 4)), layer(), L.GRU(3)])
    with pytest.raises(ConversionError, match=match):
        import_keras(m)


def test_keras3_embedding_not_first_is_refused():
    m = keras.Sequential([keras.Input((None, 4)), L.Dense(1), L.Embedding(5, 3)])
    with pytest.raises(ConversionError, match="must be the first layer"):
        import_keras(m)
