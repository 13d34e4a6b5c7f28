"""Graphs with several outputs: ``outputs=["a", "b"]`` gives a model whose step, run and pool
step return a tuple, one array per output, each equal to onnxruntime's."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from torch import nn

import streamlstm as sl

ort = pytest.importorskip("onnxruntime")


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(4, 8)
        self.a = nn.Linear(8, 3)
        self.b = nn.Linear(8, 2)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.a(y), torch.sigmoid(self.b(y))


@pytest.fixture(scope="module")
def two_heads():
    torch.manual_seed(0)
    buf = io.BytesIO()
    torch.onnx.export(TwoHeads().eval(), (torch.zeros(5, 1, 4),), buf, input_names=["x"], output_names=["a", "b"],
                      dynamo=False, dynamic_axes={"x": {0: "T"}})
    return buf.getvalue()


def test_two_heads_step_run_and_pool(two_heads, tmp_path):
    model = sl.load(two_heads, format="onnx", outputs=["a", "b"])
    assert model.output_widths == (3, 2)
    X = np.random.default_rng(0).normal(size=(9, 1, 4)).astype(np.float32)
    want_a, want_b = ort.InferenceSession(two_heads, providers=["CPUExecutionProvider"]).run(None, {"x": X})
    ya, yb = model.run(X[:, 0])
    np.testing.assert_allclose(ya, want_a[:, 0], atol=1e-5)
    np.testing.assert_allclose(yb, want_b[:, 0], atol=1e-5)
    s = model.session()
    steps = [s.step(x) for x in X[:, 0]]
    assert all(isinstance(o, tuple) and len(o) == 2 for o in steps)
    np.testing.assert_array_equal(np.array([o[0] for o in steps]), ya)
    np.testing.assert_array_equal(np.array([o[1] for o in steps]), yb)
    pool = model.pool(2)
    i = pool.open()
    pa, pb = zip(*[pool.step([i], x[None]) for x in X[:, 0]])
    np.testing.assert_array_equal(np.concatenate(pb), yb)
    model.save(tmp_path / "m.npz")
    back = sl.load(tmp_path / "m.npz")
    assert back.output_widths == (3, 2) and back.fingerprint == model.fingerprint
    one = sl.load(two_heads, format="onnx", outputs=["b"])
    np.testing.assert_allclose(one.run(X[:, 0]), yb, atol=1e-6)
    assert one.fingerprint != model.fingerprint
