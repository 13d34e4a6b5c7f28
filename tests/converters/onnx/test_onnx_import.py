"""ONNX import against onnxruntime (and onnx.reference where onnxruntime lacks layout=1/double).

A seeded random matrix over every recurrent attribute is compared (a) over whole sequences and
(b) streamed one frame per call against onnxruntime stepped with the state fed back (500 steps).
Then: constant-folded weights, state ports, plumbing and heads, direction handling, PyTorch
exports, sub-graph import, error messages.
"""

from __future__ import annotations

import io
import os
import sys
import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import streamlstm as sl
from streamlstm.converters.onnx import import_onnx, tensor_names
from support.onnx_cases import (ACT_PARAMS, Case, ort_session, random_case,
                        recurrent_model, run_ort, run_reference, step_ort, y_as_frames)

TOL = 1e-5
SEQ_SEEDS = list(range(36))
STREAM_SEEDS = list(range(12))
STEPS = 500


def _x(rng, T, I, dtype=np.float32):
    return rng.uniform(-1.5, 1.5, (T, I)).astype(dtype)


def _feed(X, layout=0):
    return X[:, None, :] if layout == 0 else X[None, :, :]


def _err(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


# ---------------------------------------------------------------- the attribute matrix
def test_matrix_covers_every_attribute():
    cases = [random_case(s) for s in SEQ_SEEDS] + [random_case(s, streamable=True) for s in STREAM_SEEDS]
    acts = {a[0] for c in cases if c.acts for a in c.acts}
    assert acts == set(ACT_PARAMS)
    assert {(c.op, c.direction) for c in cases} >= {(o, d) for o in ("LSTM", "GRU", "RNN")
                                                     for d in ("forward", "reverse", "bidirectional")}
    for flag in ("input_forget", "linear_before_reset", "peepholes", "learned_init"):
        assert any(getattr(c, flag) for c in cases) and not all(getattr(c, flag) for c in cases)
    assert any(c.clip for c in cases) and any(c.clip is None for c in cases)
    assert any(not c.bias for c in cases) and any(c.default_acts for c in cases)


@pytest.mark.parametrize("seed", SEQ_SEEDS)
def test_matrix_whole_sequence(seed):
    """Layout 0 float32 vs onnxruntime; layout 1 and float64 vs onnxruntime on the layout-0 float32 twin."""
    c = random_case(seed)
    rng = np.random.default_rng(seed)
    X = _x(rng, 13, c.I)
    opset = [7, 14, 22][seed % 3]
    truth = y_as_frames(run_ort(recurrent_model(c, opset=opset), {"X": _feed(X)})[0], 0)
    assert _err(sl.load(recurrent_model(c, opset=opset)).run(X), truth) <= TOL
    m1 = recurrent_model(c, layout=1, opset=max(opset, 14))
    assert _err(sl.load(m1).run(X), truth) <= TOL
    m64 = recurrent_model(c, layout=seed % 2, dtype=np.float64, opset=max(opset, 14))
    assert _err(sl.load(m64, dtype="float64").run(X.astype(np.float64)), truth) <= TOL


@pytest.mark.parametrize("seed", STREAM_SEEDS)
def test_matrix_streamed_500_steps(seed):
    """State-port models: streamlstm session vs onnxruntime stepped with Y_h/Y_c fed back."""
    c = random_case(seed, streamable=True)
    m = recurrent_model(c, ports=True, opset=[14, 22][seed % 2])
    X = _x(np.random.default_rng(seed), STEPS, c.I)
    truth = step_ort(m, X, c)
    model = sl.load(m)
    s = model.session()
    ys = np.array([s.step(x) for x in X])
    assert _err(ys, truth) <= TOL
    whole = y_as_frames(run_ort(m, {"X": _feed(X), "h0": np.zeros((1, 1, c.H), np.float32),
                                    **({"c0": np.zeros((1, 1, c.H), np.float32)} if c.op == "LSTM" else {})},
                                ["Y"])[0], 0)
    assert _err(model.run(X), whole) <= TOL


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("layout,dtype", [(1, np.float32), (0, np.float64), (1, np.float64)])
def test_layout1_and_double_vs_onnx_reference(op, direction, layout, dtype):
    c = Case(op=op, direction=direction, I=3, H=5, layout=layout, dtype=dtype, peepholes=op == "LSTM",
             learned_init=True, linear_before_reset=True, seed=7)
    m = recurrent_model(c)
    X = _x(np.random.default_rng(3), 11, 3, dtype)
    truth = y_as_frames(run_reference(m, {"X": _feed(X, layout)})[0], layout)
    got = sl.load(m, dtype=np.dtype(dtype).name).run(X)
    assert _err(got, truth) <= (TOL if dtype == np.float32 else 1e-10)


@pytest.mark.parametrize("op", ["LSTM", "GRU"])
def test_streamed_layout1_double_vs_onnx_reference(op):
    c = Case(op=op, I=2, H=3, layout=1, dtype=np.float64, bias=True, peepholes=op == "LSTM", seed=5)
    m = recurrent_model(c, ports=True)
    from onnx.reference import ReferenceEvaluator
    ref = ReferenceEvaluator(m)
    X = _x(np.random.default_rng(2), STEPS, 2, np.float64)
    st = {"h0": np.zeros((1, 1, 3))}
    if op == "LSTM":
        st["c0"] = np.zeros((1, 1, 3))
    s = sl.load(m, dtype="float64").session()
    err = 0.0
    for x in X:
        out = ref.run(None, {"X": x.reshape(1, 1, -1), **st})
        st["h0"] = out[1]
        if op == "LSTM":
            st["c0"] = out[2]
        err = max(err, _err(s.step(x), out[0].reshape(-1)))
    assert err <= 1e-10


def test_missing_alpha_uses_onnx_defaults():
    """Short activation_alpha/beta lists: values go, in order, only to activations that take them
    (as onnxruntime does); the rest get the ONNX defaults. (onnxruntime's own defaults differ from
    the spec for Affine, ScaledTanh and ThresholdedRelu, so exported models always list them all.)"""
    c = Case(op="RNN", acts=[("LeakyRelu", None, None)], seed=1)
    assert import_onnx(recurrent_model(c)).layers[0].activations[0] == sl.act("LeakyRelu", 0.01)
    c = Case(op="LSTM", acts=[("HardSigmoid", 0.375, None), ("Tanh", None, None), ("LeakyRelu", None, None)],
             seed=1)
    m = recurrent_model(c)
    a = import_onnx(m).layers[0].activations
    assert a == (sl.act("HardSigmoid", 0.375, 0.5), sl.act("Tanh"), sl.act("LeakyRelu", 0.01))
    X = _x(np.random.default_rng(0), 20, c.I)
    assert _err(sl.load(m).run(X), y_as_frames(run_ort(m, {"X": _feed(X)})[0], 0)) <= TOL


# ---------------------------------------------------------------- weights from constant cones
def _ortfree_compare(m, X, layout=0, out="Y"):
    truth = run_ort(m, {"X": _feed(X, layout)}, [out])[0]
    return truth


def test_weights_from_constant_nodes_and_foldable_cones():
    c = Case(op="LSTM", direction="bidirectional", I=3, H=4, peepholes=True, seed=11)
    a = c.make_arrays()
    H = c.H
    # W from a Constant node holding gates in i,f,c,o order, reordered by Slice+Concat (as torch does
    # without constant folding); R transposed + Cast from float64; B through Unsqueeze of a 1-D
    # constant per direction + Concat; P via Gather on a bigger table, Reshape and Identity.
    W = a["W"]
    ifco = np.concatenate([W[:, 0:H], W[:, 2 * H:3 * H], W[:, 3 * H:4 * H], W[:, H:2 * H]], axis=1)
    nodes = [
        helper.make_node("Constant", [], ["Wifco"], value=numpy_helper.from_array(ifco)),
        helper.make_node("Slice", ["Wifco", "s0", "e0", "ax1"], ["Wi"]),
        helper.make_node("Slice", ["Wifco", "s1", "e1", "ax1"], ["Wf"]),
        helper.make_node("Slice", ["Wifco", "s2", "e2", "ax1"], ["Wc"]),
        helper.make_node("Slice", ["Wifco", "s3", "e3", "ax1"], ["Wo"]),
        helper.make_node("Concat", ["Wi", "Wo", "Wf", "Wc"], ["W"], axis=1),
        helper.make_node("Transpose", ["RT64"], ["R64"], perm=[0, 2, 1]),
        helper.make_node("Cast", ["R64"], ["R"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["B0", "ax0"], ["B0u"]),
        helper.make_node("Unsqueeze", ["B1", "ax0"], ["B1u"]),
        helper.make_node("Concat", ["B0u", "B1u"], ["B"], axis=0),
        helper.make_node("Gather", ["Ptable", "pidx"], ["Pg"], axis=0),
        helper.make_node("Reshape", ["Pg", "pshape"], ["Pr"]),
        helper.make_node("Identity", ["Pr"], ["P"]),
        helper.make_node("LSTM", ["X", "W", "R", "B", "", "", "", "P"], ["Y"], hidden_size=H,
                         direction="bidirectional"),
    ]
    i64 = lambda v: np.array(v, np.int64)
    inits = {"s0": i64([0]), "e0": i64([H]), "s1": i64([H]), "e1": i64([2 * H]), "s2": i64([2 * H]),
             "e2": i64([3 * H]), "s3": i64([3 * H]), "e3": i64([4 * H]), "ax1": i64([1]), "ax0": i64([0]),
             "RT64": a["R"].transpose(0, 2, 1).astype(np.float64), "B0": a["B"][0], "B1": a["B"][1],
             "Ptable": np.stack([np.zeros(6 * H, np.float32), a["P"].reshape(-1)]), "pidx": i64([1]),
             "pshape": i64([2, 3 * H])}
    g = helper.make_graph(nodes, "cones", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", 1, 3])],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    X = _x(np.random.default_rng(0), 9, 3)
    truth = y_as_frames(run_ort(m, {"X": _feed(X)})[0], 0)
    assert _err(sl.load(m).run(X), truth) <= TOL
    # same weights as the plain model
    ref = sl.load(recurrent_model(c)).run(X)
    assert _err(ref, truth) <= TOL


def test_weights_from_outer_scope_through_constant_if():
    """The recurrent node sits in an If branch taken by a constant condition; weights live one scope up."""
    c = Case(op="GRU", I=2, H=3, seed=4)
    a = c.make_arrays()
    branch_nodes = [helper.make_node("Identity", ["Router"], ["Rloc"]),
                    helper.make_node("GRU", ["X", "Wouter", "Rloc", "Bouter"], ["Yb"], hidden_size=3)]
    then_g = helper.make_graph(branch_nodes, "then", [], [helper.make_tensor_value_info("Yb", TensorProto.FLOAT, None)])
    else_g = helper.make_graph([helper.make_node("Identity", ["X"], ["Ye"])], "else", [],
                               [helper.make_tensor_value_info("Ye", TensorProto.FLOAT, None)])
    nodes = [helper.make_node("Constant", [], ["cond"], value=numpy_helper.from_array(np.array(True))),
             helper.make_node("If", ["cond"], ["Y"], then_branch=then_g, else_branch=else_g)]
    g = helper.make_graph(nodes, "if", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", 1, 2])],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(a["W"], "Wouter"), numpy_helper.from_array(a["R"], "Router"),
                           numpy_helper.from_array(a["B"], "Bouter")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    m.ir_version = 8
    X = _x(np.random.default_rng(1), 7, 2)
    truth = y_as_frames(run_ort(m, {"X": _feed(X)})[0], 0)
    assert _err(sl.load(m).run(X), truth) <= TOL


# ---------------------------------------------------------------- state ports
def _per_layer_state_model(rng, I=3, H=4, O=2):
    """x [I] -> LSTM -> GRU -> Gemm, per-layer states [H] as inputs/outputs (one frame per call)."""
    W1, R1, B1 = rng.uniform(-.5, .5, (1, 16, I)), rng.uniform(-.5, .5, (1, 16, H)), rng.uniform(-.3, .3, (1, 32))
    W2, R2 = rng.uniform(-.5, .5, (1, 12, H)), rng.uniform(-.5, .5, (1, 12, H))
    Wd, bd = rng.uniform(-.5, .5, (O, H)), rng.uniform(-.5, .5, O)
    f = lambda v, n: numpy_helper.from_array(np.asarray(v, np.float32), n)
    i64 = lambda v, n: numpy_helper.from_array(np.array(v, np.int64), n)
    nodes = [
        helper.make_node("Unsqueeze", ["x", "a01"], ["x3"]),
        helper.make_node("Unsqueeze", ["h1", "a01"], ["h1u"]),
        helper.make_node("Reshape", ["c1", "s11H"], ["c1u"]),
        helper.make_node("LSTM", ["x3", "W1", "R1", "B1", "", "h1u", "c1u"], ["Y1", "Yh1", "Yc1"], hidden_size=H),
        helper.make_node("Squeeze", ["Yh1", "a01"], ["h1o"]),
        helper.make_node("Squeeze", ["Yc1", "a01"], ["c1o"]),
        helper.make_node("Squeeze", ["Y1", "a1"], ["Y1s"]),
        helper.make_node("Unsqueeze", ["h2", "a01"], ["h2u"]),
        helper.make_node("GRU", ["Y1s", "W2", "R2", "", "", "h2u"], ["Y2", "Yh2"], hidden_size=H,
                         linear_before_reset=1),
        helper.make_node("Squeeze", ["Yh2", "a01"], ["h2o"]),
        helper.make_node("Reshape", ["Y2", "s1H"], ["y2"]),
        helper.make_node("Gemm", ["y2", "Wd", "bd"], ["yo"], transB=1),
        helper.make_node("Squeeze", ["yo", "a0"], ["y"]),
    ]
    vi = lambda n, s: helper.make_tensor_value_info(n, TensorProto.FLOAT, s)
    g = helper.make_graph(nodes, "perlayer", [vi("x", [I]), vi("h1", [H]), vi("c1", [H]), vi("h2", [H])],
                          [vi("y", [O]), vi("h1o", [H]), vi("c1o", [H]), vi("h2o", [H])],
                          [f(W1, "W1"), f(R1, "R1"), f(B1, "B1"), f(W2, "W2"), f(R2, "R2"), f(Wd, "Wd"),
                           f(bd, "bd"), i64([0, 1], "a01"), i64([1], "a1"), i64([0], "a0"),
                           i64([1, 1, H], "s11H"), i64([1, H], "s1H")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    m.ir_version = 8
    return m


def test_per_layer_state_inputs_of_shape_H_streamed():
    m = _per_layer_state_model(np.random.default_rng(5))
    model = sl.load(m)
    assert [l.kind for l in model.network.layers] == ["LSTM", "GRU", "Dense"]
    sess = ort_session(m)
    st = {k: np.zeros(4, np.float32) for k in ("h1", "c1", "h2")}
    X = _x(np.random.default_rng(6), STEPS, 3)
    s = model.session()
    err = 0.0
    for x in X:
        y, h1, c1, h2 = sess.run(["y", "h1o", "c1o", "h2o"], {"x": x, **st})
        st = {"h1": h1, "c1": c1, "h2": h2}
        err = max(err, _err(s.step(x), y))
    assert err <= TOL


def test_state_port_with_default_value_is_the_initial_state():
    """An initial_h graph input with an initializer default: a port whose reset value is the default."""
    c = Case(op="GRU", I=2, H=3, seed=9, learned_init=True)
    m = recurrent_model(c, ports=True)
    m.graph.initializer.append(numpy_helper.from_array(c.arrays["h0"], "h0"))
    net = import_onnx(m)
    np.testing.assert_allclose(net.layers[0].initial_h, c.arrays["h0"].reshape(1, 3))
    X = _x(np.random.default_rng(0), 8, 2)
    truth = run_ort(m, {"X": _feed(X)}, ["Y"])[0]      # h0 not fed: onnxruntime uses the default
    assert _err(sl.load(m).run(X), y_as_frames(truth, 0)) <= TOL
    # learned initial state from a plain initializer (no port)
    m2 = recurrent_model(c)
    assert _err(import_onnx(m2).layers[0].initial_h, c.arrays["h0"].reshape(1, 3)) < 1e-7


def test_bidirectional_state_ports_per_direction():
    """Per-direction state inputs [H] joined by Unsqueeze+Concat; Y_h split back by Gather+Squeeze."""
    rng = np.random.default_rng(2)
    i64 = lambda v: np.array(v, np.int64)
    nodes = [helper.make_node("Unsqueeze", ["hf", "a01"], ["hfu"]),
             helper.make_node("Unsqueeze", ["hb", "a01"], ["hbu"]),
             helper.make_node("Concat", ["hfu", "hbu"], ["h0"], axis=0),
             helper.make_node("GRU", ["X", "W", "R", "B", "", "h0"], ["Y", "Yh"], hidden_size=4,
                              direction="bidirectional"),
             helper.make_node("Gather", ["Yh", "i0"], ["hf_g"], axis=0),
             helper.make_node("Gather", ["Yh", "i1"], ["hb_g"], axis=0),
             helper.make_node("Squeeze", ["hf_g", "a0"], ["hf_out"]),
             helper.make_node("Squeeze", ["hb_g", "a0"], ["hb_out"]),
             helper.make_node("Transpose", ["Y"], ["t"], perm=[0, 2, 1, 3]),
             helper.make_node("Reshape", ["t", "s"], ["out"])]
    vi = lambda n, s: helper.make_tensor_value_info(n, TensorProto.FLOAT, s)
    g = helper.make_graph(nodes, "bi", [vi("X", ["T", 1, 3]), vi("hf", [4]), vi("hb", [4])],
                          [vi("out", None), vi("hf_out", [4]), vi("hb_out", [4])],
                          [numpy_helper.from_array(v, k) for k, v in {
                              **_lstm_inits(rng, 2, op="GRU"), "a01": i64([0, 1]), "a0": i64([0]),
                              "i0": i64([0]), "i1": i64([1]), "s": i64([0, 0, -1])}.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    m.ir_version = 8
    X = _x(rng, 9, 3)
    z = np.zeros(4, np.float32)
    truth = run_ort(m, {"X": _feed(X), "hf": z, "hb": z}, ["out"])[0]
    model = sl.load(m)
    assert model.input_size == 3 and model.output_size == 8
    assert _err(model.run(X), truth.reshape(9, 8)) <= TOL


# ---------------------------------------------------------------- plumbing, heads, directions
def _graph(nodes, inits, x_shape=("T", 1, 3), out="out", opset=14, extra_outputs=()):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(x_shape))],
                          [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in (out,) + tuple(extra_outputs)],
                          [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def _lstm_inits(rng, D=1, I=3, H=4, op="LSTM"):
    G = {"LSTM": 4, "GRU": 3, "RNN": 1}[op]
    f = lambda *s: rng.uniform(-.5, .5, s).astype(np.float32)
    return {"W": f(D, G * H, I), "R": f(D, G * H, H), "B": f(D, 2 * G * H)}


HEADS = {
    "gemm_transB_alpha_beta": lambda r: ([
        helper.make_node("Reshape", ["Ys", "s2"], ["Y2"]),
        helper.make_node("Gemm", ["Y2", "Wg", "bg"], ["g"], transB=1, alpha=0.7, beta=1.3),
        helper.make_node("Relu", ["g"], ["out"])],
        {"Wg": r.uniform(-1, 1, (5, 4)).astype(np.float32), "bg": r.uniform(-1, 1, (1, 5)).astype(np.float32),
         "s2": np.array([-1, 4], np.int64)}),
    "gemm_no_trans_flatten": lambda r: ([
        helper.make_node("Flatten", ["Ys"], ["Y2"], axis=2),
        helper.make_node("Gemm", ["Y2", "Wg"], ["g"]),
        helper.make_node("LeakyRelu", ["g"], ["out"], alpha=0.2)],
        {"Wg": r.uniform(-1, 1, (4, 5)).astype(np.float32)}),
    "matmul_add_softmax": lambda r: ([
        helper.make_node("MatMul", ["Ys", "Wm"], ["m"]),
        helper.make_node("Add", ["m", "bm"], ["a"]),
        helper.make_node("Softmax", ["a"], ["out"], axis=-1)],
        {"Wm": r.uniform(-1, 1, (4, 6)).astype(np.float32), "bm": r.uniform(-1, 1, 6).astype(np.float32)}),
    "conv_k1_hardsigmoid": lambda r: ([
        helper.make_node("Transpose", ["Ys"], ["Yc"], perm=[1, 2, 0]),
        helper.make_node("Conv", ["Yc", "Wc", "bc"], ["c"], kernel_shape=[1]),
        helper.make_node("HardSigmoid", ["c"], ["h"], alpha=0.3, beta=0.4),
        helper.make_node("Transpose", ["h"], ["out"], perm=[2, 0, 1])],
        {"Wc": r.uniform(-1, 1, (3, 4, 1)).astype(np.float32), "bc": r.uniform(-1, 1, 3).astype(np.float32)}),
    "activation_chain": lambda r: ([
        helper.make_node("Dropout", ["Ys"], ["d"]),
        helper.make_node("Cast", ["d"], ["c"], to=TensorProto.FLOAT),
        helper.make_node("Elu", ["c"], ["e"], alpha=0.8),
        helper.make_node("Softplus", ["e"], ["sp"]),
        helper.make_node("Softsign", ["sp"], ["ss"]),
        helper.make_node("Sigmoid", ["ss"], ["sg"]),
        helper.make_node("Tanh", ["sg"], ["th"]),
        helper.make_node("Mul", ["th", "k"], ["mk"]),
        helper.make_node("Sub", ["mk", "k"], ["sb"]),
        helper.make_node("Identity", ["sb"], ["out"])],
        {"k": np.float32(1.7)}),
}


@pytest.mark.parametrize("head", sorted(HEADS))
def test_heads_and_plumbing(head):
    rng = np.random.default_rng(len(head))
    nodes, inits = HEADS[head](rng)
    pre = [helper.make_node("LSTM", ["X", "W", "R", "B"], ["Y"], hidden_size=4),
           helper.make_node("Squeeze", ["Y", "ax1"], ["Ys"])]
    m = _graph(pre + nodes, {**_lstm_inits(rng), "ax1": np.array([1], np.int64), **inits})
    X = _x(rng, 10, 3)
    truth = run_ort(m, {"X": _feed(X)})[0]
    got = sl.load(m).run(X)
    assert _err(got, truth.reshape(got.shape)) <= TOL


DIRS = {
    # Y [T,2,1,H] -> Transpose+Reshape (T,1,2H): concat (PyTorch's pattern)
    "transpose_reshape_concat": ([helper.make_node("Transpose", ["Y"], ["t"], perm=[0, 2, 1, 3]),
                                  helper.make_node("Reshape", ["t", "s"], ["out"])],
                                 {"s": np.array([0, 0, -1], np.int64)}, "bidirectional", 8),
    "split_concat_features": ([helper.make_node("Split", ["Y", "one1"], ["f", "b"], axis=1),
                               helper.make_node("Squeeze", ["f", "ax1"], ["fs"]),
                               helper.make_node("Squeeze", ["b", "ax1"], ["bs"]),
                               helper.make_node("Concat", ["fs", "bs"], ["out"], axis=-1)],
                              {"one1": np.array([1, 1], np.int64)}, "bidirectional", 8),
    "slice_forward_only": ([helper.make_node("Slice", ["Y", "z", "o", "ax1"], ["f"]),
                            helper.make_node("Squeeze", ["f", "ax1"], ["out"])],
                           {"z": np.array([0], np.int64), "o": np.array([1], np.int64)}, "bidirectional", 4),
    "gather_backward_only": ([helper.make_node("Gather", ["Y", "i1"], ["out"], axis=1)],
                             {"i1": np.array(1, np.int64)}, "bidirectional", 4),
    "sum_of_directions": ([helper.make_node("ReduceSum", ["Y", "ax1"], ["r"], keepdims=0),
                           helper.make_node("Tanh", ["r"], ["out"])], {}, "bidirectional", 4),
    "average_of_directions": ([helper.make_node("Split", ["Y", "one1"], ["f", "b"], axis=1),
                               helper.make_node("Add", ["f", "b"], ["s"]),
                               helper.make_node("Mul", ["s", "half"], ["out"])],
                              {"one1": np.array([1, 1], np.int64), "half": np.float32(0.5)}, "bidirectional", 4),
    "product_of_directions": ([helper.make_node("Split", ["Y", "one1"], ["f", "b"], axis=1),
                               helper.make_node("Mul", ["f", "b"], ["out"])],
                              {"one1": np.array([1, 1], np.int64)}, "bidirectional", 4),
    "last_frame_of_y": ([helper.make_node("Gather", ["Y", "m1"], ["l"], axis=0),
                         helper.make_node("Reshape", ["l", "s1"], ["out"])],
                        {"m1": np.array(-1, np.int64), "s1": np.array([1, -1], np.int64)}, "bidirectional", 8),
    "y_h_many_to_one": ([helper.make_node("Squeeze", ["Yh", "ax0"], ["out"])],
                        {"ax0": np.array([0], np.int64)}, "forward", 4),
}


@pytest.mark.parametrize("case", sorted(DIRS))
@pytest.mark.parametrize("op", ["LSTM", "GRU"])
def test_direction_handling(case, op):
    nodes, inits, direction, width = DIRS[case]
    rng = np.random.default_rng(3)
    D = 2 if direction == "bidirectional" else 1
    rnn = helper.make_node(op, ["X", "W", "R", "B"], ["Y", "Yh"], hidden_size=4, direction=direction)
    m = _graph([rnn] + nodes, {**_lstm_inits(rng, D, op=op), "ax1": np.array([1], np.int64), **inits})
    X = _x(rng, 9, 3)
    truth = run_ort(m, {"X": _feed(X)})[0]
    model = sl.load(m)
    assert model.output_size == width
    got = model.run(X)
    if truth.size == width:             # the graph keeps one frame: the last
        got = got[-1:]
    assert _err(got, truth.reshape(got.shape)) <= TOL


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_cell_state_output_runs_whole_sequences(direction):
    """A graph whose output is Y_c: the last row of Model.run is onnxruntime's final cell state
    (a backward direction's is held from frame 0); a forward one also streams."""
    rng = np.random.default_rng(1)
    D = 2 if direction == "bidirectional" else 1
    rnn = helper.make_node("LSTM", ["X", "W", "R", "B"], ["", "", "out"], hidden_size=4, direction=direction)
    m = _graph([rnn], _lstm_inits(rng, D))
    model = sl.load(m)
    X = rng.normal(size=(7, 1, 3)).astype(np.float32)
    want = ort_session(m).run(None, {"X": X})[0]
    np.testing.assert_allclose(model.run(X[:, 0])[-1], want.reshape(-1), atol=1e-5)
    assert model.streamable == (direction == "forward")
    if direction == "forward":
        s = model.session()
        np.testing.assert_allclose([s.step(x) for x in X[:, 0]][-1], want.reshape(-1), atol=1e-5)


def test_interleaved_directions_are_refused_and_backward_y_h_runs_whole_sequences():
    rng = np.random.default_rng(0)
    rnn = helper.make_node("LSTM", ["X", "W", "R", "B"], ["Y", "Yh"], hidden_size=4, direction="bidirectional")
    bad = [helper.make_node("Transpose", ["Y"], ["t"], perm=[0, 2, 3, 1]),
           helper.make_node("Reshape", ["t", "s"], ["out"])]
    m = _graph([rnn] + bad, {**_lstm_inits(rng, 2), "s": np.array([0, 0, -1], np.int64)})
    with pytest.raises(sl.ConversionError, match="interleaves"):
        sl.load(m)
    yh = [helper.make_node("Gather", ["Yh", "one"], ["out"], axis=0)]
    m = _graph([rnn] + yh, {**_lstm_inits(rng, 2), "one": np.array(1, np.int64)})
    model = sl.load(m)
    assert not model.streamable
    X = rng.normal(size=(6, 1, 3)).astype(np.float32)
    want = ort_session(m).run(None, {"X": X})[0]
    np.testing.assert_allclose(model.run(X[:, 0])[-1], want.reshape(-1), atol=1e-5)
    with pytest.raises(ValueError, match="whole sequences"):
        model.session().step(np.zeros(4, np.float32)).step(X[0, 0])


# ---------------------------------------------------------------- PyTorch exports
import torch  # a test dependency


class _TorchNet(torch.nn.Module):
    def __init__(self, cell, bidirectional, layers, batch_first, last):
        super().__init__()
        self.rnn = getattr(torch.nn, cell)(4, 6, num_layers=layers, bidirectional=bidirectional,
                                           batch_first=batch_first)
        self.fc = torch.nn.Linear(6 * (2 if bidirectional else 1), 3)
        self.bf, self.last = batch_first, last

    def forward(self, x):
        y, _ = self.rnn(x)
        if self.last:
            y = y[:, -1] if self.bf else y[-1]
        return self.fc(y)


TORCH_CASES = [(cell, bi, layers, bf, last)
               for cell in ("LSTM", "GRU", "RNN") for bi in (False, True)
               for layers, bf, last in ((2, False, False), (1, True, True))]


def _torch_export(net, x, dynamo=False, dynamic=True):
    kw = dict(input_names=["x"], output_names=["y"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            return torch.onnx.export(net, (x,), dynamo=True, verbose=False, **kw).model_proto
        if dynamic:
            kw["dynamic_axes"] = {"x": {1 if net.bf else 0: "T"}}
        f = io.BytesIO()
        torch.onnx.export(net, (x,), f, dynamo=False, **kw)
        return onnx.load_from_string(f.getvalue())


@pytest.mark.parametrize("cell,bi,layers,bf,last", TORCH_CASES)
def test_torch_classic_export(cell, bi, layers, bf, last):
    torch.manual_seed(len(cell) + 2 * bi + layers)
    net = _TorchNet(cell, bi, layers, bf, last).eval()
    x = torch.randn(1, 12, 4) if bf else torch.randn(12, 1, 4)
    m = _torch_export(net, x)
    X = (x[0] if bf else x[:, 0]).numpy()
    with torch.no_grad():
        truth = net(x).numpy().reshape(-1, 3)
    ort_y = run_ort(m, {"x": x.numpy()})[0].reshape(-1, 3)
    model = sl.load(m)
    got = model.run(X)
    if last:
        got = got[-1:]
    assert _err(got, truth) <= TOL and _err(got, ort_y) <= TOL
    if not bi and not last:      # streamed: the session equals the whole-sequence output frame by frame
        s = model.session()
        assert _err(np.array([s.step(v) for v in X]), truth) <= TOL


def test_torch_classic_export_static_shapes_and_state_inputs():
    """Static T (no dynamic axes) and h0/c0 passed as graph inputs: state ports."""
    torch.manual_seed(0)

    class WithState(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.LSTM(3, 5, num_layers=2)
            self.fc = torch.nn.Linear(5, 2)

        def forward(self, x, h, c):
            y, (h2, c2) = self.rnn(x, (h, c))
            return self.fc(y), h2, c2

    net = WithState().eval()
    x, h, c = torch.randn(1, 1, 3), torch.zeros(2, 1, 5), torch.zeros(2, 1, 5)
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x, h, c), f, dynamo=False, input_names=["x", "h", "c"],
                          output_names=["y", "h_out", "c_out"])
    m = onnx.load_from_string(f.getvalue())
    model = sl.load(m)
    sess = ort_session(m)
    X = _x(np.random.default_rng(1), STEPS, 3)
    st = {"h": np.zeros((2, 1, 5), np.float32), "c": np.zeros((2, 1, 5), np.float32)}
    s = model.session()
    err = 0.0
    for v in X:
        y, h2, c2 = sess.run(None, {"x": v.reshape(1, 1, 3), **st})
        st = {"h": h2, "c": c2}
        err = max(err, _err(s.step(v), y.reshape(-1)))
    assert err <= TOL


class _ManyToOne(torch.nn.Module):          # fc(h_n[-1]) of a 2-layer LSTM
    def __init__(self):
        super().__init__()
        self.rnn, self.fc = torch.nn.LSTM(4, 6, num_layers=2), torch.nn.Linear(6, 3)

    def forward(self, x):
        y, (h, c) = self.rnn(x)
        return self.fc(h[-1])


class _DynamicView(torch.nn.Module):        # view(b * t, -1) from runtime sizes (Shape/Gather/Mul)
    def __init__(self):
        super().__init__()
        self.rnn = torch.nn.LSTM(4, 6, bidirectional=True, batch_first=True)
        self.fc = torch.nn.Linear(12, 3)

    def forward(self, x):
        y, _ = self.rnn(x)
        b, t, _ = y.shape
        return torch.softmax(self.fc(y.contiguous().view(b * t, -1)), -1)


class _SumOfDirections(torch.nn.Module):    # y[..., :H] + y[..., H:]
    def __init__(self):
        super().__init__()
        self.rnn, self.fc = torch.nn.GRU(4, 6, bidirectional=True), torch.nn.Linear(6, 3)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.fc(torch.relu(y[..., :6] + y[..., 6:]))


class _FrontLinear(torch.nn.Module):        # Linear + tanh before a 2-layer LSTM with dropout, sigmoid head
    def __init__(self):
        super().__init__()
        self.pre, self.fc = torch.nn.Linear(4, 5), torch.nn.Linear(6, 3)
        self.rnn = torch.nn.LSTM(5, 6, num_layers=2, dropout=0.2)

    def forward(self, x):
        y, _ = self.rnn(torch.tanh(self.pre(x)))
        return torch.sigmoid(self.fc(y))


class _Normalised(torch.nn.Module):         # (x - mean) / std before the GRU: one Dense
    def __init__(self):
        super().__init__()
        self.rnn, self.fc = torch.nn.GRU(4, 5, batch_first=True), torch.nn.Linear(5, 3)
        self.register_buffer("mu", torch.randn(4))
        self.register_buffer("sd", torch.rand(4) + 0.5)

    def forward(self, x):
        return torch.softmax(self.fc(self.rnn((x - self.mu) / self.sd)[0]), -1)


class _BackwardHn(torch.nn.Module):         # uses the backward direction's final state: Model.run only
    def __init__(self):
        super().__init__()
        self.rnn, self.fc = torch.nn.GRU(4, 6, bidirectional=True), torch.nn.Linear(12, 3)

    def forward(self, x):
        y, h = self.rnn(x)
        return self.fc(torch.cat([h[-2], h[-1]], -1))


@pytest.mark.parametrize("opset", [9, 17])
@pytest.mark.parametrize("cls,batch_first", [(_ManyToOne, False), (_DynamicView, True),
                                             (_SumOfDirections, False), (_FrontLinear, False),
                                             (_Normalised, True)])
def test_torch_export_patterns(cls, batch_first, opset):
    torch.manual_seed(2)
    net = cls().eval()
    x = torch.randn(1, 11, 4) if batch_first else torch.randn(11, 1, 4)
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), f, dynamo=False, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "a", 1: "b"}}, opset_version=opset)
    m = onnx.load_from_string(f.getvalue())
    with torch.no_grad():
        truth = net(x).numpy().reshape(-1, 3)
    got = sl.load(m).run((x[0] if batch_first else x[:, 0]).numpy())
    if truth.shape[0] == 1:
        got = got[-1:]
    assert _err(got, truth) <= TOL


class _LearnedInitialState(torch.nn.Module):   # h0/c0 parameters expanded over the runtime batch
    def __init__(self):
        super().__init__()
        self.rnn, self.fc = torch.nn.LSTM(3, 5, num_layers=2), torch.nn.Linear(5, 2)
        self.h0 = torch.nn.Parameter(torch.randn(2, 1, 5))
        self.c0 = torch.nn.Parameter(torch.randn(2, 1, 5))

    def forward(self, x):
        b = x.shape[1]
        hc = (self.h0.expand(-1, b, -1).contiguous(), self.c0.expand(-1, b, -1).contiguous())
        return self.fc(self.rnn(x, hc)[0])


def test_torch_learned_initial_state_is_restored_on_reset():
    torch.manual_seed(3)
    net = _LearnedInitialState().eval()
    x = torch.randn(8, 1, 3)
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), f, dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "T", 1: "B"}})
    model = sl.load(onnx.load_from_string(f.getvalue()))
    np.testing.assert_allclose(model.network.layers[1].initial_c, net.c0.detach().numpy()[1], atol=1e-7)
    with torch.no_grad():
        truth = net(x).numpy()[:, 0]
    s = model.session()
    s.run(x[:, 0].numpy())
    s.reset()
    assert _err(s.run(x[:, 0].numpy()), truth) <= TOL


