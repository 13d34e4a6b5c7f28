"""Keras 3 import: real Keras models (torch backend) saved as .keras and .h5 and passed in memory,
streamed through streamlstm and compared with Keras's own predict(); plus refusals and file safety."""

from __future__ import annotations

import os

os.environ["KERAS_BACKEND"] = "torch"

import json
import zipfile

import h5py
import numpy as np
import pytest

import keras
import streamlstm as sl
from streamlstm.converters.keras import files as keras_files
from streamlstm.converters.keras import import_keras
from streamlstm.errors import ConversionError

# Keras's torch backend converts tensors with np.array(x, copy=False) semantics numpy 2 warns about.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

L = keras.layers
T = 500
TOL = 1e-5


def _seq(*layers, input_size=3, batch_size=None):
    shape = dict(batch_shape=(batch_size, None, input_size)) if batch_size else dict(shape=(None, input_size))
    return keras.Sequential([keras.Input(**shape), *layers])


def _functional_last():
    inp = keras.Input((None, 3))
    x = L.LSTM(8, return_sequences=True)(inp)
    x = L.Dropout(0.3)(x)
    x = L.LSTM(6, return_sequences=False)(x)
    return keras.Model(inp, L.Dense(3, activation="sigmoid")(x))


# name -> (builder, streamable, output is the last step only)
MODELS = {
    "stack": (lambda: _seq(
        L.LSTM(8, return_sequences=True, recurrent_activation="hard_sigmoid", unit_forget_bias=True),
        L.Dropout(0.5),
        L.GRU(6, return_sequences=True, reset_after=True),
        L.SpatialDropout1D(0.2),
        L.GRU(5, return_sequences=True, reset_after=False, recurrent_activation="hard_sigmoid"),
        L.SimpleRNN(4, return_sequences=True, activation="relu"),
        L.TimeDistributed(L.Dense(4, activation="elu")),
        L.Activation("softsign"),
        L.Dense(3, activation="softmax")), True, False),
    "no_bias_stateful": (lambda: _seq(
        L.LSTM(6, return_sequences=True, use_bias=False, stateful=True, activation="softsign"),
        L.GRU(4, return_sequences=True, use_bias=False, stateful=True),
        L.SimpleRNN(3, return_sequences=True, use_bias=False, activation="softsign"),
        L.Dense(3, use_bias=False, activation="tanh"),
        L.LeakyReLU(negative_slope=0.1),
        L.ReLU(),
        L.Dense(2, activation="sigmoid"), batch_size=1), True, False),
    "rnn_cells": (lambda: _seq(
        L.RNN(L.LSTMCell(5), return_sequences=True),
        L.RNN(L.GRUCell(4, reset_after=False), return_sequences=True),
        L.RNN(L.SimpleRNNCell(3), return_sequences=True),
        L.Dense(2)), True, False),
    "functional_last_step": (_functional_last, True, True),
    "go_backwards_pair": (lambda: _seq(
        L.LSTM(5, return_sequences=True, go_backwards=True),
        L.GRU(4, return_sequences=True, go_backwards=True),
        L.Dense(2)), False, False),
    "bidir_concat_lstm": (lambda: _seq(
        L.Bidirectional(L.LSTM(4, return_sequences=True, recurrent_activation="hard_sigmoid")),
        L.LSTM(3, return_sequences=True)), False, False),
    "bidir_sum_gru": (lambda: _seq(
        L.Bidirectional(L.GRU(4, return_sequences=True, reset_after=False), merge_mode="sum"),
        L.Dense(2)), False, False),
    "bidir_mul_rnn": (lambda: _seq(
        L.Bidirectional(L.SimpleRNN(4, return_sequences=True), merge_mode="mul")), False, False),
    "bidir_ave_gru_backward_layer": (lambda: _seq(
        L.Bidirectional(L.GRU(4, return_sequences=True),
                        backward_layer=L.GRU(4, return_sequences=True, go_backwards=True, activation="softsign"),
                        merge_mode="ave")), False, False),
}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """Every model built once, saved as .keras and .h5, with Keras's output on one 500-step input."""
    keras.utils.set_random_seed(1234)
    d = tmp_path_factory.mktemp("keras3")
    rng = np.random.default_rng(0)
    out = {}
    for name, (build, streamable, last_only) in MODELS.items():
        m = build()
        _randomize_biases(m, rng)
        X = rng.standard_normal((T, 3)).astype(np.float32)
        ref = keras.ops.convert_to_numpy(m.predict(X[None], verbose=0))[0]
        m.save(d / f"{name}.keras")
        m.save(d / f"{name}.h5")
        out[name] = dict(model=m, X=X, ref=ref, streamable=streamable, last_only=last_only,
                         paths={"keras": d / f"{name}.keras", "h5": d / f"{name}.h5"})
    return out


