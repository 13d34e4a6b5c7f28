"""PyTorch checkpoints on disk -> streamlstm, without torch and without running code from the file.

One trained model is loaded from the module, its state dict, a zip ``.pt``, a legacy ``.pt``,
``.safetensors``, a nested checkpoint and a Lightning-style checkpoint: every source gives the
same Network bit for bit, and its 500 streamed frames match torch within 1e-5. The loaders run
in a subprocess where ``import torch`` fails. Crafted pickles whose unpickling would write a
file are refused and the file is never written; bad tensors and truncated files are refused.
Structure inference (type from the gate multiple, order from shapes) and ``layers=``/``key=``/
``prefix=`` are covered on state dicts.
"""

from __future__ import annotations

import collections
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from torch import nn

import streamlstm as sl
from streamlstm.converters.torch import import_torch
from streamlstm.converters.torch.pickle import load_torch_file

pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported")

TOL = 1e-5
STEPS = 500
I, H, O = 5, 16, 3


class Tagger(nn.Module):
    """A typical sequence model: a 2-layer LSTM and a per-frame Linear head."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(I, H, num_layers=2, batch_first=True)
        self.fc = nn.Linear(H, O)

    def forward(self, x):
        return self.fc(self.lstm(x)[0])


def _train(model: nn.Module, steps: int = 25) -> torch.optim.Optimizer:
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        x = torch.randn(4, 20, I, generator=g)
        loss = ((model(x) - x[..., :O].cumsum(1) * 0.1) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return opt.eval() if hasattr(opt, "eval") else opt


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The trained model, its torch output on 500 frames, and the same weights in every container."""
    torch.manual_seed(1)
    model = Tagger()
    opt = _train(model)
    model.eval()
    d = tmp_path_factory.mktemp("ckpt")
    sd = model.state_dict()
    torch.save(sd, d / "zip.pt")
    torch.save(sd, d / "legacy.pth", _use_new_zipfile_serialization=False)
    safetensors.torch.save_file(sd, d / "model.safetensors")
    nested = {"epoch": 5, "model_state": sd, "optimizer": opt.state_dict(), "loss": 0.25,
              "best": np.float64(0.125), "tags": ["a", "b"], "dtype": torch.float32}
    torch.save(nested, d / "nested.ckpt")
    lightning = {"epoch": 3, "global_step": 75, "pytorch-lightning_version": "2.4.0",
                 "state_dict": collections.OrderedDict((f"model.{k}", v) for k, v in sd.items()),
                 "optimizer_states": [opt.state_dict()], "lr_schedulers": [],
                 "hyper_parameters": {"hidden": H, "lr": 1e-2}}
    torch.save(lightning, d / "lightning.ckpt", _use_new_zipfile_serialization=False)
    X = np.random.default_rng(7).normal(size=(STEPS, I)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(X)[None])[0].numpy()
    return {"model": model, "sd": sd, "dir": d, "X": X, "expected": expected}


SOURCES = {
    "module": lambda t: (t["model"], {"layers": ["lstm", "fc"]}),
    "state_dict": lambda t: (t["sd"], {}),
    "zip": lambda t: (t["dir"] / "zip.pt", {}),
    "legacy": lambda t: (t["dir"] / "legacy.pth", {}),
    "safetensors": lambda t: (t["dir"] / "model.safetensors", {}),
    "nested": lambda t: (t["dir"] / "nested.ckpt", {}),
    "nested_key": lambda t: (t["dir"] / "nested.ckpt", {"key": "model_state"}),
    "lightning": lambda t: (t["dir"] / "lightning.ckpt", {}),
    "lightning_prefix": lambda t: (t["dir"] / "lightning.ckpt", {"prefix": "model"}),
}


def _arrays(net: sl.Network) -> list[tuple[str, np.ndarray]]:
    return [(f"{i}.{k}", v) for i, l in enumerate(net.layers) for k, v in l.arrays().items()]


def _same_network(a: sl.Network, b: sl.Network) -> None:
    assert [l.kind for l in a.layers] == [l.kind for l in b.layers]
    pa, pb = _arrays(a), _arrays(b)
    assert [k for k, _ in pa] == [k for k, _ in pb]
    for (k, x), (_, y) in zip(pa, pb):
        assert np.array_equal(x, y), k


