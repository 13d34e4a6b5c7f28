"""Pins the float64 reference (tests/reference.py) to onnxruntime's LSTM/GRU/RNN semantics.

Each case builds one ONNX node with onnx.helper (float32, opset 14), runs it with onnxruntime and
compares Y, Y_h (and Y_c) with ``reference_run`` on the same float32-rounded weights. Some cases
also assert that a plausible *wrong* semantics would be caught (clip, input_forget, peepholes,
the alpha/beta packing), so the comparison really discriminates.
"""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from support.reference import reference_run
from streamlstm.network import GRU, LSTM, RNN, RNN_ACTIVATIONS, Network, act

TOL = 1e-5
ACTS = list(RNN_ACTIVATIONS)
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
NACTS = {"LSTM": 3, "GRU": 2, "RNN": 1}
DEFAULT_ACTS = {"LSTM": ("Sigmoid", "Tanh", "Tanh"), "GRU": ("Sigmoid", "Tanh"), "RNN": ("Tanh",)}
# Which activations take alpha / beta in onnxruntime (it consumes the attribute lists only for these).
USES = {"Affine": (1, 1), "LeakyRelu": (1, 0), "ThresholdedRelu": (1, 0), "ScaledTanh": (1, 1),
        "HardSigmoid": (1, 1), "Elu": (1, 0)}
RANGES = {"Affine": ((0.5, 1.5), (-0.5, 0.5)), "LeakyRelu": ((0.01, 0.3), None),
          "ThresholdedRelu": ((0.1, 0.8), None), "ScaledTanh": ((0.5, 1.5), (0.5, 1.5)),
          "HardSigmoid": ((0.1, 0.5), (0.3, 0.7)), "Elu": ((0.5, 1.5), None)}


def f32(a):
    return None if a is None else np.asarray(a, dtype=np.float32).astype(np.float64)


def random_act(name: str, rng) -> object:
    r = RANGES.get(name)
    if r is None:
        return act(name)
    alpha = rng.uniform(*r[0])
    beta = rng.uniform(*r[1]) if r[1] else None
    return act(name, float(np.float32(alpha)), None if beta is None else float(np.float32(beta)))


def onnx_attrs(acts) -> dict:
    """ONNX attributes for a list of Act, alpha/beta packed the way onnxruntime reads them."""
    alphas, betas = [], []
    for a in acts:
        ua, ub = USES.get(a.name, (0, 0))
        if ua:
            alphas.append(a.alpha)
        if ub:
            betas.append(a.beta)
    attrs = {"activations": [a.name for a in acts]}
    if alphas:
        attrs["activation_alpha"] = alphas
    if betas:
        attrs["activation_beta"] = betas
    return attrs


def run_ort(op: str, X, layer, extra_attrs: dict | None = None, acts_attr: dict | None = None):
    """Run one ONNX node equivalent to ``layer`` on X (T, I); returns (Y (T, D, H), Y_h, Y_c)."""
    T, I = X.shape
    D, H = layer.num_directions, layer.hidden_size
    inits = [numpy_helper.from_array(layer.W.astype(np.float32), "W"),
             numpy_helper.from_array(layer.R.astype(np.float32), "R")]
    names = ["X", "W", "R"]

    def add(name, arr):
        if arr is None:
            names.append("")
        else:
            inits.append(numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name))
            names.append(name)

    G = GATES[op] * H
    B = None
    if layer.Wb is not None or layer.Rb is not None:
        B = np.concatenate([layer.Wb if layer.Wb is not None else np.zeros((D, G)),
                            layer.Rb if layer.Rb is not None else np.zeros((D, G))], axis=1)
    add("B", B)
    names.append("")  # sequence_lens
    add("initial_h", None if layer.initial_h is None else layer.initial_h[:, None, :])
    if op == "LSTM":
        add("initial_c", None if layer.initial_c is None else layer.initial_c[:, None, :])
        add("P", layer.P)
    while names[-1] == "":
        names.pop()
    outs = ["Y", "Y_h"] + (["Y_c"] if op == "LSTM" else [])
    attrs = dict(hidden_size=H, direction=layer.direction)
    attrs.update(acts_attr if acts_attr is not None else onnx_attrs(layer.activations))
    if layer.clip is not None:
        attrs["clip"] = layer.clip
    if op == "LSTM" and layer.input_forget:
        attrs["input_forget"] = 1
    if op == "GRU":
        attrs["linear_before_reset"] = int(layer.linear_before_reset)
    attrs.update(extra_attrs or {})
    node = helper.make_node(op, names, outs, **attrs)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [T, 1, I])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, [T, D, 1, H] if o == "Y" else [D, 1, H])
         for o in outs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    res = sess.run(None, {"X": X[:, None, :].astype(np.float32)})
    Y = res[0][:, :, 0, :].astype(np.float64)
    Yh = res[1][:, 0, :].astype(np.float64)
    Yc = res[2][:, 0, :].astype(np.float64) if op == "LSTM" else None
    return Y, Yh, Yc


