"""Loader hardening (issue 18), checked in-process against the real peers.

The sandboxed fuzz test (``test_fuzz_loaders.py``) proves every hostile file of
``support.crafted_files`` is refused safely and for the stated reason. This file checks what the
sandbox cannot see: that the refusals leave no state behind (a BUILD on a shared stand-in cannot
poison later loads), that genuine files of every format fit the load budget with no constant at
all (so the budget is proportional to the bytes and is never what refuses a real model), that
the readers refuse FIFOs when called directly, and that models the hardening touched still give
the peers' answers (tied LSTM weights, a 20,000-node constant chain, against onnxruntime).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import streamlstm as sl
from streamlstm import budget
from streamlstm.errors import ConversionError
from support import crafted_files as C

SEEDS = Path(__file__).resolve().parents[1] / "corpus" / "seeds"
X = np.random.default_rng(7).uniform(-1, 1, (6, 3)).astype(np.float32)


def _build(name: str, d: Path) -> Path:
    fn = next(fn for _, n, fn in C.CASES if n == name)
    d.mkdir(parents=True, exist_ok=True)
    return fn(d)


def test_refused_build_leaves_no_trace(tmp_path):
    """BUILD on the torch.FloatStorage reference is refused, and the next checkpoint still loads
    with torch's own values (the shared stand-in kept its dtype)."""
    torch = pytest.importorskip("torch")
    with pytest.raises(ConversionError, match="pickled state on tensors and storages is refused"):
        sl.load(_build("torch_build_storage_class_dtype", tmp_path / "bad"))
    lstm = torch.nn.LSTM(3, 4)
    torch.save(lstm.state_dict(), tmp_path / "good.pt")
    from streamlstm.converters.torch.pickle import load_torch_file

    got = load_torch_file(tmp_path / "good.pt")
    for k, v in torch.load(tmp_path / "good.pt").items():
        assert got[k].dtype == np.float32
        np.testing.assert_array_equal(got[k], v.numpy())


def test_tied_tensors_become_one_array(tmp_path):
    """Two parameters that are views of one storage come back as one array, not two copies."""
    torch = pytest.importorskip("torch")
    w = torch.randn(16, 3)
    torch.save({"a.weight": w, "b.weight": w.view(16, 3), "c.weight": w[:8]}, tmp_path / "tied.pt")
    from streamlstm.converters.torch.pickle import load_torch_file

    got = load_torch_file(tmp_path / "tied.pt")
    assert got["a.weight"] is got["b.weight"]
    np.testing.assert_array_equal(got["c.weight"], w[:8].numpy())


@pytest.mark.parametrize("seed", ["tiny.npz", "tiny.onnx", "tiny_zip.pt", "tiny_legacy.pt", "tiny.safetensors",
                                  "tiny.keras", "tiny.h5"])
def test_genuine_files_fit_a_small_budget(seed, monkeypatch):
    """With the constant cut from 64 MiB to 64 KiB every seed still loads and runs as before: what
    the readers build from a real file is FACTOR times its bytes and a few KB of parsing."""
    want = sl.load(SEEDS / seed).run(X)
    monkeypatch.setattr(budget, "FLOOR_BYTES", 64 << 10)
    np.testing.assert_array_equal(sl.load(SEEDS / seed).run(X), want)