@pytest.mark.parametrize("source", list(SOURCES))
def test_every_container_gives_the_same_streamed_outputs(trained, source):
    src, kw = SOURCES[source](trained)
    model = sl.load(src, **kw)
    _same_network(model.network, import_torch(trained["model"], layers=["lstm", "fc"]))
    s = model.session()
    got = np.stack([s.step(x) for x in trained["X"]])
    err = np.abs(got - trained["expected"]).max()
    assert err <= TOL, err
    reference = sl.load(trained["model"], layers=["lstm", "fc"]).session()
    assert np.array_equal(got, np.stack([reference.step(x) for x in trained["X"]]))


def test_checkpoints_load_with_torch_absent(trained, tmp_path):
    d = trained["dir"]
    jobs = [(d / "zip.pt", {}), (d / "legacy.pth", {}), (d / "model.safetensors", {}),
            (d / "nested.ckpt", {}), (d / "lightning.ckpt", {"prefix": "model"})]
    script = "\n".join([
        "import sys, json",
        "sys.modules['torch'] = None",
        "sys.modules['safetensors'] = None",
        "from streamlstm.converters.torch import import_torch",
        f"for i, (src, kw) in enumerate(json.loads({json.dumps(json.dumps([(str(p), k) for p, k in jobs]))})):",
        f"    import_torch(src, **kw).save({str(tmp_path)!r} + f'/net{{i}}.npz')",
        "try:",
        "    import torch",
        "except ImportError:",
        "    print('torch absent')",
    ])
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "torch absent" in r.stdout
    want = import_torch(trained["model"], layers=["lstm", "fc"])
    for i in range(len(jobs)):
        _same_network(sl.Network.load(tmp_path / f"net{i}.npz"), want)


# ---------------------------------------------------------------- code execution is refused
class WriteFile:
    """Unpickling this opens (creates) ``path`` for writing."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


class ExecCode:
    """Unpickling this runs Python source that creates ``path``."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (exec, (f"open({self.path!r}, 'w').close()",))


@pytest.mark.parametrize("container", ["zip", "legacy"])
@pytest.mark.parametrize("payload,global_name", [(WriteFile, "io.open"), (ExecCode, "builtins.exec")])
@pytest.mark.parametrize("position", ["before", "after"])
def test_code_in_the_pickle_is_refused_before_it_runs(trained, tmp_path, container, payload,
                                                      global_name, position):
    target = tmp_path / "pwned"
    items = [("evil", payload(target)), ("state_dict", trained["sd"])]
    ckpt = dict(items if position == "before" else items[::-1])
    path = tmp_path / "evil.pt"
    torch.save(ckpt, path, _use_new_zipfile_serialization=container == "zip")
    with pytest.raises(sl.ConversionError, match=rf"refusing to unpickle the global {global_name}"):
        sl.load(path)
    with pytest.raises(sl.ConversionError, match="refusing"):
        load_torch_file(path)
    assert not target.exists()
    # The payload is real: an unrestricted unpickler does write the file.
    torch.load(path, weights_only=False)
    assert target.exists()


def test_a_pickled_whole_module_is_refused_with_advice(trained, tmp_path):
    path = tmp_path / "whole.pt"
    torch.save(trained["model"], path)
    with pytest.raises(sl.ConversionError, match=r"global .*Tagger.*state_dict"):
        sl.load(path)


def test_plain_pickles_and_other_files_are_not_checkpoints(tmp_path):
    p = tmp_path / "plain.pt"
    p.write_bytes(pickle.dumps({"w": np.zeros(3)}, protocol=2))
    with pytest.raises(sl.ConversionError, match="bad magic number"):
        sl.load(p)
    q = tmp_path / "text.pt"
    q.write_text("hello")
    with pytest.raises(sl.ConversionError, match="not a torch.save checkpoint"):
        sl.load(q)


# ---------------------------------------------------------------- crafted tensors and files
class _Storage:
    def __init__(self, numel: int):
        self.numel = numel


class _Tensor:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride, False, collections.OrderedDict())


class _CraftPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            return ("storage", torch.FloatStorage, "0", "cpu", obj.numel)
        return None

    def reducer_override(self, obj):
        if isinstance(obj, _Tensor):
            return (torch._utils._rebuild_tensor_v2, obj.args)
        return NotImplemented