def make_layer(op: str, rng, *, I=3, H=4, direction="forward", acts=None, clip=None, bias=True,
               peep=False, input_forget=False, init=False, lbr=False, wscale=1.0):
    D = 2 if direction == "bidirectional" else 1
    G = GATES[op] * H
    W = f32(rng.normal(size=(D, G, I)) * wscale / np.sqrt(I))
    R = f32(rng.normal(size=(D, G, H)) * wscale / np.sqrt(H))
    kw = dict(W=W, R=R, direction=direction, clip=clip, activations=acts)
    if bias:
        kw["Wb"] = f32(rng.normal(size=(D, G)) * 0.3)
        kw["Rb"] = f32(rng.normal(size=(D, G)) * 0.3)
    if init:
        kw["initial_h"] = f32(rng.normal(size=(D, H)) * 0.5)
        if op == "LSTM":
            kw["initial_c"] = f32(rng.normal(size=(D, H)) * 0.5)
    if op == "LSTM":
        if peep:
            kw["P"] = f32(rng.normal(size=(D, 3 * H)) * 0.5)
        kw["input_forget"] = input_forget
        return LSTM(**kw)
    if op == "GRU":
        return GRU(linear_before_reset=lbr, **kw)
    return RNN(**kw)


def compare(op: str, layer, X, **kw) -> float:
    """Max difference between onnxruntime and the reference (Y, Y_h, Y_c); asserts <= TOL."""
    Y, Yh, Yc = run_ort(op, X, layer, **kw)
    Yr, st = reference_run(Network([layer]), X)
    D, H = layer.num_directions, layer.hidden_size
    Yo = Y[:, 0, :] if D == 1 else np.concatenate([Y[:, 0, :], Y[:, 1, :]], axis=1)
    pairs = [(Yo, Yr), (Yh, st[0]["h"])] + ([(Yc, st[0]["c"])] if op == "LSTM" else [])
    # absolute error for O(1) values; the cell state can reach ~40 (Softplus gates), then relative
    err = max(np.abs(a - r).max() / max(1.0, np.abs(r).max()) for a, r in pairs)
    assert np.all(np.isfinite(Yr))
    assert err <= TOL, f"{op}: max error {err:.3g} vs onnxruntime"
    return err


def acts_cases(op: str):
    """Every activation in every position of `op`, others at their defaults."""
    for pos in range(NACTS[op]):
        for name in ACTS:
            yield pytest.param(pos, name, id=f"{op}-pos{pos}-{name}")


def _wscale(pos: int, name: str) -> float:
    """Smaller weights when a gate activation leaves [0, 1], so the state stays O(1) in float32."""
    return 0.3 if pos == 0 and name not in ("Sigmoid", "HardSigmoid") else 0.7