def test_budget_is_proportional(tmp_path, monkeypatch):
    """A checkpoint with 4 MB of weights loads with a 64 KiB constant; with a factor of 1 it is refused."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(256, 256)
    torch.save(lstm.state_dict(), tmp_path / "big.pt")
    monkeypatch.setattr(budget, "FLOOR_BYTES", 64 << 10)
    model = sl.load(tmp_path / "big.pt")
    x = torch.randn(5, 1, 256)
    with torch.no_grad():
        want = lstm(x)[0][:, 0].numpy()
    np.testing.assert_allclose(model.run(x[:, 0].numpy()), want, atol=1e-5)
    monkeypatch.setattr(budget, "FACTOR", 1)
    with pytest.raises(ConversionError, match="load budget"):
        sl.load(tmp_path / "big.pt")


def test_budget_refusal_changes_nothing(tmp_path):
    """After a refusal the next load starts with a fresh budget (nothing is left charged)."""
    path = _build("torch_many_16mib_records", tmp_path / "bomb")
    for _ in range(3):
        with pytest.raises(ConversionError, match="load budget"):
            sl.load(path)
        assert budget.active() is None
    assert sl.load(SEEDS / "tiny_zip.pt").output_size == 2


READ_FIFO = """
import os, sys
from streamlstm.converters.torch.pickle import load_torch_file
from streamlstm.converters.safetensors import read_safetensors
from streamlstm.converters.keras.files import open_keras_file
from streamlstm.converters.onnx.load import load_model
for reader, name in ((load_torch_file, "p.pt"), (read_safetensors, "p.safetensors"),
                     (open_keras_file, "p.keras"), (load_model, "p.onnx")):
    path = os.path.join(sys.argv[1], name)
    os.mkfifo(path)
    try:
        reader(path)
    except ValueError as e:
        print(type(e).__name__, e)
"""


def test_readers_called_directly_refuse_fifos(tmp_path):
    """Each format's reader, called without sl.load, refuses a FIFO instead of blocking on it."""
    out = subprocess.run([sys.executable, "-c", READ_FIFO, str(tmp_path)], capture_output=True, text=True,
                         timeout=120)
    lines = out.stdout.strip().splitlines()
    assert out.returncode == 0, out.stderr
    assert len(lines) == 4 and all(l.startswith("ConversionError") for l in lines), lines
    assert all("regular file" in l or "no such" in l for l in lines), lines


def _ort(path: Path, x: np.ndarray) -> np.ndarray:
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    first, *states = sess.get_inputs()  # state ports start at zero, like a fresh session
    feeds = {first.name: x, **{i.name: np.zeros(i.shape, np.float32) for i in states}}
    return sess.run(None, feeds)[0]


def test_tied_lstm_nodes_match_onnxruntime(tmp_path):
    """60 LSTM nodes sharing one W and R: loads, and equals onnxruntime."""
    path = _build("onnx_tied_lstm_weights", tmp_path / "tied")
    x = np.random.default_rng(1).uniform(-1, 1, (5, 1, 16)).astype(np.float32)
    model = sl.load(path)
    assert sum(1 for layer in model.network.layers if layer.kind == "LSTM") == 60
    np.testing.assert_allclose(model.run(x[:, 0]), _ort(path, x)[:, 0], atol=1e-5)


def test_long_constant_chain_folds_and_matches_onnxruntime(tmp_path):
    """The LSTM's W behind 20,000 constant Identity nodes folds (no recursion limit) and runs
    like onnxruntime."""
    path = _build("onnx_long_constant_chain", tmp_path / "chain")
    seed = sl.load(SEEDS / "tiny.onnx")
    model = sl.load(path)
    np.testing.assert_array_equal(model.run(X), seed.run(X))
    np.testing.assert_allclose(model.run(X), _ort(path, X).reshape(6, -1), atol=1e-5)


@pytest.mark.parametrize("op", ["Reshape", "Transpose", "Gather", "Concat", "Cast"])
def test_failed_fold_names_the_node_and_the_reason(tmp_path, op):
    """A W computed by a failing op over constants is reported at that op, with numpy's reason;
    onnxruntime refuses the same model too."""
    path = _build(f"onnx_bad_{op.lower()}_on_weights", tmp_path / op)
    with pytest.raises(ConversionError, match=rf"node 'bad_{op}' \(op {op}.*folding it failed: \w+Error"):
        sl.load(path)
    with pytest.raises(Exception):  # onnxruntime's own error types
        _ort(path, X)