def _crafted_zip(path: Path, numel: int, offset: int, size: tuple, stride: tuple) -> np.ndarray:
    data = np.arange(numel, dtype=np.float32)
    buf = __import__("io").BytesIO()
    _CraftPickler(buf, protocol=2).dump({"w": _Tensor(_Storage(numel), offset, size, stride)})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/data/0", data.tobytes())
        z.writestr("archive/version", "3\n")
    return data


def test_crafted_strided_tensor_matches_torch(tmp_path):
    path = tmp_path / "ok.pt"
    _crafted_zip(path, numel=20, offset=3, size=(3, 4), stride=(1, 4))
    ours = load_torch_file(path)["w"]
    theirs = torch.load(path)["w"].numpy()
    assert ours.dtype == np.float32 and np.array_equal(ours, theirs)


@pytest.mark.parametrize("offset,size,stride", [(0, (30,), (1,)), (15, (2, 4), (4, 1)),
                                                (0, (5,), (5,))])
def test_tensor_outside_its_storage_is_refused(tmp_path, offset, size, stride):
    path = tmp_path / "oob.pt"
    _crafted_zip(path, numel=20, offset=offset, size=size, stride=stride)
    with pytest.raises(sl.ConversionError, match="reaches element"):
        load_torch_file(path)


def test_expanded_tensor_is_not_materialized(tmp_path):
    path = tmp_path / "expand.pt"
    _crafted_zip(path, numel=4, offset=0, size=(10 ** 6, 10 ** 6), stride=(0, 0))
    with pytest.raises(sl.ConversionError, match="more elements than its storage"):
        load_torch_file(path)


def test_storage_record_shorter_than_declared_is_refused(tmp_path):
    path = tmp_path / "short.pt"
    torch.save({"w": torch.ones(10)}, path)
    with zipfile.ZipFile(path) as z:
        records = {n: z.read(n) for n in z.namelist()}
    key = next(n for n in records if "/data/" in n)
    records[key] = records[key][:8]
    with zipfile.ZipFile(path, "w") as z:
        for n, b in records.items():
            z.writestr(n, b)
    with pytest.raises(sl.ConversionError, match="has 8 bytes, 40 expected"):
        load_torch_file(path)


def test_truncated_legacy_checkpoint_is_refused(trained, tmp_path):
    data = (trained["dir"] / "legacy.pth").read_bytes()
    path = tmp_path / "cut.pth"
    path.write_bytes(data[:-100])
    with pytest.raises(sl.ConversionError, match="truncated"):
        sl.load(path)


def test_dtypes_views_and_sharing_match_torch(tmp_path):
    base = torch.arange(24, dtype=torch.float32)
    obj = {"f64": torch.randn(3, 2, dtype=torch.float64), "f16": torch.randn(4).half(),
           "bf16": torch.randn(5).bfloat16(), "i64": torch.arange(6), "bool": torch.tensor([True, False]),
           "t": base.reshape(4, 6).t(), "slice": base[5:11], "same": base, "param": nn.Parameter(torch.ones(2)),
           "nested": [(1, 2.5, "x", None), {"s": {1, 2}, "b": b"raw"}], "empty": torch.zeros(0, 3)}
    for zip_format in (True, False):
        path = tmp_path / f"d{zip_format}.pt"
        torch.save(obj, path, _use_new_zipfile_serialization=zip_format)
        ours, theirs = load_torch_file(path), torch.load(path)
        for k, v in theirs.items():
            if isinstance(v, torch.Tensor):
                want = (v.float() if v.dtype == torch.bfloat16 else v).detach().numpy()
                assert ours[k].dtype == want.dtype and np.array_equal(ours[k], want), k
        assert ours["nested"] == [(1, 2.5, "x", None), {"s": {1, 2}, "b": b"raw"}]


def _safetensors_file(path: Path, header: dict, data: bytes, header_len: int | None = None) -> None:
    raw = json.dumps(header).encode()
    n = len(raw) if header_len is None else header_len
    path.write_bytes(n.to_bytes(8, "little") + raw + data)