def _randomize_biases(m, rng):
    """Keras initialises biases to 0 (and forget gates to 1): make them all matter."""
    for w in m.weights:
        if w.path.endswith("bias"):
            w.assign(rng.uniform(-0.5, 0.5, size=tuple(w.shape)).astype(np.float32))


def _outputs(model: sl.Model, X: np.ndarray, streamable: bool) -> np.ndarray:
    if not streamable:
        assert not model.streamable
        return model.run(X)
    s = model.session()
    return np.stack([s.step(x) for x in X])


@pytest.mark.parametrize("source", ["keras", "h5", "object"])
@pytest.mark.parametrize("name", list(MODELS))
def test_matches_keras(zoo, name, source):
    z = zoo[name]
    src = z["model"] if source == "object" else str(z["paths"][source])
    model = sl.load(src)
    Y = _outputs(model, z["X"], z["streamable"])
    assert Y.shape[0] == T
    ref = z["ref"]
    got = Y[-1] if z["last_only"] else Y
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() <= TOL


def test_session_run_chunks_match_steps(zoo):
    z = zoo["stack"]
    model = sl.load(str(z["paths"]["keras"]))
    s = model.session()
    Y = np.concatenate([s.run(z["X"][:123]), s.run(z["X"][123:])])
    assert np.abs(Y - z["ref"]).max() <= TOL


def test_ir_mapping(zoo):
    """Gate order, hard_sigmoid of Keras 3 and GRU reset_after read straight from the network."""
    z = zoo["stack"]
    net = import_keras(str(z["paths"]["keras"]))
    kinds = [l.kind for l in net.layers]
    assert kinds == ["LSTM", "GRU", "GRU", "RNN", "Dense", "Activation", "Dense"]
    lstm = net.layers[0]
    hs = lstm.activations[0]
    assert hs.name == "HardSigmoid" and hs.alpha == pytest.approx(1 / 6) and hs.beta == 0.5
    kernel = z["model"].layers[0].get_weights()[0]           # (I, 4H) gates i,f,c,o
    H = 8
    np.testing.assert_array_equal(lstm.W[0][H:2 * H], kernel[:, 3 * H:].T)   # ONNX o <- Keras o
    np.testing.assert_array_equal(lstm.W[0][2 * H:3 * H], kernel[:, H:2 * H].T)  # ONNX f <- Keras f
    assert net.layers[1].linear_before_reset and not net.layers[2].linear_before_reset
    assert net.layers[1].Rb is not None and net.layers[2].Rb is None


def _with_frontend():
    inp = keras.Input((None,), dtype="int32")
    e = L.Embedding(20, 4, name="embed")(inp)
    c = L.Conv1D(5, 3, padding="causal", name="conv")(e)
    x = L.LSTM(6, return_sequences=True, name="lstm")(c)
    x = L.Dropout(0.2, name="drop")(x)
    x = L.GRU(4, return_sequences=True, name="gru")(x)
    return keras.Model(inp, L.Dense(2, name="head")(x))


@pytest.fixture(scope="module")
def frontend(tmp_path_factory):
    keras.utils.set_random_seed(7)
    m = _with_frontend()
    _randomize_biases(m, np.random.default_rng(2))
    ids = np.random.default_rng(1).integers(0, 20, size=(1, T))
    feats = keras.ops.convert_to_numpy(keras.Model(m.inputs, m.get_layer("conv").output).predict(ids, verbose=0))[0]
    ref = keras.ops.convert_to_numpy(m.predict(ids, verbose=0))[0]
    d = tmp_path_factory.mktemp("frontend")
    m.save(d / "m.keras")
    m.save(d / "m.h5")
    return m, feats, ref, d