def _acts_for(op, pos, name, rng, D=1):
    out = []
    for _ in range(D):
        acts = [act(a) for a in DEFAULT_ACTS[op]]
        acts[pos] = random_act(name, rng)
        out.extend(acts)
    return out


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("init", [False, True])
def test_directions_and_initial_states(op, direction, init):
    rng = np.random.default_rng(zlib.crc32(f"{op}-{direction}-{init}".encode()))
    layer = make_layer(op, rng, direction=direction, init=init)
    compare(op, layer, rng.normal(size=(17, 3)))


@pytest.mark.parametrize("pos,name", [p for op in ("LSTM",) for p in acts_cases(op)])
def test_lstm_activations(pos, name):
    rng = np.random.default_rng(100 + 11 * pos + ACTS.index(name))
    acts = _acts_for("LSTM", pos, name, rng, D=2)
    layer = make_layer("LSTM", rng, direction="bidirectional", acts=acts, init=True,
                       wscale=_wscale(pos, name))
    compare("LSTM", layer, rng.normal(size=(15, 3)))


@pytest.mark.parametrize("lbr", [False, True])
@pytest.mark.parametrize("pos,name", list(acts_cases("GRU")))
def test_gru_activations(pos, name, lbr):
    rng = np.random.default_rng(200 + 11 * pos + ACTS.index(name) + 50 * lbr)
    acts = _acts_for("GRU", pos, name, rng)
    layer = make_layer("GRU", rng, acts=acts, init=True, lbr=lbr, wscale=_wscale(pos, name))
    compare("GRU", layer, rng.normal(size=(15, 3)))


@pytest.mark.parametrize("pos,name", list(acts_cases("RNN")))
def test_rnn_activations(pos, name):
    rng = np.random.default_rng(300 + ACTS.index(name))
    acts = _acts_for("RNN", pos, name, rng, D=2)
    layer = make_layer("RNN", rng, direction="bidirectional", acts=acts, init=True, wscale=0.5)
    compare("RNN", layer, rng.normal(size=(15, 3)))


@pytest.mark.parametrize("peep", [False, True])
@pytest.mark.parametrize("input_forget", [False, True])
@pytest.mark.parametrize("clip", [None, 0.6])
@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_lstm_clip_input_forget_peepholes(peep, input_forget, clip, direction):
    rng = np.random.default_rng(400 + 8 * peep + 4 * input_forget + 2 * (clip is not None)
                                + (direction != "forward"))
    layer = make_layer("LSTM", rng, direction=direction, clip=clip, peep=peep,
                       input_forget=input_forget, init=True, wscale=2.5 if clip else 1.0)
    compare("LSTM", layer, rng.normal(size=(19, 3)))


@pytest.mark.parametrize("op,lbr", [("GRU", False), ("GRU", True), ("RNN", False)])
def test_clip_gru_rnn(op, lbr):
    rng = np.random.default_rng(500 + lbr + (op == "RNN") * 2)
    layer = make_layer(op, rng, clip=0.5, lbr=lbr, init=True, wscale=3.0)
    X = rng.normal(size=(19, 3))
    compare(op, layer, X)
    layer = dataclasses.replace(layer, clip=None)
    with pytest.raises(AssertionError):  # the clip really changed the result
        compare(op, layer, X, extra_attrs={"clip": 0.5})


def test_clip_applies_to_gate_preactivations_including_peepholes():
    """Clip acts after adding biases and peephole terms, on every gate (also the cell candidate)."""
    rng = np.random.default_rng(7)
    layer = make_layer("LSTM", rng, clip=0.4, peep=True, init=True, wscale=3.0)
    X = rng.normal(size=(12, 3))
    compare("LSTM", layer, X)
    layer = dataclasses.replace(layer, clip=None)
    with pytest.raises(AssertionError):
        compare("LSTM", layer, X, extra_attrs={"clip": 0.4})


