"""Keras 2 files (no TensorFlow here): HDF5 files in the documented Keras 2 layout, built in
tmp_path by ``keras2_fixture``, streamed through streamlstm and compared with a float64 NumPy
forward pass that follows the Keras 2 layer equations on Keras's own weight layout."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from support import keras2_fixture as k2
import streamlstm as sl
from streamlstm.converters.keras import import_keras
from streamlstm.errors import ConversionError

T = 500
TOL = 1e-5
I = 3


def _stack(rng, cell="lstm_cell"):
    """Every Keras 2 layer type in one streamable stack."""
    c = (lambda s: s) if cell else (lambda s: None)
    return [
        k2.lstm(rng, "lstm", I, 8, cell=c("lstm_cell"), recurrent_activation="hard_sigmoid"),
        k2.simple("Dropout", "dropout", rate=0.5),
        k2.gru(rng, "gru", 8, 6, reset_after=True, cell=c("gru_cell")),
        k2.simple("SpatialDropout1D", "spatial_dropout1d", rate=0.1),
        k2.gru(rng, "gru_1", 6, 5, reset_after=False, cell=c("gru_cell_1"), recurrent_activation="hard_sigmoid",
               stateful=True, time_major=False),
        k2.cudnn_lstm(rng, "cu_dnnlstm", 5, 6),
        k2.cudnn_gru(rng, "cu_dnngru", 6, 5),
        k2.simple_rnn(rng, "simple_rnn", 5, 4, cell=c("simple_rnn_cell"), activation="relu"),
        k2.lstm(rng, "lstm_1", 4, 4, cell=c("lstm_cell_1"), use_bias=False),
        k2.time_distributed("time_distributed", k2.dense(rng, "dense", 4, 4, activation="elu")),
        k2.simple("Activation", "activation", activation="tanh"),
        k2.dense(rng, "dense_1", 4, 3, activation="softmax"),
    ]


def _stream(model: sl.Model, X: np.ndarray) -> np.ndarray:
    s = model.session()
    return np.stack([s.step(x) for x in X])


@pytest.fixture(scope="module")
def X():
    return np.random.default_rng(42).standard_normal((T, I)).astype(np.float32)


@pytest.mark.parametrize("functional", [False, True])
def test_full_stack(tmp_path, X, functional):
    layers = _stack(np.random.default_rng(1))
    path = tmp_path / "m.h5"
    k2.write_h5(path, layers, I, keras_version="2.11.0", functional=functional)
    Y = _stream(sl.load(str(path)), X)
    assert np.abs(Y - k2.forward(layers, X)).max() <= TOL


def test_keras_2_2_style_names_and_hard_sigmoid(tmp_path, X):
    """Standalone Keras 2.2: weights named lstm_1/kernel:0, hard_sigmoid gates, reset_after=False."""
    rng = np.random.default_rng(2)
    layers = [k2.lstm(rng, "lstm_1", I, 6, cell=None, recurrent_activation="hard_sigmoid"),
              k2.gru(rng, "gru_1", 6, 5, reset_after=False, cell=None, recurrent_activation="hard_sigmoid"),
              k2.dense(rng, "dense_1", 5, 2)]
    path = tmp_path / "old.hdf5"
    k2.write_h5(path, layers, I, keras_version="2.2.4")
    net = import_keras(str(path))
    hs = net.layers[0].activations[0]
    assert (hs.name, hs.alpha, hs.beta) == ("HardSigmoid", 0.2, 0.5)
    assert np.abs(_stream(sl.Model(net), X) - k2.forward(layers, X)).max() <= TOL


def test_hard_sigmoid_follows_writer_version(tmp_path):
    """The same file claiming Keras 3 gets relu6(x + 3) / 6 instead of Keras 2's clip(0.2x + 0.5)."""
    layers = [k2.lstm(np.random.default_rng(3), "lstm", I, 4, recurrent_activation="hard_sigmoid")]
    for version, alpha in [("2.15.0", 0.2), ("3.3.3", 1 / 6)]:
        path = tmp_path / f"v{version}.h5"
        k2.write_h5(path, layers, I, keras_version=version)
        assert import_keras(str(path)).layers[0].activations[0].alpha == pytest.approx(alpha)


@pytest.mark.parametrize("merge", ["concat", "sum", "mul", "ave"])
def test_bidirectional(tmp_path, X, merge):
    rng = np.random.default_rng(4)
    make = {"concat": k2.lstm, "sum": k2.gru, "mul": k2.simple_rnn, "ave": k2.cudnn_lstm}[merge]
    bi = k2.bidirectional(rng, "bidirectional", make, I, 4, merge_mode=merge)
    layers = [bi, k2.dense(rng, "dense", bi_width(merge, 4), 2)]
    path = tmp_path / "bi.h5"
    k2.write_h5(path, layers, I)
    model = sl.load(str(path))
    assert not model.streamable
    assert np.abs(model.run(X) - k2.forward(layers, X)).max() <= TOL


def bi_width(merge: str, H: int) -> int:
    return 2 * H if merge == "concat" else H