@pytest.mark.parametrize("source", ["keras", "h5", "object"])
def test_layers_chain_after_frontend(frontend, source):
    m, feats, ref, d = frontend
    src = m if source == "object" else str(d / f"m.{source}")
    whole = sl.load(src)                                      # the Embedding and Conv1D front end included
    ids = np.random.default_rng(1).integers(0, 20, size=T)
    s = whole.session()
    assert np.abs(np.stack([s.step(int(t)) for t in ids]) - ref).max() <= TOL
    model = sl.load(src, layers=["lstm", "gru", "head"])     # skips the no-op Dropout between
    assert model.input_size == 5
    s = model.session()
    Y = np.stack([s.step(x) for x in feats])
    assert np.abs(Y - ref).max() <= TOL


def test_layers_chain_errors(frontend):
    m, _, _, d = frontend
    with pytest.raises(ConversionError, match="no layer named 'nope'"):
        import_keras(str(d / "m.keras"), layers=["lstm", "nope"])
    with pytest.raises(ConversionError, match="'head' does not follow 'lstm': its input comes from 'gru'"):
        import_keras(str(d / "m.keras"), layers=["lstm", "head"])  # gru is not a no-op
    assert import_keras(str(d / "m.keras"), layers=["conv", "lstm"]).layers[0].kind == "TimeConv1d"
    with pytest.raises(ConversionError, match="'lstm' does not follow 'gru': its input comes from 'conv'"):
        import_keras(str(d / "m.keras"), layers=["gru", "lstm"])


def test_sequential_layers_chain(tmp_path):
    """A chain after a custom front end: the custom layer is outside the chain, so never touched."""
    @keras.saving.register_keras_serializable(package="StreamTest")
    class Front(L.Dense):
        pass

    keras.utils.set_random_seed(3)
    m = _seq(Front(4, name="front"), L.LSTM(5, return_sequences=True, name="l"), L.Dropout(0.1),
             L.Dense(2, name="d"))
    path = tmp_path / "s.keras"
    m.save(path)
    X = np.random.default_rng(2).standard_normal((50, 3)).astype(np.float32)
    front = keras.ops.convert_to_numpy(m.get_layer("front")(X[None]))[0]
    ref = keras.ops.convert_to_numpy(m.predict(X[None], verbose=0))[0]
    Y = sl.load(str(path), layers=["l", "d"]).run(front)
    assert np.abs(Y - ref).max() <= TOL
    with pytest.raises(ConversionError, match="does not follow"):
        import_keras(str(path), layers=["d", "l"])
    with pytest.raises(ConversionError, match=r"'front'.*custom object"):
        import_keras(str(path))


# ---------------------------------------------------------------------------------- refusals
def _refused(m, tmp_path, match):
    path = tmp_path / "m.keras"
    m.save(path)
    for src in (m, str(path)):
        with pytest.raises(ConversionError, match=match):
            import_keras(src)


def test_lambda_refused(tmp_path):
    _refused(_seq(L.Lambda(lambda x: x * 2.0, name="double"), L.LSTM(3)), tmp_path, r"'double' \(Lambda\)")


def test_custom_layer_refused(tmp_path):
    @keras.saving.register_keras_serializable(package="StreamTest")
    class MyLSTM(L.LSTM):
        pass

    _refused(_seq(MyLSTM(3, name="mine")), tmp_path, r"'mine'.*custom object")


def test_custom_activation_refused(tmp_path):
    @keras.saving.register_keras_serializable(package="StreamTest")
    def twice(x):
        return x * 2.0

    _refused(_seq(L.Dense(2, activation=twice, name="dd")), tmp_path, r"'dd'.*custom activation")


def test_unsupported_activation_and_layer(tmp_path):
    _refused(_seq(L.LSTM(3, activation="gelu", name="g")), tmp_path, r"'g'.*'gelu'")
    _refused(_seq(L.MaxPooling1D(2, name="c"), L.LSTM(3)), tmp_path, r"'c' \(MaxPooling1D\).*layers=")
    _refused(_seq(L.Conv1D(3, 2, name="c"), L.LSTM(3)), tmp_path, r"'c' \(Conv1D\).*fewer frames")