@pytest.mark.parametrize("header,data,header_len,match", [
    ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8, None, "outside the data buffer"),
    ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 12]}}, b"\0" * 16, None, "needs 16"),
    ({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4, None, "bad shape"),
    ({"w": {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}}, b"\0" * 4, None, "unsupported dtype"),
    ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4, 10 ** 6, "does not fit"),
])
def test_bad_safetensors_are_refused(tmp_path, header, data, header_len, match):
    path = tmp_path / "bad.safetensors"
    _safetensors_file(path, header, data, header_len)
    with pytest.raises(sl.ConversionError, match=match):
        sl.load(path)


def test_safetensors_dtypes_match_the_reference_writer(tmp_path):
    from streamlstm.converters.safetensors import read_safetensors

    tensors = {"a": torch.randn(3, 4), "b": torch.randn(5).half(), "c": torch.randn(2, 2).bfloat16(),
               "d": torch.arange(7, dtype=torch.int32), "e": torch.randn(2, dtype=torch.float64)}
    safetensors.torch.save_file(tensors, tmp_path / "t.safetensors")
    ours = read_safetensors(tmp_path / "t.safetensors")
    for k, v in tensors.items():
        want = (v.float() if v.dtype == torch.bfloat16 else v).numpy()
        assert ours[k].dtype == want.dtype and np.array_equal(ours[k], want), k