def test_torch_backward_final_state_runs_whole_sequences():
    """fc(cat(h_n[-2], h_n[-1])) of a bidirectional GRU: the last row of Model.run is torch's
    output (the backward direction's state after frame 0 is held in every row); no step."""
    torch.manual_seed(3)
    net = _BackwardHn().eval()
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.randn(5, 1, 4),), f, dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {0: "T"}})
    model = sl.load(onnx.load_from_string(f.getvalue()))
    assert "HoldFirst" in [l.kind for l in model.network.layers] and not model.streamable
    for T in (1, 5, 12):
        x = torch.randn(T, 1, 4)
        with torch.no_grad():
            truth = net(x).numpy()[0]
        assert _err(model.run(x[:, 0].numpy())[-1], truth) <= TOL
    with pytest.raises(ValueError, match="whole sequences"):
        model.session().step(np.zeros(4, np.float32))


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_torch_dynamo_export(cell):
    """The dynamo exporter emits LSTM/GRU nodes (nn.RNN it unrolls into MatMul/Tanh per step,
    re-rolled at import: see test_onnx_import_fixes.py, which also covers dynamic time axes)."""
    pytest.importorskip("onnxscript", reason="torch.onnx.export(dynamo=True) needs onnxscript")
    torch.manual_seed(1)
    net = _TorchNet(cell, cell == "LSTM", 2, True, False).eval()
    x = torch.randn(1, 10, 4)
    m = _torch_export(net, x, dynamo=True)
    assert cell in {n.op_type for n in m.graph.node}
    with torch.no_grad():
        truth = net(x).numpy().reshape(-1, 3)
    assert _err(sl.load(m).run(x[0].numpy()), truth) <= TOL


