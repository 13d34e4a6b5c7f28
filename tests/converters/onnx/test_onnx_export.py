"""ONNX export: round trips through import_onnx, and onnxruntime running the exported model
over whole sequences and one frame per call with the state fed back (500 steps)."""

from __future__ import annotations

import os
import sys

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import streamlstm as sl
from streamlstm.converters.onnx import export_onnx, import_onnx, state_names

from support.onnx_cases import ACT_PARAMS, BOUNDED, ort_session

TOL = 1e-5
STEPS = 500


def _act(rng, pool):
    name = str(rng.choice(pool))
    pa, pb = ACT_PARAMS.get(name, (None, None))
    return sl.act(name, float(rng.uniform(*pa)) if pa else None, float(rng.uniform(*pb)) if pb else None)


def _u(rng, *shape, s=0.5):
    return rng.uniform(-s, s, shape)


def random_network(seed: int, *, streamable: bool) -> sl.Network:
    """A stack exercising every layer kind and attribute the exporter writes."""
    rng = np.random.default_rng(seed)
    I = int(rng.integers(1, 6))
    layers, width = [], I
    if seed % 4 == 1:
        layers.append(sl.Activation(_act(rng, ["Tanh", "Softsign", "Affine"])))
    if seed % 3 == 2:
        O = int(rng.integers(2, 6))
        layers.append(sl.Dense(_u(rng, O, width), _u(rng, O), _act(rng, ["Identity", "Relu", "Elu"])))
        width = O
    for k in range(int(rng.integers(1, 4))):
        kind = ["LSTM", "GRU", "RNN"][(seed + k) % 3]
        direction = "forward" if streamable else str(rng.choice(["forward", "reverse", "bidirectional"]))
        D = 2 if direction == "bidirectional" else 1
        H = int(rng.integers(1, 7))
        G = {"LSTM": 4, "GRU": 3, "RNN": 1}[kind]
        n = {"LSTM": 3, "GRU": 2, "RNN": 1}[kind]
        acts = None
        if rng.random() < 0.7:
            acts = [_act(rng, BOUNDED if (j == 0 and kind != "RNN") or streamable else list(ACT_PARAMS))
                    for _ in range(D) for j in range(n)]
        kw = dict(W=_u(rng, D, G * H, width, s=0.8 / np.sqrt(H)), R=_u(rng, D, G * H, H, s=0.8 / np.sqrt(H)),
                  Wb=_u(rng, D, G * H) if rng.random() < 0.8 else None,
                  Rb=_u(rng, D, G * H) if rng.random() < 0.8 else None,
                  activations=acts, clip=float(rng.uniform(0.5, 3)) if rng.random() < 0.3 else None,
                  direction=direction, initial_h=_u(rng, D, H) if rng.random() < 0.4 else None,
                  merge=str(rng.choice(["concat", "sum", "mul", "ave"])) if D == 2 else "concat")
        if kind == "LSTM":
            layer = sl.LSTM(**kw, P=_u(rng, D, 3 * H) if rng.random() < 0.5 else None,
                            input_forget=bool(rng.random() < 0.3),
                            initial_c=_u(rng, D, H) if rng.random() < 0.4 else None)
        elif kind == "GRU":
            layer = sl.GRU(**kw, linear_before_reset=bool(rng.random() < 0.5))
        else:
            layer = sl.RNN(**kw)
        layers.append(layer)
        width = layer.output_size
    O = int(rng.integers(1, 5))
    head = ["Identity", "Tanh", "Sigmoid", "LeakyRelu", "HardSigmoid", "Softplus", "ThresholdedRelu",
            "ScaledTanh", "Softmax"][seed % 9]
    layers.append(sl.Dense(_u(rng, O, width), _u(rng, O) if seed % 2 else None, _act(rng, [head])))
    if seed % 5 == 0:
        layers.append(sl.Activation(_act(rng, ["Relu", "Softmax", "Sigmoid"])))
    return sl.Network(layers, input_size=I)


SEEDS = list(range(18))


def _feeds_for_state(model_proto, net, dtype):
    inits = {t.name: numpy_helper.to_array(t) for t in model_proto.graph.initializer}
    return {i: inits.get(i, np.zeros(shape, dtype)) for i, _, shape in state_names(net)}


@pytest.mark.parametrize("seed", SEEDS)
def test_round_trip_and_onnxruntime_whole_sequence(seed):
    net = random_network(seed, streamable=False)
    model = sl.Model(net)
    proto = model.to_onnx()
    X = np.random.default_rng(seed).uniform(-1.5, 1.5, (15, net.input_size)).astype(np.float32)
    ours = model.run(X)
    back = sl.load(proto)
    assert back.network.output_size == net.output_size
    assert np.max(np.abs(back.run(X) - ours)) <= 1e-6
    feeds = {"x": X, **_feeds_for_state(proto, net, np.float32)}
    y = ort_session(proto).run(["y"], feeds)[0]
    assert np.max(np.abs(y - ours)) <= TOL
    # float64 round trip: weights exact; activation alpha/beta and clip are float32 attributes in ONNX
    m64 = sl.Model(net, dtype="float64")
    back64 = sl.load(m64.to_onnx(), dtype="float64")
    assert np.max(np.abs(back64.run(X) - m64.run(X))) <= 1e-7


