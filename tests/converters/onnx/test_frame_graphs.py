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