def test_input_forget_means_f_equals_one_minus_i():
    rng = np.random.default_rng(8)
    layer = make_layer("LSTM", rng, input_forget=True, peep=True, init=True)
    X = rng.normal(size=(12, 3))
    compare("LSTM", layer, X)
    layer = dataclasses.replace(layer, input_forget=False)  # the forget weights would be used instead: must differ
    with pytest.raises(AssertionError):
        compare("LSTM", layer, X, extra_attrs={"input_forget": 1})


def test_peephole_of_output_gate_uses_new_cell():
    """o uses c_t, i and f use c_{t-1}: swapping to c_{t-1} for o is detectably wrong."""
    rng = np.random.default_rng(9)
    layer = make_layer("LSTM", rng, peep=True, init=True)
    H = layer.hidden_size
    P = layer.P.copy()
    P[:, :H] = 0.0
    P[:, 2 * H:] = 0.0  # only the output-gate peephole
    layer = dataclasses.replace(layer, P=P)
    X = rng.normal(size=(12, 3))
    Y, _, _ = run_ort("LSTM", X, layer)
    Yr, _ = reference_run(Network([layer]), X)
    assert np.abs(Y[:, 0] - Yr).max() <= TOL
    # Same model with o looking at c_{t-1}: computed by hand, must not match onnxruntime.
    h, c = layer.initial_h[0].copy(), layer.initial_c[0].copy()
    wrong = []
    for x in X:
        z = layer.W[0] @ x + layer.R[0] @ h + layer.Wb[0] + layer.Rb[0]
        sig = lambda v: 1 / (1 + np.exp(-v))
        i, f = sig(z[:H]), sig(z[2 * H:3 * H])
        o = sig(z[H:2 * H] + layer.P[0, H:2 * H] * c)
        c = f * c + i * np.tanh(z[3 * H:])
        h = o * np.tanh(c)
        wrong.append(h)
    assert np.abs(Y[:, 0] - np.array(wrong)).max() > 1e-3


def test_alpha_beta_lists_hold_only_the_functions_that_use_them():
    """onnxruntime consumes activation_alpha/beta only for activations that take them."""
    rng = np.random.default_rng(10)
    acts = [act("Sigmoid"), act("Affine", 2.0, 0.25), act("ScaledTanh", 0.75, 1.5)]
    layer = make_layer("LSTM", rng, acts=acts)
    X = rng.normal(size=(9, 3))
    compare("LSTM", layer, X, acts_attr={"activations": ["Sigmoid", "Affine", "ScaledTanh"],
                                         "activation_alpha": [2.0, 0.75],
                                         "activation_beta": [0.25, 1.5]})
    with pytest.raises(AssertionError):  # one entry per activation is NOT what onnxruntime reads
        compare("LSTM", layer, X, acts_attr={"activations": ["Sigmoid", "Affine", "ScaledTanh"],
                                             "activation_alpha": [9.0, 2.0, 0.75],
                                             "activation_beta": [9.0, 0.25, 1.5]})


def test_onnxruntime_defaults_when_alpha_beta_missing():
    """Missing alpha/beta: LeakyRelu 0.01, HardSigmoid (0.2, 0.5), Elu 1.0, but Affine,
    ScaledTanh and ThresholdedRelu get 0 in onnxruntime (not the ONNX operators' defaults)."""
    rng = np.random.default_rng(11)
    X = rng.normal(size=(9, 3))
    cases = {"LeakyRelu": act("LeakyRelu", 0.01), "HardSigmoid": act("HardSigmoid", 0.2, 0.5),
             "Elu": act("Elu", 1.0), "Affine": act("Affine", 0.0, 0.0),
             "ScaledTanh": act("ScaledTanh", 0.0, 0.0), "ThresholdedRelu": act("ThresholdedRelu", 0.0)}
    for name, a in cases.items():
        layer = make_layer("RNN", rng, acts=[a], init=True)
        compare("RNN", layer, X, acts_attr={"activations": [name]})