@pytest.mark.parametrize("seed", SEEDS[:8])
def test_onnxruntime_steps_exported_model_frame_by_frame(seed):
    net = random_network(seed, streamable=True)
    model = sl.Model(net)
    proto = model.to_onnx()
    sess = ort_session(proto)
    names = [o.name for o in sess.get_outputs()]
    st = _feeds_for_state(proto, net, np.float32)
    X = np.random.default_rng(seed).uniform(-1.5, 1.5, (STEPS, net.input_size)).astype(np.float32)
    s = model.session()
    err = 0.0
    for x in X:
        out = dict(zip(names, sess.run(None, {"x": x[None], **st})))
        st = {i: out[o] for i, o, _ in state_names(net)}
        err = max(err, float(np.max(np.abs(out["y"][0] - s.step(x)))))
    assert err <= TOL


def test_round_trip_is_structural():
    """Export then import gives back the same layers and arrays (state ports recognised)."""
    rng = np.random.default_rng(0)
    net = sl.Network([
        sl.LSTM(_u(rng, 2, 12, 3), _u(rng, 2, 12, 3), _u(rng, 2, 12), _u(rng, 2, 12), P=_u(rng, 2, 9),
                activations=[sl.act("HardSigmoid", 0.25, 0.5), sl.act("Elu", 0.5), sl.act("Softsign")] * 2,
                clip=2.0, input_forget=True, direction="bidirectional", merge="ave",
                initial_h=_u(rng, 2, 3), initial_c=_u(rng, 2, 3)),
        sl.GRU(_u(rng, 1, 6, 3), _u(rng, 1, 6, 2), linear_before_reset=True),
        sl.RNN(_u(rng, 1, 4, 2), _u(rng, 1, 4, 4), direction="reverse",
               activations=[sl.act("LeakyRelu", 0.125)]),
        sl.Dense(_u(rng, 2, 4), _u(rng, 2), "Softmax"),
    ], input_size=3)
    back = import_onnx(export_onnx(net, dtype="float64"))
    assert [l.kind for l in back.layers] == [l.kind for l in net.layers]
    for a, b in zip(net.layers, back.layers):
        for k, v in a.arrays().items():
            np.testing.assert_allclose(b.arrays()[k], v, atol=1e-15, err_msg=f"{a.label}.{k}")
        for attr in ("direction", "merge", "clip", "input_forget", "linear_before_reset", "activations",
                     "activation"):
            assert getattr(a, attr, None) == getattr(b, attr, None), attr


def test_exported_float64_matches_onnx_reference():
    rng = np.random.default_rng(3)
    net = sl.Network([sl.LSTM(_u(rng, 1, 16, 2), _u(rng, 1, 16, 4), _u(rng, 1, 16), _u(rng, 1, 16),
                              P=_u(rng, 1, 12)),
                      sl.GRU(_u(rng, 2, 9, 4), _u(rng, 2, 9, 3), direction="bidirectional"),
                      sl.Dense(_u(rng, 2, 6), _u(rng, 2))], input_size=2)
    model = sl.Model(net, dtype="float64")
    proto = model.to_onnx()
    from onnx.reference import ReferenceEvaluator
    X = rng.uniform(-1, 1, (12, 2))
    feeds = {"x": X, **_feeds_for_state(proto, net, np.float64)}
    y = ReferenceEvaluator(proto).run(["y"], feeds)[0]
    assert np.max(np.abs(y - model.run(X))) <= 1e-12


def test_export_writes_path_and_learned_state_is_the_default(tmp_path):
    rng = np.random.default_rng(1)
    net = sl.Network([sl.GRU(_u(rng, 1, 9, 2), _u(rng, 1, 9, 3), initial_h=_u(rng, 1, 3)),
                      sl.Dense(_u(rng, 1, 3))], input_size=2)
    model = sl.Model(net)
    path = tmp_path / "m.onnx"
    proto = model.to_onnx(path)
    assert onnx.load(path) == proto
    X = rng.uniform(-1, 1, (9, 2)).astype(np.float32)
    # not feeding h_in_0: onnxruntime starts from the learned initial state, as the session does
    y = ort_session(proto).run(["y"], {"x": X})[0]
    assert np.max(np.abs(y - model.run(X))) <= TOL
    np.testing.assert_allclose(sl.load(path).network.layers[0].initial_h, net.layers[0].initial_h, atol=1e-7)


def test_export_refuses_what_onnx_cannot_express():
    rng = np.random.default_rng(0)
    net = sl.Network([sl.LSTM(_u(rng, 1, 8, 2), _u(rng, 1, 8, 1), proj=_u(rng, 1, 1, 2))], input_size=2)
    with pytest.raises(sl.ConversionError, match="projection"):
        export_onnx(net)
    with pytest.raises(sl.ConversionError, match="dtype"):
        export_onnx(net, dtype="int8")
