"""A missing optional dependency gives an error that says what to install, never a bare
ModuleNotFoundError; formats that need none keep working without them.

Absence is simulated by ``sys.modules[name] = None`` (import then fails as if not installed) and
dropping the converter modules already imported, so they are imported afresh without it.
"""

from __future__ import annotations

import importlib
import sys

import numpy as np
import pytest

import streamlstm as sl
from streamlstm.errors import ConversionError


def _without(monkeypatch, module: str, *converters: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    for name in list(sys.modules):
        if any(name == c or name.startswith(c + ".") for c in converters):
            monkeypatch.delitem(sys.modules, name)


def _assert_says_install(err: BaseException, *commands: str) -> None:
    assert isinstance(err, ConversionError) and isinstance(err, ImportError)
    for c in commands:
        assert c in str(err), str(err)


def test_keras_file_without_h5py(monkeypatch, tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "m.h5"
    with h5py.File(path, "w") as f:
        f["w"] = np.zeros(3)
    _without(monkeypatch, "h5py", "streamlstm.converters.keras")
    keras_converter = importlib.import_module("streamlstm.converters.keras")
    with pytest.raises(ImportError) as e:
        keras_converter.import_keras(path)
    _assert_says_install(e.value, "pip install h5py", 'pip install "streamlstm[h5]"')
    with pytest.raises(ConversionError) as e:
        sl.load(path)
    _assert_says_install(e.value, "pip install h5py")


def test_torch_export_without_torch(monkeypatch):
    pytest.importorskip("torch")
    _without(monkeypatch, "torch", "streamlstm.converters.torch")
    with pytest.raises(ImportError) as e:
        importlib.import_module("streamlstm.converters.torch.export")
    _assert_says_install(e.value, "pip install torch", 'pip install "streamlstm[torch]"')


def test_torch_and_safetensors_files_need_no_torch(monkeypatch, tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 2)
    torch.save(lin.state_dict(), tmp_path / "m.pt")
    st = pytest.importorskip("safetensors.torch")
    st.save_file(lin.state_dict(), tmp_path / "m.safetensors")
    want = lin.weight.detach().numpy()
    _without(monkeypatch, "torch", "streamlstm.converters.torch")
    torch_converter = importlib.import_module("streamlstm.converters.torch")
    for name in ("m.pt", "m.safetensors"):
        with pytest.warns(UserWarning, match="inferred"):
            net = torch_converter.import_torch(tmp_path / name)
        np.testing.assert_array_equal(net.layers[0].W, want)
    assert sys.modules["torch"] is None