@pytest.mark.parametrize("build,match", [
    (lambda: _seq(L.LSTM(3, return_sequences=True, go_backwards=True, name="back")), r"'back'.*time-reversed"),
    (lambda: _seq(L.GRU(3, go_backwards=True, name="back")), r"'back'.*first frame"),
    (lambda: _seq(L.Bidirectional(L.LSTM(3), name="bi")), r"'bi'.*return_sequences=False"),
    (lambda: _seq(L.LSTM(3, return_sequences=True, go_backwards=True, name="back"),
                  L.Bidirectional(L.LSTM(3, return_sequences=True), name="bi"),
                  L.LSTM(3, return_sequences=True, go_backwards=True)), r"'bi'.*time-reversed by go_backwards"),
    (lambda: _seq(L.LSTM(3, name="last"), L.RepeatVector(4), L.LSTM(2)), r"RepeatVector"),
])
def test_time_order_refusals(tmp_path, build, match):
    _refused(build(), tmp_path, match)


def test_return_state_and_graph_refused(tmp_path):
    inp = keras.Input((None, 3))
    out, h, c = L.LSTM(3, return_sequences=True, return_state=True, name="rs")(inp)
    _refused(keras.Model(inp, out), tmp_path, r"'rs'.*return_state")
    a = keras.Input((None, 3))
    b = keras.Input((None, 3))
    x = L.LSTM(3, return_sequences=True, name="lx")(L.Add()([a, b]))
    m = keras.Model([a, b], x)
    _refused(m, tmp_path, "2 inputs")
    assert import_keras(m, layers=["lx"]).input_size == 3


def test_subclassed_model_needs_layers():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.rnn = L.LSTM(4, return_sequences=True, name="rnn")
            self.out = L.Dense(2, name="out")

        def call(self, x):
            return self.out(self.rnn(x))

    keras.utils.set_random_seed(5)
    m = Net()
    X = np.random.default_rng(3).standard_normal((40, 3)).astype(np.float32)
    ref = keras.ops.convert_to_numpy(m(X[None]))[0]
    with pytest.raises(ConversionError, match="layers="):
        import_keras(m)
    Y = sl.load(m, layers=["rnn", "out"]).run(X)
    assert np.abs(Y - ref).max() <= TOL


# ---------------------------------------------------------------------------------- file safety
@pytest.fixture(scope="module")
def small_keras(tmp_path_factory):
    keras.utils.set_random_seed(9)
    m = _seq(L.LSTM(3, return_sequences=True, name="lstm"), L.Dense(2, name="dense"))
    d = tmp_path_factory.mktemp("small")
    m.save(d / "m.keras")
    m.save(d / "m.h5")
    return d


def _rezip(src, dst, replace: dict, compress=zipfile.ZIP_STORED):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compression=compress) as zout:
        for info in zin.infolist():
            if info.filename in replace:
                if replace[info.filename] is not None:
                    zout.writestr(info.filename, replace[info.filename])
            else:
                zout.writestr(info.filename, zin.read(info.filename))


def test_not_a_model_file(tmp_path):
    p = tmp_path / "x.keras"
    p.write_bytes(b"this is not a model" * 10)
    with pytest.raises(ConversionError, match="neither"):
        import_keras(str(p))
    with pytest.raises(ConversionError, match="no such file"):
        import_keras(str(tmp_path / "missing.keras"))


