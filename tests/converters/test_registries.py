"""The converters' registries: format -> importer, ONNX op -> handler, layer kind -> exporter, and
the shared post-import pass. Each table is what the code dispatches on, so editing an entry
changes behaviour; these tests edit entries (restored afterwards) and check the effect.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import streamlstm as sl
from streamlstm.converters import registry
from streamlstm.converters.normalise import normalise
from streamlstm.converters.onnx import export_onnx, import_onnx
from streamlstm.converters.onnx import export as onnx_export
from streamlstm.converters.onnx.ops import STREAM_OPS, stream_op, supported_ops
from streamlstm.errors import ConversionError
from streamlstm.loading import import_network
from streamlstm.network import GRU, LSTM, Activation, Dense, Network, act
from support.reference import reference_run


def _rng_dense(rng, o, i, activation="Identity", name=""):
    return Dense(rng.normal(size=(o, i)), rng.normal(size=o), act(activation), name=name)


def _lstm(rng, i, h, name=""):
    return LSTM(W=rng.normal(size=(1, 4 * h, i)) * 0.5, R=rng.normal(size=(1, 4 * h, h)) * 0.5,
                Wb=rng.normal(size=(1, 4 * h)), Rb=rng.normal(size=(1, 4 * h)), name=name)


# ------------------------------------------------------------------ format -> importer
@pytest.mark.parametrize("name, fmt", [("m.onnx", "onnx"), ("m.PT", "torch"), ("m.pth", "torch"),
                                       ("m.ckpt", "torch"), ("m.bin", "torch"), ("m.keras", "keras"),
                                       ("m.h5", "keras"), ("m.hdf5", "keras"), ("m.npz", "native"),
                                       ("m.safetensors", "safetensors")])
def test_format_of_extension(tmp_path, name, fmt):
    assert registry.format_of(tmp_path / name) == fmt


def test_safetensors_content_is_told_apart_from_a_torch_pickle(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    path = tmp_path / "model.bin"
    st.save_file({"weight": np.ones((2, 3), np.float32), "bias": np.zeros(2, np.float32)}, path)
    assert registry.format_of(path) == "safetensors"
    assert registry.format_of(path, "torch") == "safetensors"
    with pytest.warns(UserWarning, match="inferred"):
        net = import_network(path)
    np.testing.assert_array_equal(net.layers[0].W, np.ones((2, 3)))


def test_unknown_format_and_extension():
    with pytest.raises(ConversionError, match="unknown file extension"):
        registry.format_of("model.xyz")
    with pytest.raises(ValueError, match="format: expected one of"):
        import_network("model.onnx", format="tflite")
    with pytest.raises(ConversionError, match="cannot tell the format"):
        registry.format_of(3.5)


def test_a_registered_format_is_what_load_uses(monkeypatch, tmp_path):
    rng = np.random.default_rng(0)
    net = Network([_rng_dense(rng, 2, 3)])
    seen = []

    def toy(source, **options):
        seen.append((source, options))
        return net

    monkeypatch.setitem(registry.FORMATS, "toy", registry.Format("toy", (".toy",), toy))
    path = tmp_path / "m.toy"
    path.write_bytes(b"toy model")  # loads read only regular files
    assert import_network(path, scale=2) is net
    assert seen == [(path, {"scale": 2})]
    assert sl.load(path).output_size == 2


def test_native_takes_no_options(tmp_path):
    Network([_rng_dense(np.random.default_rng(1), 2, 3)]).save(tmp_path / "m.npz")
    with pytest.raises(TypeError, match="no options"):
        import_network(tmp_path / "m.npz", layers=["x"])


# ------------------------------------------------------------------ shared post-import pass
def test_normalise_fuses_and_drops_identity_without_touching_its_input():
    rng = np.random.default_rng(2)
    dense = _rng_dense(rng, 4, 3, name="fc")
    relu = Activation(act("Relu"), name="relu")
    ident = Activation(act("Identity"), name="noop")
    before = (dense.activation, relu.activation)
    net = normalise([ident, dense, relu, ident], source="test")
    assert [l.kind for l in net.layers] == ["Dense"]
    assert net.layers[0].activation.name == "Relu" and net.layers[0] is not dense
    assert (dense.activation, relu.activation) == before
    X = rng.normal(size=(5, 3))
    np.testing.assert_allclose(reference_run(net, X)[0],
                               reference_run(Network([dense, relu]), X)[0])


def test_normalise_keeps_an_activation_after_a_dense_that_has_one():
    rng = np.random.default_rng(3)
    net = normalise([_rng_dense(rng, 4, 3, "Tanh"), Activation(act("Relu"))], source="test")
    assert [l.kind for l in net.layers] == ["Dense", "Activation"]


def test_normalise_errors_name_the_source():
    with pytest.raises(ConversionError, match="src.onnx: nothing to import"):
        normalise([Activation(act("Identity"))], source="src.onnx", input_size=3)
    with pytest.raises(ConversionError, match="src.onnx: cannot tell the input width"):
        normalise([Activation(act("Relu"))], source="src.onnx")


def test_every_importer_ends_with_the_shared_pass():
    torch = pytest.importorskip("torch")
    from streamlstm.converters.torch import import_torch
    torch.manual_seed(0)
    seq = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Identity(), torch.nn.Tanh())
    assert [l.kind for l in import_torch(seq).layers] == ["Dense"]
    rng = np.random.default_rng(4)
    onnx_net = import_onnx(export_onnx(Network([_rng_dense(rng, 4, 3), Activation(act("Tanh"))])))
    assert [l.kind for l in onnx_net.layers] == ["Dense"]
    assert onnx_net.layers[0].activation.name == "Tanh"


# ------------------------------------------------------------------ ONNX op -> handler
def _graph_with(op: str) -> onnx.ModelProto:
    rng = np.random.default_rng(5)
    W = numpy_helper.from_array(rng.normal(size=(4, 3)).astype(np.float32), "W")
    nodes = [helper.make_node(op, ["x"], ["t"], name="front"),
             helper.make_node("Gemm", ["t", "W"], ["y"], transB=1, name="fc")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [W])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_the_handler_table_is_the_supported_list(monkeypatch):
    with pytest.raises(ConversionError) as e:
        import_onnx(_graph_with("Abs"))
    assert "op Abs is not supported" in str(e.value)
    assert f"Supported ops: {', '.join(supported_ops())}" in str(e.value)
    monkeypatch.setitem(STREAM_OPS, "Abs", STREAM_OPS["Identity"])
    assert "Abs" in supported_ops()
    net = import_onnx(_graph_with("Abs"))
    assert [l.kind for l in net.layers] == ["Dense"]


def test_a_handler_is_registered_once():
    with pytest.raises(ValueError, match="already has a handler"):
        stream_op("LSTM")(lambda *a: None)


# ------------------------------------------------------------------ layer kind -> exporter
def test_onnx_exporter_table_is_what_export_uses(monkeypatch):
    net = Network([_rng_dense(np.random.default_rng(6), 2, 3, "Relu")])
    monkeypatch.delitem(onnx_export.EXPORTERS, "Dense")
    with pytest.raises(ConversionError, match="has no ONNX form"):
        export_onnx(net)


def test_torch_exporter_matches_the_reference():
    pytest.importorskip("torch")
    import torch
    from streamlstm.converters.torch.export import BUILDERS, to_torch
    rng = np.random.default_rng(7)
    gru = GRU(W=rng.normal(size=(1, 9, 5)) * 0.5, R=rng.normal(size=(1, 9, 3)) * 0.5,
              Wb=rng.normal(size=(1, 9)), Rb=rng.normal(size=(1, 9)), linear_before_reset=True)
    net = Network([_lstm(rng, 4, 5, "a"), _lstm(rng, 5, 5, "b"), gru,
                   _rng_dense(rng, 2, 3, "Relu"), Activation(act("Sigmoid"))])
    assert set(BUILDERS) == {"LSTM", "GRU", "RNN", "Dense", "Activation", "Embedding", "TimeConv1d",
                             "LayerNorm", "Elementwise"}
    X = rng.normal(size=(7, 4))
    tn = to_torch(net, "float64")
    with torch.no_grad():
        y, _ = tn(torch.from_numpy(X)[:, None], tn.initial_state())
    np.testing.assert_allclose(y.numpy()[:, 0], reference_run(net, X)[0], atol=1e-10)
    assert len(tn.modules_) == 3  # the two LSTMs share one nn.LSTM
    with pytest.raises(ConversionError, match="linear_before_reset"):
        to_torch(Network([replace(gru, linear_before_reset=False)]))
    from streamlstm.network import Elementwise, Embedding, LayerNorm, TimeConv1d
    front = Network([Embedding(rng.normal(size=(11, 6))),
                     TimeConv1d(rng.normal(size=(6, 3, 3)), rng.normal(size=6), dilation=2, groups=2, activation="Tanh"),
                     LayerNorm(rng.normal(size=3), rng.normal(size=3)), Elementwise("mul", rng.normal(size=6)),
                     Elementwise("add", rng.normal(size=6)), replace(gru, W=rng.normal(size=(1, 9, 6)))])
    ids = rng.integers(0, 11, size=9).astype(np.float64)
    tn = to_torch(front, "float64")
    with torch.no_grad():
        y1, st = tn(torch.from_numpy(ids[:4])[:, None, None], tn.initial_state())
        y2, _ = tn(torch.from_numpy(ids[4:])[:, None, None], st)
    y = torch.cat([y1, y2]).numpy()[:, 0]
    np.testing.assert_allclose(y, reference_run(front, ids.reshape(-1, 1))[0], atol=1e-10)
