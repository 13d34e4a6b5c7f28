"""ONNX import of graph forms found in real third-party files, each rebuilt here with the same
structure: the dynamo exporter's dynamic-time views and its unrolled nn.RNN, a width-1 conv head
reshaped to (-1), an unshaped input viewed to (T, B, -1), stacked per-layer state outputs, and the
summary outputs (Y_h/Y_c) of reverse and bidirectional nodes. Checked against onnxruntime, and
against torch where the model comes from torch."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import streamlstm as sl
from support.onnx_cases import ort_session

TOL = 1e-5


def _err(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def _ints(name, v):
    return numpy_helper.from_array(np.array(v, np.int64), name)


def _floats(rng, name, shape):
    return numpy_helper.from_array(rng.uniform(-1, 1, shape).astype(np.float32), name)


def _model(nodes, inputs, outputs, inits, opset=14):
    g = helper.make_graph(nodes, "g", inputs, outputs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def _stream(model, X):
    s = model.session()
    return np.array([s.step(v) for v in X])


# ---------------------------------------------------------------- the default (dynamo) exporter
torch = pytest.importorskip("torch")


class _Net(torch.nn.Module):
    def __init__(self, cell, layers, batch_first, head, bidirectional=False):
        super().__init__()
        self.rnn = getattr(torch.nn, cell)(4, 6, num_layers=layers, batch_first=batch_first,
                                           bidirectional=bidirectional)
        self.fc = torch.nn.Linear(6 * (1 + bidirectional), 3) if head else None

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.fc(y) if self.fc is not None else y


# every cell with 1-3 layers, batch_first both ways and with and without a head (one export each)
DYNAMO_CASES = [(cell, layers, bf, head, False) for cell in ("LSTM", "GRU", "RNN")
                for layers, bf, head in ((1, True, True), (2, False, False), (3, True, False))]
DYNAMO_CASES += [("LSTM", 2, True, True, True), ("GRU", 1, False, True, True)]


@pytest.mark.parametrize("cell,layers,bf,head,bi", DYNAMO_CASES)
def test_dynamo_export_with_a_dynamic_time_axis(cell, layers, bf, head, bi):
    pytest.importorskip("onnxscript", reason="torch.onnx.export(dynamo=True) needs onnxscript")
    torch.manual_seed(layers + 3 * bf + 7 * head)
    net = _Net(cell, layers, bf, head, bi).eval()
    T = 9
    x = torch.randn(1, T, 4) if bf else torch.randn(T, 1, 4)
    dim = torch.export.Dim("T", min=2, max=512)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = torch.onnx.export(net, (x,), dynamo=True, verbose=False, input_names=["x"],
                              output_names=["y"], dynamic_shapes={"x": {1 if bf else 0: dim}}).model_proto
    X = (x[0] if bf else x[:, 0]).numpy()
    with torch.no_grad():
        truth = net(x).numpy().reshape(T, -1)
    ort_y = ort_session(m).run(None, {"x": x.numpy()})[0].reshape(T, -1)
    model = sl.load(m)
    got = model.run(X)
    assert _err(got, truth) <= TOL and _err(got, ort_y) <= TOL
    if not bi:
        assert _err(_stream(model, X), truth) <= TOL
    # nn.RNN is unrolled at the exported length; the re-rolled node runs any length
    x2 = torch.randn(1, 2 * T + 1, 4) if bf else torch.randn(2 * T + 1, 1, 4)
    with torch.no_grad():
        truth2 = net(x2).numpy().reshape(2 * T + 1, -1)
    assert _err(model.run((x2[0] if bf else x2[:, 0]).numpy()), truth2) <= TOL
    if cell == "RNN":
        assert any(n.op_type == "Concat" for n in m.graph.node)     # the unrolled form was tested
        assert "RNN" not in {n.op_type for n in m.graph.node}
    else:
        assert cell in {n.op_type for n in m.graph.node}


def test_unrolled_rnn_with_a_nonzero_first_step_constant_stays_refused():
    """A re-roll needs h0 = 0 (the first step's constant equal to b_hh); otherwise it is not
    matched and the per-step slicing is reported as before."""
    rng = np.random.default_rng(0)
    T, I, H = 3, 2, 3
    nodes = [helper.make_node("MatMul", ["x", "Wt"], ["xm"]), helper.make_node("Add", ["xm", "bi"], ["L"])]
    prev = None
    for t in range(T):
        nodes += [helper.make_node("Slice", ["L", f"s{t}", f"s{t + 1}", "z"], [f"sl{t}"]),
                  helper.make_node("Squeeze", [f"sl{t}", "z"], [f"g{t}"])]
        if t == 0:
            nodes.append(helper.make_node("Add", ["c0", "g0"], ["p0"]))
        else:
            nodes += [helper.make_node("MatMul", [prev, "Rt"], [f"m{t}"]),
                      helper.make_node("Add", [f"m{t}", "bh"], [f"q{t}"]),
                      helper.make_node("Add", [f"q{t}", f"g{t}"], [f"p{t}"])]
        nodes.append(helper.make_node("Tanh", [f"p{t}"], [f"a{t}"]))
        prev = f"a{t}"
    nodes.append(helper.make_node("Concat", [f"a{t}" for t in range(T)], ["y"], axis=0))
    bh = rng.uniform(-1, 1, H).astype(np.float32)
    inits = [_floats(rng, "Wt", (I, H)), _floats(rng, "Rt", (H, H)), _floats(rng, "bi", (H,)),
             numpy_helper.from_array(bh, "bh"), numpy_helper.from_array((bh + 0.5)[None, None], "c0"),
             _ints("z", [0])] + [_ints(f"s{t}", [t]) for t in range(T + 1)]
    m = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [T, 1, I])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    with pytest.raises(sl.ConversionError, match="picks frame 0"):
        sl.load(m)
    # with c0 == b_hh (zero initial state) the same graph re-rolls and matches onnxruntime
    m.graph.initializer[4].CopyFrom(numpy_helper.from_array(bh[None, None], "c0"))
    X = rng.standard_normal((T, I)).astype(np.float32)
    ref = ort_session(m).run(None, {"x": X[:, None]})[0].reshape(T, H)
    model = sl.load(m)
    assert _err(model.run(X), ref) <= TOL and _err(_stream(model, X), ref) <= TOL


# ---------------------------------------------------------------- a width-1 head reshaped to (-1)
@pytest.mark.parametrize("time", ["T", 40])
@pytest.mark.parametrize("target", [[-1], [1, -1], [-1, 1]])
def test_conv1x1_sigmoid_head_reshaped_to_minus_one(time, target):
    """LSTM -> (1, H, T) -> Conv k=1 to one channel -> Sigmoid -> Reshape(-1), as VAD heads end."""
    rng = np.random.default_rng(1)
    I, H = 3, 5
    nodes = [helper.make_node("LSTM", ["x", "W", "R", "B"], ["Y"], hidden_size=H),
             helper.make_node("Squeeze", ["Y", "a1"], ["Ys"]),                 # (T, 1, H)
             helper.make_node("Transpose", ["Ys"], ["Yt"], perm=[1, 2, 0]),    # (1, H, T)
             helper.make_node("Conv", ["Yt", "Wc", "bc"], ["c"], kernel_shape=[1]),   # (1, 1, T)
             helper.make_node("Sigmoid", ["c"], ["s"]),
             helper.make_node("Reshape", ["s", "m1"], ["y"])]                 # (T,)
    inits = [_floats(rng, "W", (1, 4 * H, I)), _floats(rng, "R", (1, 4 * H, H)),
             _floats(rng, "B", (1, 8 * H)), _floats(rng, "Wc", (1, H, 1)), _floats(rng, "bc", (1,)),
             _ints("a1", [1]), _ints("m1", target)]
    m = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [time, 1, I])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    X = rng.standard_normal((40, I)).astype(np.float32)
    ref = ort_session(m).run(None, {"x": X[:, None]})[0]
    assert ref.size == 40
    ref = ref.reshape(-1)
    model = sl.load(m)
    assert model.output_size == 1
    assert _err(model.run(X)[:, 0], ref) <= TOL and _err(_stream(model, X)[:, 0], ref) <= TOL


def test_reshape_with_time_after_a_wide_feature_is_still_refused():
    rng = np.random.default_rng(1)
    I, H = 3, 5
    nodes = [helper.make_node("LSTM", ["x", "W", "R"], ["Y"], hidden_size=H),
             helper.make_node("Squeeze", ["Y", "a1"], ["Ys"]),
             helper.make_node("Transpose", ["Ys"], ["Yt"], perm=[1, 2, 0]),    # (1, H, T)
             helper.make_node("Reshape", ["Yt", "m1"], ["y"])]
    inits = [_floats(rng, "W", (1, 4 * H, I)), _floats(rng, "R", (1, 4 * H, H)),
             _ints("a1", [1]), _ints("m1", [-1])]
    m = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["T", 1, I])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    with pytest.raises(sl.ConversionError, match="time axis after the feature"):
        sl.load(m)


# ---------------------------------------------------------------- rank from the consumer
def _view_model(rng, op="LSTM", declared=None, I=3, H=4):
    """x (no declared shape) -> Reshape(x, Concat(Shape(x)[0], Shape(x)[1], -1)) -> op: the
    legacy torch export of ``x.view(x.size(0), x.size(1), -1)``."""
    G = {"LSTM": 4, "GRU": 3, "RNN": 1}[op]
    nodes = [helper.make_node("Shape", ["x"], ["sh"]),
             helper.make_node("Gather", ["sh", "i0"], ["t"], axis=0),
             helper.make_node("Gather", ["sh", "i1"], ["b"], axis=0),
             helper.make_node("Unsqueeze", ["t", "z"], ["tu"]),
             helper.make_node("Unsqueeze", ["b", "z"], ["bu"]),
             helper.make_node("Concat", ["tu", "bu", "m1"], ["shp"], axis=0),
             helper.make_node("Reshape", ["x", "shp"], ["xv"]),
             helper.make_node(op, ["xv", "W", "R", "B"], ["Y"], hidden_size=H),
             helper.make_node("Squeeze", ["Y", "a1"], ["y"])]
    inits = [_floats(rng, "W", (1, G * H, I)), _floats(rng, "R", (1, G * H, H)),
             _floats(rng, "B", (1, 2 * G * H)), _ints("i0", 0), _ints("i1", 1), _ints("z", [0]),
             _ints("m1", [-1]), _ints("a1", [1])]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, declared)],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_input_rank_from_the_recurrent_consumer(op):
    rng = np.random.default_rng(2)
    m = _view_model(rng, op)
    assert not m.graph.input[0].type.tensor_type.HasField("shape")
    X = rng.standard_normal((30, 3)).astype(np.float32)
    ref = ort_session(m).run(None, {"x": X[:, None]})[0].reshape(30, -1)
    model = sl.load(m)
    assert model.input_size == 3
    assert _err(model.run(X), ref) <= TOL and _err(_stream(model, X), ref) <= TOL


def test_input_rank_unknown_without_a_recurrent_consumer_is_refused():
    rng = np.random.default_rng(2)
    nodes = [helper.make_node("MatMul", ["x", "Wm"], ["y"])]
    m = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [_floats(rng, "Wm", (3, 2))])
    with pytest.raises(sl.ConversionError, match="its shape is unknown"):
        sl.load(m)


# ---------------------------------------------------------------- stacked state outputs
def _stacked_state_model(rng, layers=2, I=3, H=4):
    """keras2onnx style: packed state inputs (1, L, H) gathered per layer, next states Squeezed,
    Unsqueezed and Concatenated into one (1, L, H) output each."""
    inits = [_ints("z", [0]), _ints("one", [1])]
    nodes, x = [], "x"
    for k in range(layers):
        inits += [_ints(f"k{k}", k), _floats(rng, f"W{k}", (1, 4 * H, I if k == 0 else H)),
                  _floats(rng, f"R{k}", (1, 4 * H, H)), _floats(rng, f"B{k}", (1, 8 * H))]
        for s in "hc":
            nodes += [helper.make_node("Gather", [f"{s}_in", f"k{k}"], [f"{s}g{k}"], axis=1),
                      helper.make_node("Unsqueeze", [f"{s}g{k}", "z"], [f"{s}0_{k}"])]
        nodes += [helper.make_node("LSTM", [x, f"W{k}", f"R{k}", f"B{k}", "", f"h0_{k}", f"c0_{k}"],
                                   [f"Y{k}", f"Yh{k}", f"Yc{k}"], hidden_size=H),
                  helper.make_node("Squeeze", [f"Y{k}", "one"], [f"x{k}"])]
        for s in "hc":
            nodes += [helper.make_node("Squeeze", [f"Y{s}{k}", "z"], [f"{s}s{k}"]),
                      helper.make_node("Unsqueeze", [f"{s}s{k}", "one"], [f"{s}u{k}"])]
        x = f"x{k}"
    nodes += [helper.make_node("Concat", [f"hu{k}" for k in range(layers)], ["h_out"], axis=1),
              helper.make_node("Concat", [f"cu{k}" for k in range(layers)], ["c_out"], axis=1)]
    st = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, layers, H]) for n in ("h_in", "c_in")]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["T", 1, I])] + st,
                  [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in (x, "h_out", "c_out")],
                  inits)


@pytest.mark.parametrize("layers", [2, 3])
def test_stacked_state_outputs_are_state_outputs(layers):
    rng = np.random.default_rng(3)
    m = _stacked_state_model(rng, layers)
    model = sl.load(m)
    assert model.output_size == 4
    sess = ort_session(m)
    X = rng.uniform(-1.5, 1.5, (200, 3)).astype(np.float32)
    st = {"h_in": np.zeros((1, layers, 4), np.float32), "c_in": np.zeros((1, layers, 4), np.float32)}
    s, err, ys = model.session(), 0.0, []
    for v in X:                          # onnxruntime streamed with its stacked state fed back
        y, h, c = sess.run(None, {"x": v[None, None], **st})
        st = {"h_in": h, "c_in": c}
        ys.append(y.reshape(-1))
        err = max(err, _err(s.step(v), y.reshape(-1)))
    assert err <= TOL
    assert _err(model.run(X), np.array(ys)) <= TOL


# ---------------------------------------------------------------- torch: the legacy view
def test_torch_legacy_view_without_input_shape():
    """``x.view(x.size(0), x.size(1), -1)`` before an LSTM, exported with dynamo=False and the
    input's shape stripped (as older exporters left it)."""
    import io

    class View(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn, self.fc = torch.nn.LSTM(4, 6), torch.nn.Linear(6, 2)

        def forward(self, x):
            return self.fc(self.rnn(x.view(x.size(0), x.size(1), -1))[0])

    torch.manual_seed(4)
    net = View().eval()
    x = torch.randn(7, 1, 4)
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), f, dynamo=False, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "T", 1: "B"}})
    m = onnx.load_from_string(f.getvalue())
    m.graph.input[0].type.tensor_type.ClearField("shape")
    del m.graph.value_info[:]
    X = np.random.default_rng(5).standard_normal((25, 4)).astype(np.float32)
    with torch.no_grad():
        truth = net(torch.from_numpy(X[:, None])).numpy()[:, 0]
    ref = ort_session(m).run(None, {"x": X[:, None]})[0][:, 0]
    got = sl.load(m).run(X)
    assert _err(got, truth) <= TOL and _err(got, ref) <= TOL


@pytest.mark.parametrize("nonlinearity,bias", [("relu", True), ("tanh", False)])
def test_dynamo_unrolled_rnn_relu_and_no_bias(nonlinearity, bias):
    pytest.importorskip("onnxscript", reason="torch.onnx.export(dynamo=True) needs onnxscript")
    torch.manual_seed(5)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.RNN(4, 6, num_layers=2, nonlinearity=nonlinearity, bias=bias)

        def forward(self, x):
            return self.rnn(x)[0]

    net = Net().eval()
    x = torch.randn(8, 1, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = torch.onnx.export(net, (x,), dynamo=True, verbose=False).model_proto
    with torch.no_grad():
        truth = net(x).numpy()[:, 0]
    ort_y = ort_session(m).run(None, {m.graph.input[0].name: x.numpy()})[0][:, 0]
    model = sl.load(m)
    assert [layer.kind for layer in model.network.layers] == ["RNN", "RNN"]
    got = model.run(x[:, 0].numpy())
    assert _err(got, truth) <= TOL and _err(got, ort_y) <= TOL