def test_zip_bomb_refused(small_keras, tmp_path):
    bomb = tmp_path / "bomb.keras"
    _rezip(small_keras / "m.keras", bomb, {"model.weights.h5": b"\0" * (32 << 20)}, zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(ConversionError, match="zip bomb"):
        import_keras(str(bomb))


def test_declared_size_limit(small_keras, monkeypatch):
    monkeypatch.setattr(keras_files, "MAX_WEIGHTS_BYTES", 1000)
    with pytest.raises(ConversionError, match="declares .* bytes"):
        import_keras(str(small_keras / "m.keras"))


def test_bad_archive_members(small_keras, tmp_path):
    p = tmp_path / "a.keras"
    _rezip(small_keras / "m.keras", p, {"model.weights.h5": None})
    with pytest.raises(ConversionError, match="no model.weights.h5"):
        import_keras(str(p))
    _rezip(small_keras / "m.keras", p, {"config.json": b"{not json"})
    with pytest.raises(ConversionError, match="invalid JSON"):
        import_keras(str(p))


def _tampered_h5(small_keras, tmp_path, edit) -> str:
    p = tmp_path / "t.h5"
    p.write_bytes((small_keras / "m.h5").read_bytes())
    with h5py.File(p, "a") as f:
        cell = []
        f.visititems(lambda n, o: cell.append(n) if n.endswith("lstm_cell") else None)
        edit(f[cell[0]], tmp_path)
    return str(p)


def test_h5_shape_bomb_refused(small_keras, tmp_path):
    def edit(g, _):
        del g["bias"]
        g.create_dataset("bias", shape=(1 << 25,), dtype="f4", chunks=(1 << 16,), compression="gzip")
    with pytest.raises(ConversionError, match="shape bomb"):
        import_keras(_tampered_h5(small_keras, tmp_path, edit))


def test_h5_links_and_external_data_refused(small_keras, tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["b"] = np.zeros(12, np.float32)

    def external_link(g, _):
        del g["bias"]
        g["bias"] = h5py.ExternalLink(str(other), "b")

    def soft_link(g, _):
        del g["bias"]
        g["bias"] = h5py.SoftLink(g.name + "/kernel")

    def external_storage(g, tmp):
        del g["bias"]
        raw = tmp / "raw.bin"
        raw.write_bytes(np.zeros(12, np.float32).tobytes())
        g.create_dataset("bias", shape=(12,), dtype="f4", external=[(str(raw), 0, 48)])

    def integers(g, _):
        del g["bias"]
        g["bias"] = np.zeros(12, np.int32)

    for edit, match in [(external_link, "link"), (soft_link, "link"), (external_storage, "external files"),
                        (integers, "not floating point")]:
        with pytest.raises(ConversionError, match=match):
            import_keras(_tampered_h5(small_keras, tmp_path, edit))


def test_keras_directory_and_weights_file(small_keras, tmp_path):
    """An unzipped .keras directory, and a bare Keras 3 .weights.h5 with config=."""
    with zipfile.ZipFile(small_keras / "m.keras") as z:
        z.extractall(tmp_path / "dir.keras")
        cfg = json.loads(z.read("config.json"))
        (tmp_path / "m.weights.h5").write_bytes(z.read("model.weights.h5"))
    a = import_keras(str(small_keras / "m.keras"))
    b = import_keras(str(tmp_path / "dir.keras"))
    cfg["keras_version"] = "3.15.1"
    c = import_keras(str(tmp_path / "m.weights.h5"), config=cfg)
    inferred = import_keras(str(tmp_path / "m.weights.h5"), layers=["lstm", "dense"])
    with pytest.raises(ConversionError, match="weights-only"):
        import_keras(str(tmp_path / "m.weights.h5"))
    for net in (b, c, inferred):
        assert [l.kind for l in net.layers] == ["LSTM", "Dense"]
        for la, lb in zip(a.layers, net.layers):
            for k, v in la.arrays().items():
                np.testing.assert_array_equal(v, lb.arrays()[k])


def test_weights_without_layer_name_attributes(zoo, tmp_path):
    """Older Keras 3 files have no ``name`` attribute on ``vars``: keys are matched by class order."""
    src = zoo["stack"]["paths"]["keras"]
    with zipfile.ZipFile(src) as z:
        (tmp_path / "w.h5").write_bytes(z.read("model.weights.h5"))
        config = z.read("config.json")
    with h5py.File(tmp_path / "w.h5", "a") as f:
        groups = []
        f.visititems(lambda n, o: groups.append(o) if isinstance(o, h5py.Group) and "name" in o.attrs else None)
        for g in groups:
            del g.attrs["name"]
    p = tmp_path / "old.keras"
    _rezip(src, p, {"model.weights.h5": (tmp_path / "w.h5").read_bytes(), "config.json": config})
    a, b = import_keras(str(src)), import_keras(str(p))
    assert [l.name for l in a.layers] == [l.name for l in b.layers]
    for la, lb in zip(a.layers, b.layers):
        for k, v in la.arrays().items():
            np.testing.assert_array_equal(v, lb.arrays()[k])