# ---------------------------------------------------------------- structure from state dicts
def _expected(m: nn.Module, X: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        y = m(torch.from_numpy(X)[None])
    return (y[0] if isinstance(y, tuple) else y)[0].numpy()


def _max_err(model: sl.Model, X: np.ndarray, want: np.ndarray) -> float:
    got = model.run(X) if not model.network.streamable else np.stack(
        [y for s in [model.session()] for y in (s.step(x) for x in X)])
    return float(np.abs(got - want).max())


@pytest.mark.parametrize("kind,kw", [("LSTM", {}), ("GRU", {}), ("RNN", {}), ("LSTM", {"proj_size": 4}),
                                     ("GRU", {"bidirectional": True, "num_layers": 2})])
def test_layer_type_inferred_from_gate_multiple(kind, kw, tmp_path):
    torch.manual_seed(5)
    m = getattr(nn, kind)(I, 8, batch_first=True, **kw).eval()
    X = np.random.default_rng(1).normal(size=(STEPS, I)).astype(np.float32)
    safetensors.torch.save_file(m.state_dict(), tmp_path / "m.safetensors")
    for src in (m.state_dict(), tmp_path / "m.safetensors"):
        model = sl.load(src)
        assert {l.kind for l in model.network.layers} == {kind}
        assert _max_err(model, X, _expected(m, X)) <= TOL


@pytest.mark.parametrize("cell", ["LSTMCell", "GRUCell", "RNNCell"])
def test_cell_state_dicts(cell):
    torch.manual_seed(6)
    m = getattr(nn, cell)(I, 7).eval()
    net = import_torch(m.state_dict())
    assert net.layers[0].kind == cell.removesuffix("Cell")
    _same_network(net, import_torch(m))


class HeadFirst(nn.Module):
    """Registers its head before its LSTM, so key order is not forward order."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(12, 2)
        self.rnn = nn.LSTM(I, 12)

    def forward(self, x):
        return self.head(self.rnn(x)[0])


def test_order_inferred_from_shapes(tmp_path):
    torch.manual_seed(7)
    m = HeadFirst().eval()
    safetensors.torch.save_file(m.state_dict(), tmp_path / "m.safetensors")
    torch.save(m.state_dict(), tmp_path / "m.pt")
    want = import_torch(m, layers=["rnn", "head"])
    for src in (m.state_dict(), tmp_path / "m.pt", tmp_path / "m.safetensors"):
        _same_network(import_torch(src), want)


def test_sequential_order_from_numeric_names_in_safetensors(tmp_path):
    torch.manual_seed(8)
    seq = nn.Sequential(*[nn.Linear(4, 4) for _ in range(11)])  # 0..10: "10" sorts before "2" as text
    safetensors.torch.save_file(seq.state_dict(), tmp_path / "s.safetensors")
    _same_network(import_torch(tmp_path / "s.safetensors"), import_torch(seq))


def test_ambiguous_order_asks_for_layers(tmp_path):
    torch.manual_seed(9)
    m = nn.ModuleDict({"rnn": nn.LSTM(8, 8), "fc": nn.Linear(8, 8)})
    safetensors.torch.save_file(m.state_dict(), tmp_path / "m.safetensors")
    with pytest.raises(sl.ConversionError, match=r"ambiguous.*layers="):
        import_torch(tmp_path / "m.safetensors")
    net = import_torch(tmp_path / "m.safetensors", layers=["rnn", "fc"])
    assert [l.kind for l in net.layers] == ["LSTM", "Dense"]


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(I, 10, nonlinearity="relu", batch_first=True)
        self.hidden = nn.Linear(10, 6)
        self.out = nn.Linear(6, 4)

    def forward(self, x):
        y = torch.relu(self.hidden(self.rnn(x)[0]))
        return torch.softmax(self.out(y), dim=-1)


def test_layers_spec_adds_types_and_activations_a_state_dict_cannot_hold(tmp_path):
    torch.manual_seed(10)
    m = Classifier().eval()
    with torch.no_grad():
        m.rnn.weight_hh_l0.mul_(0.5)
    torch.save({"model": m.state_dict()}, tmp_path / "c.pt", _use_new_zipfile_serialization=False)
    X = np.random.default_rng(2).normal(size=(STEPS, I)).astype(np.float32)
    spec = [("rnn", "RNN", {"nonlinearity": "relu"}), {"name": "hidden", "type": "Linear"}, "ReLU",
            ("out",), ("Softmax", {"dim": -1})]
    model = sl.load(tmp_path / "c.pt", layers=spec)
    assert model.network.layers[0].activations[0].name == "Relu"
    assert _max_err(model, X, _expected(m, X)) <= TOL
    # Without the spec the activations are unknown: the result differs from torch.
    assert _max_err(sl.load(tmp_path / "c.pt"), X, _expected(m, X)) > 1e-2


@pytest.mark.parametrize("spec,match", [
    ([("rnn", "GRU"), "hidden", "out"], "declared GRU, but the weights have RNN's gate count"),
    ([("rnn", "RNN", {"num_layers": 2}), "hidden", "out"], "num_layers=2, but the weights say num_layers=1"),
    ([("rnn", "RNN", {"nonlinearity": "gelu"}), "hidden", "out"], "nonlinearity='gelu'"),
    (["rnn", "act", "out"], "no parameters under 'act'"),
    ([("rnn", "LSTM", {"peepholes": True})], r"takes no option\(s\) \['peepholes'\]"),
    ([("rnn", "Conv2d")], "unknown layer type 'Conv2d'"),
    ("rnn", "non-empty list"),
])
def test_bad_layer_specs_are_explained(spec, match):
    with pytest.raises(sl.ConversionError, match=match):
        import_torch(Classifier().state_dict(), layers=spec)


def test_nested_checkpoint_selection():
    torch.manual_seed(11)
    a, b = Tagger().state_dict(), Tagger().state_dict()
    picked = import_torch({"epoch": 1, "model": a, "ema": b})
    _same_network(picked, import_torch(a))
    _same_network(import_torch({"epoch": 1, "model": a, "ema": b}, key="ema"), import_torch(b))
    _same_network(import_torch({"runs": [{"weights": b}]}, key=["runs", 0, "weights"]), import_torch(b))
    with pytest.raises(sl.ConversionError, match=r"several state dicts.*key="):
        import_torch({"first": a, "second": b})
    with pytest.raises(sl.ConversionError, match="key .*'missing'.* not found"):
        import_torch({"model": a}, key="missing")


def test_lightning_prefix_and_extra_modules():
    torch.manual_seed(12)
    sd = {f"model.{k}": v for k, v in Tagger().state_dict().items()}
    sd["criterion.pos_weight"] = torch.ones(O)
    ckpt = {"state_dict": sd, "epoch": 2}
    with pytest.raises(sl.ConversionError, match=r"criterion.*pos_weight.*prefix="):
        import_torch(ckpt)
    want = import_torch({k[6:]: v for k, v in sd.items() if k.startswith("model.")})
    _same_network(import_torch(ckpt, prefix="model"), want)
    _same_network(import_torch(ckpt, layers=["lstm", "fc"]), want)