def test_go_backwards_pair_and_last_step(tmp_path, X):
    rng = np.random.default_rng(5)
    pair = [k2.lstm(rng, "lstm", I, 5, go_backwards=True), k2.cudnn_gru(rng, "gru", 5, 4, go_backwards=True),
            k2.dense(rng, "dense", 4, 2)]
    k2.write_h5(tmp_path / "pair.h5", pair, I)
    assert np.abs(sl.load(str(tmp_path / "pair.h5")).run(X) - k2.forward(pair, X)).max() <= TOL

    last = [k2.gru(rng, "gru", I, 5), k2.lstm(rng, "lstm", 5, 4, return_sequences=False),
            k2.dense(rng, "dense", 4, 2, activation="sigmoid")]
    k2.write_h5(tmp_path / "last.h5", last, I, functional=True)
    Y = _stream(sl.load(str(tmp_path / "last.h5")), X)
    assert np.abs(Y[-1] - k2.forward(last, X)[-1]).max() <= TOL

    single = [k2.lstm(rng, "lstm", I, 5, go_backwards=True), k2.dense(rng, "dense", 5, 2)]
    k2.write_h5(tmp_path / "single.h5", single, I)
    with pytest.raises(ConversionError, match="'lstm'.*time-reversed"):
        import_keras(str(tmp_path / "single.h5"))


def test_weights_only(tmp_path, X):
    rng = np.random.default_rng(6)
    layers = _stack(rng)
    path = tmp_path / "w.h5"
    k2.write_h5(path, layers, I, weights_only=True)
    with pytest.raises(ConversionError, match="weights-only"):
        import_keras(str(path))
    ref = k2.forward(layers, X)
    cfg = dict(k2.model_config(layers, I), keras_version="2.11.0")   # as model.to_json() writes it
    cfg_path = tmp_path / "m.json"
    cfg_path.write_text(json.dumps(cfg))
    for config in (cfg, json.dumps(cfg), str(cfg_path)):
        assert np.abs(_stream(sl.load(str(path), config=config), X) - ref).max() <= TOL

    # Without a config the layer types come from the weights, with Keras's default attributes.
    plain = [k2.lstm(rng, "lstm", I, 6), k2.gru(rng, "gru", 6, 5, reset_after=False, cell="gru_cell"),
             k2.gru(rng, "gru_1", 5, 4, reset_after=True, cell="gru_cell_1"), k2.cudnn_lstm(rng, "cu_dnnlstm", 4, 3),
             k2.simple_rnn(rng, "simple_rnn", 3, 3), k2.dense(rng, "dense", 3, 2)]
    k2.write_h5(path, plain, I, weights_only=True)
    names = [l["config"]["name"] for l in plain]
    net = import_keras(str(path), layers=names)
    assert [l.kind for l in net.layers] == ["LSTM", "GRU", "GRU", "LSTM", "RNN", "Dense"]
    assert np.abs(_stream(sl.Model(net), X) - k2.forward(plain, X)).max() <= TOL
    with pytest.raises(ConversionError, match="no layer named 'nope'"):
        import_keras(str(path), layers=["lstm", "nope"])

    bi = [k2.bidirectional(rng, "bidirectional", k2.gru, I, 3), k2.dense(rng, "dense", 6, 2)]
    k2.write_h5(path, bi, I, weights_only=True)
    net = import_keras(str(path), layers=["bidirectional", "dense"])
    assert net.layers[0].direction == "bidirectional"
    assert np.abs(sl.Model(net).run(X) - k2.forward(bi, X)).max() <= TOL


def test_unknown_version_with_hard_sigmoid(tmp_path):
    layers = [k2.lstm(np.random.default_rng(7), "lstm", I, 4, recurrent_activation="hard_sigmoid")]
    path = tmp_path / "w.h5"
    k2.write_h5(path, layers, I, weights_only=True)
    assert import_keras(str(path), config=k2.model_config(layers, I)).layers[0].activations[0].alpha == 0.2
    with h5py.File(path, "a") as f:
        del f.attrs["keras_version"]
    with pytest.raises(ConversionError, match="'lstm'.*hard_sigmoid.*keras_version"):
        import_keras(str(path), config=k2.model_config(layers, I))


def test_refusals(tmp_path):
    rng = np.random.default_rng(8)
    lam = k2.simple("Lambda", "lambda", function=["4wEAAAAAAAAA", None, None], function_type="lambda",
                    module="__main__", output_shape=None, arguments={})
    cases = [
        ([lam, k2.lstm(rng, "lstm", I, 3)], "2.11.0", r"'lambda' \(Lambda\).*never deserialised"),
        ([k2.simple("AttentionLayer", "attn"), k2.lstm(rng, "lstm", I, 3)], "2.11.0", r"'attn' \(AttentionLayer\)"),
        ([k2.lstm(rng, "lstm", I, 3)], "1.2.2", "Keras 1"),
        ([k2.lstm(rng, "lstm", I, 3, return_state=True)], "2.11.0", r"'lstm'.*return_state"),
        ([k2.bidirectional(rng, "bi", k2.lstm, I, 3, return_sequences=False)], "2.11.0", r"'bi'.*return_sequences"),
    ]
    for layers, version, match in cases:
        path = tmp_path / "r.h5"
        k2.write_h5(path, layers, I, keras_version=version)
        with pytest.raises(ConversionError, match=match):
            import_keras(str(path))


def test_wrong_weight_shapes(tmp_path):
    rng = np.random.default_rng(9)
    layer = k2.lstm(rng, "lstm", I, 4)
    layer["config"]["units"] = 5                      # config disagrees with the stored kernel
    k2.write_h5(tmp_path / "bad.h5", [layer], I)
    with pytest.raises(ConversionError, match=r"'lstm' \(LSTM\).*kernel shape"):
        import_keras(str(tmp_path / "bad.h5"))
    layer = k2.cudnn_gru(rng, "cu_dnngru", I, 4)
    layer["weights"][2] = (layer["weights"][2][0], layer["weights"][2][1][:12])   # single, not doubled, bias
    k2.write_h5(tmp_path / "bad.h5", [layer], I)
    with pytest.raises(ConversionError, match=r"'cu_dnngru'.*bias shape"):
        import_keras(str(tmp_path / "bad.h5"))
