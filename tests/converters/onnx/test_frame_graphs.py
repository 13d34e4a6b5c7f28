"""Frame graphs (one frame per call, ``dims=``) of front-end ops beyond Silero's, against
onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

import streamlstm as sl

ort = pytest.importorskip("onnxruntime")


def test_frame_graph_conv_batchnorm_pool_norm_head():
    """A small frame graph of the other front-end ops (Conv -> BatchNorm folded -> Relu ->
    MaxPool -> LayerNorm over channels via Transpose -> ReduceMean -> MatMul) against onnxruntime."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    f = lambda *s: rng.normal(size=s).astype(np.float32)  # noqa: E731
    inits = {"W": f(6, 2, 3), "B": f(6), "sc": f(6), "bi": f(6), "mu": f(6), "var": np.abs(f(6)) + 0.5,
             "g": f(6), "be": f(6), "M": f(6, 3), "ax": np.array([1], np.int64)}
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1]),
             helper.make_node("BatchNormalization", ["c", "sc", "bi", "mu", "var"], ["bn"]),
             helper.make_node("Relu", ["bn"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2], strides=[2]),
             helper.make_node("Transpose", ["p"], ["t"], perm=[0, 2, 1]),
             helper.make_node("LayerNormalization", ["t", "g", "be"], ["n"], axis=-1),
             helper.make_node("ReduceMean", ["n", "ax"], ["m"], keepdims=0),
             helper.make_node("MatMul", ["m", "M"], ["y"])]
    g = helper.make_graph(nodes, "fe", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, "L"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 9
    model = sl.load(m, dims={"L": 10})
    kinds = [l.kind for l in model.network.layers]
    assert "Elementwise" not in kinds, kinds            # BatchNorm folded into the Conv1d
    X = rng.normal(size=(5, 1, 2, 10)).astype(np.float32)
    ref = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    want = np.stack([ref.run(None, {"x": x})[0].reshape(-1) for x in X])
    np.testing.assert_allclose(model.run(X.reshape(5, -1)), want, atol=1e-5)


def test_frame_graph_slices_concat_and_branches():
    """Slices of one tensor concatenated on another axis (positions only), a Concat of two
    computed branches, Sub/Div by constants both ways, against onnxruntime."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    c = lambda v: np.array(v, np.int64)  # noqa: E731
    inits = {"s0": c([0]), "e0": c([3]), "s1": c([3]), "e1": c([6]), "ax": c([1]), "k": np.float32(2.0),
             "W": rng.normal(size=(4, 3, 1)).astype(np.float32)}
    nodes = [helper.make_node("Slice", ["x", "s0", "e0", "ax"], ["a"]),
             helper.make_node("Slice", ["x", "s1", "e1", "ax"], ["b"]),
             helper.make_node("Concat", ["a", "b"], ["ab"], axis=2),          # (1, 3, 2L)
             helper.make_node("Sub", ["k", "ab"], ["left"]),
             helper.make_node("Div", ["ab", "k"], ["right"]),
             helper.make_node("Conv", ["right", "W"], ["conv"]),              # (1, 4, 2L)
             helper.make_node("Concat", ["left", "conv"], ["y"], axis=1)]     # (1, 7, 2L)
    g = helper.make_graph(nodes, "fe", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6, 5])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    model = sl.load(m, dims={})
    X = rng.normal(size=(4, 1, 6, 5)).astype(np.float32)
    ref = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    want = np.stack([ref.run(None, {"x": x})[0].reshape(-1) for x in X])
    np.testing.assert_allclose(model.run(X.reshape(4, -1)), want, atol=1e-5)
