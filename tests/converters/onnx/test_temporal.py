"""Front ends on the time axis from torch-exported ONNX: an Embedding (Gather from a constant
table by token ids) and convolutions over time (causal through a left Pad, or non-causal with
symmetric pads), each against onnxruntime; causal ones also step frame by frame."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from torch import nn

import streamlstm as sl

ort = pytest.importorskip("onnxruntime")


def _export(module: nn.Module, example: torch.Tensor, axis: int) -> bytes:
    buf = io.BytesIO()
    torch.onnx.export(module, (example,), buf, input_names=["x"], output_names=["y"], dynamo=False,
                      dynamic_axes={"x": {axis: "T"}, "y": {0: "T"}})
    return buf.getvalue()


def _ort(data: bytes, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


class Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(40, 8)
        self.rnn = nn.LSTM(8, 16)
        self.fc = nn.Linear(16, 5)

    def forward(self, ids):            # ids (T, 1)
        y, _ = self.rnn(self.emb(ids))
        return self.fc(y)[:, 0]


class CausalCRNN(nn.Module):
    def __init__(self, causal: bool = True):
        super().__init__()
        self.causal = causal
        self.conv = nn.Conv1d(6, 12, 3, dilation=2, padding=0 if causal else 2)
        self.conv2 = nn.Conv1d(12, 12, 2, groups=3)
        self.gru = nn.GRU(12, 10)
        self.fc = nn.Linear(10, 3)

    def forward(self, x):             # x (1, 6, T)
        if self.causal:
            x = nn.functional.pad(x, (4, 0))
        x = torch.relu(self.conv(x))
        x = self.conv2(nn.functional.pad(x, (1, 0)))
        y, _ = self.gru(x.permute(2, 0, 1))
        return self.fc(y)[:, 0]


def test_embedding_tagger_from_onnx():
    torch.manual_seed(0)
    net = Tagger().eval()
    data = _export(net, torch.zeros(5, 1, dtype=torch.long), 0)
    model = sl.load(data, format="onnx")
    assert isinstance(model.network.layers[0], sl.Embedding) and model.vocabulary == 40
    ids = np.random.default_rng(0).integers(0, 40, size=(17, 1))
    want = _ort(data, ids)
    np.testing.assert_allclose(model.run(ids[:, 0]), want, atol=1e-5)
    s = model.session()
    np.testing.assert_allclose(np.array([s.step(int(i)) for i in ids[:, 0]]), want, atol=1e-5)


def test_causal_conv_front_end_streams():
    torch.manual_seed(1)
    net = CausalCRNN().eval()
    data = _export(net, torch.zeros(1, 6, 9), 2)
    model = sl.load(data, format="onnx")
    kinds = [l.kind for l in model.network.layers]
    assert kinds[:2] == ["TimeConv1d", "TimeConv1d"] and model.streamable
    X = np.random.default_rng(1).normal(size=(1, 6, 23)).astype(np.float32)
    want = _ort(data, X)
    with torch.no_grad():
        np.testing.assert_allclose(net(torch.from_numpy(X)).numpy(), want, atol=1e-5)
    frames = X[0].T
    np.testing.assert_allclose(model.run(frames), want, atol=1e-5)
    s = model.session()
    np.testing.assert_allclose(np.array([s.step(f) for f in frames]), want, atol=1e-5)
    s.reset()
    np.testing.assert_allclose(np.concatenate([s.run(frames[:7]), s.run(frames[7:])]), want, atol=1e-5)


def test_non_causal_conv_runs_whole_sequences():
    torch.manual_seed(2)
    net = CausalCRNN(causal=False).eval()
    data = _export(net, torch.zeros(1, 6, 9), 2)
    model = sl.load(data, format="onnx")
    assert not model.streamable
    X = np.random.default_rng(2).normal(size=(1, 6, 15)).astype(np.float32)
    np.testing.assert_allclose(model.run(X[0].T), _ort(data, X), atol=1e-5)
    with pytest.raises(ValueError, match="whole sequences"):
        model.session().step(X[0, :, 0])