# ---------------------------------------------------------------- sub-graphs and errors
def _front_end_model(rng):
    """Conv(k=3) front end over time -> LSTM -> Gemm -> ArgMax: ArgMax is not supported."""
    nodes = [helper.make_node("Conv", ["audio", "Wf"], ["feat"], kernel_shape=[3], pads=[1, 1]),
             helper.make_node("Transpose", ["feat"], ["frames"], perm=[2, 0, 1]),
             helper.make_node("LSTM", ["frames", "W", "R", "B"], ["Y"], hidden_size=4),
             helper.make_node("Squeeze", ["Y", "ax1"], ["Ys"]),
             helper.make_node("MatMul", ["Ys", "Wm"], ["logits"]),
             helper.make_node("ArgMax", ["logits"], ["label"], axis=-1)]
    inits = {**_lstm_inits(rng), "Wf": rng.uniform(-1, 1, (3, 2, 3)).astype(np.float32),
             "ax1": np.array([1], np.int64), "Wm": rng.uniform(-1, 1, (4, 5)).astype(np.float32)}
    g = helper.make_graph(nodes, "fe", [helper.make_tensor_value_info("audio", TensorProto.FLOAT, [1, 2, "T"])],
                          [helper.make_tensor_value_info("label", TensorProto.INT64, None)],
                          [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    m.ir_version = 8
    return m


def test_unsupported_op_names_node_op_and_position():
    m = _front_end_model(np.random.default_rng(0))
    with pytest.raises(sl.ConversionError) as e:
        sl.load(m)
    msg = str(e.value)
    assert "ArgMax" in msg and "#5" in msg and "inputs=" in msg
    m.graph.node[5].name = "pick"
    with pytest.raises(sl.ConversionError, match="'pick'"):
        sl.load(m)
    m.graph.output[0].name = "logits"   # without the ArgMax, the conv front end imports too
    assert [l.kind for l in sl.load(m).network.layers] == ["TimeConv1d", "LSTM", "Dense"]


def test_subgraph_import_between_named_tensors(tmp_path):
    m = _front_end_model(np.random.default_rng(0))
    path = tmp_path / "fe.onnx"
    onnx.save(m, path)
    names = [row[0] for row in tensor_names(path)]
    assert "frames" in names and "logits" in names
    model = sl.load(path, inputs=["frames"], outputs=["logits"])
    assert (model.input_size, model.output_size) == (3, 5)
    audio = np.random.default_rng(1).uniform(-1, 1, (1, 2, 20)).astype(np.float32)
    m.graph.output.append(helper.make_tensor_value_info("frames", TensorProto.FLOAT, None))
    m.graph.output.append(helper.make_tensor_value_info("logits", TensorProto.FLOAT, None))
    frames, logits = run_ort(m, {"audio": audio}, ["frames", "logits"])
    assert _err(model.run(frames[:, 0]), logits.reshape(-1, 5)) <= TOL
    with pytest.raises(sl.ConversionError, match="no tensor named"):
        sl.load(path, inputs=["nope"])


def test_sequence_lens_and_batch_checks():
    rng = np.random.default_rng(0)
    ins = _lstm_inits(rng)
    full = _graph([helper.make_node("LSTM", ["X", "W", "R", "B", "sl"], ["out"], hidden_size=4)],
                  {**ins, "sl": np.array([6], np.int32)}, x_shape=(6, 1, 3))
    X = _x(rng, 6, 3)
    assert _err(sl.load(full).run(X), y_as_frames(run_ort(full, {"X": _feed(X)})[0], 0)) <= TOL
    part = _graph([helper.make_node("LSTM", ["X", "W", "R", "B", "sl"], ["out"], hidden_size=4)],
                  {**ins, "sl": np.array([4], np.int32)}, x_shape=(6, 1, 3))
    with pytest.raises(sl.ConversionError, match="sequence_lens"):
        sl.load(part)
    # sequence_lens as a graph input: assumed to cover the sequence, not taken for the data input
    m = _graph([helper.make_node("LSTM", ["X", "W", "R", "B", "L"], ["out"], hidden_size=4)], ins)
    m.graph.input.append(helper.make_tensor_value_info("L", TensorProto.INT32, [1]))
    truth = run_ort(m, {"X": _feed(X), "L": np.array([6], np.int32)})[0]
    assert _err(sl.load(m).run(X), y_as_frames(truth, 0)) <= TOL
    batch = _graph([helper.make_node("LSTM", ["X", "W", "R", "B"], ["out"], hidden_size=4)], ins,
                   x_shape=("T", 4, 3))
    with pytest.raises(sl.ConversionError, match="batch size 4"):
        sl.load(batch)


def test_sources_path_bytes_proto(tmp_path):
    c = Case(op="RNN", seed=2)
    m = recurrent_model(c)
    p = tmp_path / "m.onnx"
    onnx.save(m, p)
    X = _x(np.random.default_rng(0), 5, c.I)
    ys = [sl.load(src).run(X) for src in (str(p), p, m)]
    ys.append(sl.Model(import_onnx(m.SerializeToString())).run(X))
    for y in ys[1:]:
        assert _err(y, ys[0]) == 0.0


# ---------------------------------------------------------------- external data safety
def _external_model(folder, location="weights.bin"):
    c = Case(op="LSTM", I=3, H=4, seed=8)
    m = recurrent_model(c)
    path = folder / "m.onnx"
    onnx.save_model(m, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location=location, size_threshold=0)
    return c, m, path


def _set_location(path, **entries):
    m = onnx.load(path, load_external_data=False)
    for t in m.graph.initializer:
        for e in t.external_data:
            if e.key in entries:
                e.value = str(entries[e.key])
    onnx.save(m, path)
    return m


def test_external_data_from_the_model_folder(tmp_path):
    c, m, path = _external_model(tmp_path)
    X = _x(np.random.default_rng(0), 6, 3)
    assert _err(sl.load(path).run(X), sl.load(recurrent_model(c)).run(X)) == 0.0
    with pytest.raises(sl.ConversionError, match="from its path"):
        import_onnx(path.read_bytes())


def test_external_data_outside_the_folder_is_refused(tmp_path):
    inner = tmp_path / "model"
    inner.mkdir()
    _external_model(tmp_path, "secret.bin")            # a data file one level up
    c, m, path = _external_model(inner)
    _set_location(path, location="../secret.bin")
    with pytest.raises(sl.ConversionError, match="outside the model's folder"):
        sl.load(path)
    _set_location(path, location=str(tmp_path / "secret.bin"))
    with pytest.raises(sl.ConversionError, match="outside the model's folder"):
        sl.load(path)
    os.symlink(tmp_path / "secret.bin", inner / "link.bin")
    _set_location(path, location="link.bin")
    with pytest.raises(sl.ConversionError, match="symlink"):
        sl.load(path)


def test_external_data_sizes_are_checked_before_reading(tmp_path):
    c, m, path = _external_model(tmp_path)
    data = tmp_path / "weights.bin"
    full = data.read_bytes()
    data.write_bytes(full[:len(full) // 2])
    with pytest.raises(sl.ConversionError, match="has only"):
        sl.load(path)
    data.write_bytes(full)
    _set_location(path, length=8)
    with pytest.raises(sl.ConversionError, match="does not match"):
        sl.load(path)
    # inline data shorter than the declared shape: refused, nothing huge allocated
    m = recurrent_model(c)
    w = m.graph.initializer[0]
    w.dims[:] = [1, 4 * 4, 10 ** 9]
    with pytest.raises(sl.ConversionError, match="bytes"):
        sl.load(m)


def test_model_local_function_is_inlined():
    c = Case(op="LSTM", I=3, H=4, seed=12)
    a = c.make_arrays()
    fn = helper.make_function("local", "RnnBlock", ["x", "w", "r", "b"], ["y"],
                              [helper.make_node("LSTM", ["x", "w", "r", "b"], ["y4"], hidden_size=4),
                               helper.make_node("Squeeze", ["y4", "one"], ["y"]),
                               helper.make_node("Constant", [], ["one"],
                                                value=numpy_helper.from_array(np.array([1], np.int64)))],
                              [helper.make_opsetid("", 14)])
    fn.node.insert(0, fn.node.pop())          # Constant first
    g = helper.make_graph([helper.make_node("RnnBlock", ["X", "W", "R", "B"], ["Y"], domain="local")], "fn",
                          [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", 1, 3])],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(a[k], k) for k in ("W", "R", "B")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14), helper.make_opsetid("local", 1)],
                          functions=[fn])
    m.ir_version = 8
    X = _x(np.random.default_rng(0), 8, 3)
    truth = run_ort(m, {"X": _feed(X)})[0]
    assert _err(sl.load(m).run(X), truth.reshape(8, 4)) <= TOL
