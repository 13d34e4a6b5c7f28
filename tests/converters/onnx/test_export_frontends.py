"""ONNX export of the front-end and plumbing units (Embedding, Conv1d, causal TimeConv1d,
LayerNorm, Rearrange, Reduce, Elementwise, Binary, Concat): onnxruntime running the exported
model one frame per call with the state outputs fed back equals streamlstm's Session.step, and
over a whole sequence equals Model.run."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import pytest

import streamlstm as sl
from streamlstm.converters.onnx import export_onnx, state_names
from streamlstm.tools.zoo import zoo_network

from support.onnx_cases import ort_session
from support.unit_checks import uniform

TOL = 1e-5
STEPS = 40


def _gru(rng, I, H, rnn=True):
    if not rnn:  # onnxruntime's recurrent ops take float32 only: float64 cases use a Dense
        return sl.Dense(uniform(rng, H, I, fan=I), uniform(rng, H, fan=I), activation="Tanh")
    return sl.GRU(uniform(rng, 1, 3 * H, I, fan=H), uniform(rng, 1, 3 * H, H, fan=H),
                  uniform(rng, 1, 3 * H, fan=H), uniform(rng, 1, 3 * H, fan=H))


def _tconv(rng, Ci, Co, k, dilation=1, groups=1, act="Relu", padding=None):
    return sl.TimeConv1d(uniform(rng, Co, Ci // groups, k, fan=Ci * k), uniform(rng, Co, fan=Ci * k),
                         dilation=dilation, groups=groups, activation=act, padding=padding)


def _net(case: str, rnn: bool = True) -> tuple[sl.Network, bool]:
    """(network, whether its input is token ids); ``rnn`` False replaces its GRUs by Dense layers."""
    rng = np.random.default_rng(len(case))
    if case == "embedding":
        return sl.Network([sl.Embedding(rng.normal(size=(13, 4))), _gru(rng, 4, 5, rnn),
                           sl.Dense(uniform(rng, 3, 5, fan=5), activation="Softmax")]), True
    if case == "tconv":
        return sl.Network([_tconv(rng, 3, 6, 3), _tconv(rng, 6, 6, 2, dilation=3, groups=3, act="Tanh"),
                           _tconv(rng, 6, 4, 1, act="Identity"), _gru(rng, 4, 5, rnn)]), False
    if case == "conv1d":
        convs = [sl.Conv1d(uniform(rng, 4, 2, 3, fan=6), uniform(rng, 4, fan=6), length=9, padding=(1, 1),
                           activation="Relu"),
                 sl.Conv1d(uniform(rng, 4, 1, 3, fan=3), None, length=9, stride=2, padding=(2, 1),
                           pad_mode="reflect", groups=4),
                 sl.Conv1d(uniform(rng, 2, 4, 2, fan=8), uniform(rng, 2, fan=8), length=5, dilation=2,
                           padding=(1, 1), pad_mode="edge")]
        return sl.Network(convs + [_gru(rng, 2 * 5, 3, rnn)]), False
    if case == "layernorm":
        return sl.Network([sl.LayerNorm(rng.normal(size=4), rng.normal(size=4), eps=1e-3), _gru(rng, 8, 5, rnn),
                           sl.LayerNorm(rng.normal(size=5))], input_size=8), False
    if case == "plumbing":
        # input 6: [0] abs, [1] (|x| + c), [2] x * [1], [3] a Rearrange with zeros, [4] Reduce mean,
        # [5] Reduce max of the input, [6] Concat of 3-5, [7] GRU, [8] c - [7], [9] max of 7 and 8,
        # then exp, c / x, square, sqrt
        I = 6
        rear = np.array([5, -1, 0, 2, 2, -1, 1, 3])
        red_mean = np.array([[0, 1, -1], [2, 3, 4], [5, -1, -1]])
        red_max = np.array([[0, 5, -1], [1, 2, 3]])
        layers = [sl.Elementwise("abs"),
                  sl.Elementwise("add", rng.uniform(0.5, 1.0, I)),
                  sl.Binary("mul"),
                  sl.Rearrange(rear),
                  sl.Reduce(red_mean, "mean"),
                  sl.Reduce(red_max, "max"),
                  sl.Concat(),
                  _gru(rng, 8 + 3 + 2, 4, rnn),
                  sl.Elementwise("sub_from", rng.normal(size=4)),
                  sl.Binary("max"),
                  sl.Elementwise("exp"),
                  sl.Elementwise("div_into", rng.uniform(1.0, 2.0, 4)),
                  sl.Elementwise("square"),
                  sl.Elementwise("sqrt")]
        sources = [[-1], [0], [-1, 1], [2], [2], [-1], [3, 4, 5], [6], [7], [7, 8], [9], [10], [11], [12]]
        return sl.Network(layers, input_size=I, sources=sources), False
    if case == "crnn":
        return zoo_network("crnn"), False
    if case == "tagger":
        return zoo_network("tagger"), True
    raise KeyError(case)


CASES = ["embedding", "tconv", "conv1d", "layernorm", "plumbing", "crnn", "tagger"]


def _frames(net: sl.Network, ids: bool, T: int, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if ids:
        return rng.integers(0, net.layers[0].vocabulary, size=(T, 1))
    return rng.normal(size=(T, net.input_size))


@pytest.mark.parametrize("case,dtype", [(c, "float32") for c in CASES] +
                         [(c, "float64") for c in ("embedding", "layernorm", "plumbing")])
def test_exported_model_streams_like_streamlstm(case, dtype):
    net, ids = _net(case, rnn=dtype == "float32")
    model = sl.Model(net, dtype)
    exported = model.to_onnx()
    onnx.checker.check_model(exported, full_check=True)
    sess = ort_session(exported)
    x_in = next(i for i in sess.get_inputs() if i.name == "x")
    assert x_in.type == ("tensor(int64)" if ids else {"float32": "tensor(float)", "float64": "tensor(double)"}[dtype])
    X = _frames(net, ids, STEPS)
    feed_x = X.astype(np.int64) if ids else X.astype(dtype)
    states = {i: np.zeros(shape, dtype) for i, _, shape in state_names(net)}
    outs = [o.name for o in sess.get_outputs()]
    assert sorted(outs[1:]) == sorted(o for _, o, _ in state_names(net))
    s = model.session()
    mine, theirs = [], []
    for t in range(STEPS):
        res = dict(zip(outs, sess.run(outs, {"x": feed_x[t:t + 1], **states})))
        theirs.append(res["y"][0])
        states = {i: res[o] for i, o, _ in state_names(net)}
        mine.append(s.step(int(X[t, 0]) if ids else X[t].astype(dtype)))
    np.testing.assert_allclose(np.array(theirs), np.array(mine), atol=TOL)
    # the state onnxruntime carries is the state streamlstm carries (same values, its own layout)
    np.testing.assert_allclose(sess.run(["y"], {"x": feed_x, **{i: np.zeros(sh, dtype) for i, _, sh in
                                                                state_names(net)}})[0],
                               model.run(X if not ids else X[:, 0]), atol=TOL)


def test_time_conv_state_is_the_past_inputs():
    rng = np.random.default_rng(3)
    layer = _tconv(rng, 2, 3, 3, dilation=2, act="Identity")
    net = sl.Network([layer])
    assert state_names(net) == [("t_in_0", "t_out_0", (1, 2, 4))]
    sess = ort_session(export_onnx(net))
    X = rng.normal(size=(6, 2)).astype(np.float32)
    past = sess.run(["t_out_0"], {"x": X, "t_in_0": np.zeros((1, 2, 4), np.float32)})[0]
    np.testing.assert_array_equal(past[0], X[-4:].T)


def test_non_causal_time_conv_exports_for_whole_sequences():
    rng = np.random.default_rng(4)
    net = sl.Network([_tconv(rng, 3, 2, 3, padding=(1, 1), act="Identity")])
    model = sl.Model(net, "float32")
    sess = ort_session(model.to_onnx())
    X = rng.normal(size=(10, 3)).astype(np.float32)
    y = sess.run(["y"], {"x": X, "t_in_0": np.zeros((1, 3, 1), np.float32)})[0]
    np.testing.assert_allclose(y, model.run(X), atol=TOL)


def test_out_of_range_token_is_refused_by_onnxruntime_too():
    net, _ = _net("embedding")
    sess = ort_session(export_onnx(net))
    feeds = {i: np.zeros(shape, np.float32) for i, _, shape in state_names(net)}
    with pytest.raises(Exception, match="(?i)indices|out of bounds|range"):
        sess.run(["y"], {"x": np.array([[13]], np.int64), **feeds})


def test_whole_silero_vad_exports_and_streams_in_onnxruntime():
    """The imported Silero VAD (Rearrange, STFT Conv1d, magnitude, convs, LSTM, head) exported
    again: onnxruntime stepping the export with its state fed back equals streamlstm."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or spec.origin is None:
        pytest.fail("the silero-vad package is not installed: pip install --no-deps silero-vad")
    path = Path(spec.origin).parent / "data" / "silero_vad_16k_op15.onnx"
    model = sl.load(path, constants={"sr": 16000}, dims={"sequence": 576})
    sess = ort_session(model.to_onnx())
    names = state_names(model.network)
    states = {i: np.zeros(shape, np.float32) for i, _, shape in names}
    outs = [o.name for o in sess.get_outputs()]
    s = model.session()
    X = np.random.default_rng(0).standard_normal((100, 576)).astype(np.float32) * 0.1
    for x in X:
        res = dict(zip(outs, sess.run(outs, {"x": x[None], **states})))
        states = {i: res[o] for i, o, _ in names}
        np.testing.assert_allclose(res["y"][0], s.step(x), atol=TOL)
