"""torch front-end layers: nn.Embedding, nn.Conv1d over time (causal by a left pad in forward,
or centred), nn.BatchNorm1d folded at load (eval-mode running statistics) and nn.LayerNorm,
from modules, state dicts and a legacy (non-zip) torch.save pickle, compared with torch."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import streamlstm as sl
from streamlstm.converters.torch import import_torch
from streamlstm.errors import ConversionError
from streamlstm.network import Dense, Embedding, LayerNorm, TimeConv1d

TOL = 1e-5
T = 400
V, D = 40, 16


def _stream(model: sl.Model, X) -> np.ndarray:
    s = model.session()
    return np.stack([s.step(x) for x in X])


def _randomise_bn(module: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm1d):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=g) * 2 - 1)
                m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.rand(n, generator=g) - 0.5)


# ---------------------------------------------------------------------------------- embeddings
class LangId(nn.Module):
    """A language identifier: character embedding, 2-layer BiLSTM, per-frame language scores."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(V, D, padding_idx=0)
        self.lstm = nn.LSTM(D, 20, num_layers=2, bidirectional=True, batch_first=True)
        self.fc = nn.Linear(40, 6)

    def forward(self, ids):
        return self.fc(self.lstm(self.embedding(ids))[0])


@pytest.fixture(scope="module")
def langid():
    torch.manual_seed(0)
    return LangId().eval()


def test_legacy_pickle_embedding_bilstm_language_identifier(tmp_path, langid):
    path = tmp_path / "langid.pt"
    torch.save(langid.state_dict(), path, _use_new_zipfile_serialization=False)
    ids = np.random.default_rng(1).integers(0, V, size=T)
    with torch.no_grad():
        ref = langid(torch.from_numpy(ids)[None]).numpy()[0]
    with pytest.warns(UserWarning, match="inferred"):
        model = sl.load(str(path))
    assert isinstance(model.network.layers[0], Embedding) and not model.streamable
    assert np.abs(model.run(ids) - ref).max() <= TOL
    assert np.abs(model.run(ids.reshape(-1, 1)) - ref).max() <= TOL
    spec = sl.load(str(path), layers=["embedding", "lstm", "fc"])  # the chain stated: no warning
    assert np.abs(spec.run(ids) - ref).max() <= TOL
    with pytest.raises(ValueError, match="future frames"):
        model.session().step(3)


class Tagger(nn.Module):
    def __init__(self, emb_name: str = "tok"):
        super().__init__()
        self.emb_name = emb_name
        setattr(self, emb_name, nn.Embedding(V, D))
        self.norm = nn.LayerNorm(D)
        self.gru = nn.GRU(D, 12, batch_first=True)
        self.fc = nn.Linear(12, 5)

    def forward(self, ids):
        return self.fc(self.gru(self.norm(getattr(self, self.emb_name)(ids)))[0])


def test_module_embedding_layernorm_gru_streams_token_ids():
    torch.manual_seed(2)
    m = Tagger().eval()
    with torch.no_grad():
        m.norm.weight.uniform_(0.5, 1.5)
        m.norm.bias.uniform_(-0.5, 0.5)
    ids = np.random.default_rng(3).integers(0, V, size=T)
    with torch.no_grad():
        ref = m(torch.from_numpy(ids)[None]).numpy()[0]
    model = sl.load(m, layers=["tok", "norm", "gru", "fc"])
    assert [type(l) for l in model.network.layers[:2]] == [Embedding, LayerNorm]
    assert np.abs(_stream(model, ids) - ref).max() <= TOL
    assert np.abs(_stream(model, [np.int32(t) for t in ids]) - ref).max() <= TOL
    # a state dict whose embedding name says nothing: layers= gives the type
    sd = m.state_dict()
    net = import_torch(sd, layers=[("tok", "Embedding"), "norm", "gru", "fc"])
    assert isinstance(net.layers[0], Embedding)
    with pytest.raises(ConversionError, match="do not chain|cannot infer|do not form"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import_torch(sd)  # 'tok.weight' alone reads as a Linear without bias


def test_embedding_max_norm_is_refused():
    m = Tagger("emb").eval()
    m.emb.max_norm = 1.0
    with pytest.raises(ConversionError, match="max_norm"):
        import_torch(m, layers=["emb", "norm", "gru", "fc"])


# ---------------------------------------------------------------------------------- convolutions
class CausalSensor(nn.Module):
    """Causal Conv1d front end (left pad in forward), BatchNorm, ReLU, GRU, Linear head."""

    def __init__(self, C=6, k=3, dilation=2):
        super().__init__()
        self.span = (k - 1) * dilation
        self.conv = nn.Conv1d(C, 16, k, dilation=dilation)
        self.bn = nn.BatchNorm1d(16)
        self.conv2 = nn.Conv1d(16, 8, 2, groups=2)
        self.gru = nn.GRU(8, 24, batch_first=True)
        self.fc = nn.Linear(24, 3)

    def forward(self, x):                       # x (B, T, C)
        x = x.transpose(1, 2)
        x = F.relu(self.bn(self.conv(F.pad(x, (self.span, 0)))))
        x = torch.tanh(self.conv2(F.pad(x, (1, 0))))
        return self.fc(self.gru(x.transpose(1, 2))[0])


@pytest.fixture(scope="module")
def sensor():
    torch.manual_seed(4)
    m = CausalSensor()
    _randomise_bn(m, 5)
    return m.eval()


@pytest.fixture(scope="module")
def X():
    return np.random.default_rng(6).standard_normal((T, 6)).astype(np.float32)


CHAIN = [("conv", "Conv1d", {"padding": "causal"}), "bn", "ReLU", ("conv2", "Conv1d", {"padding": "causal"}),
         "Tanh", "gru", "fc"]


def _ref(m, X):
    with torch.no_grad():
        return m(torch.from_numpy(X)[None]).numpy()[0]


def test_module_causal_conv_batchnorm_gru_streams(sensor, X):
    ref = _ref(sensor, X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # padding stated: no guess to warn about
        model = sl.load(sensor, layers=CHAIN)
    conv = model.network.layers[0]
    assert isinstance(conv, TimeConv1d) and conv.padding == (4, 0) and conv.activation.name == "Relu"
    assert model.network.layers[1].groups == 2 and len(model.network.layers) == 4  # bn folded, acts fused
    assert np.abs(_stream(model, X) - ref).max() <= TOL
    assert np.abs(model.run(X) - ref).max() <= TOL
    s = model.session()
    s.run(X[:100])
    st = s.get_state()
    tail = s.run(X[100:])
    s.set_state(st)
    assert np.abs(s.run(X[100:]) - tail).max() == 0 and np.abs(tail - ref[100:]).max() <= TOL


def test_module_conv_without_stated_padding_is_taken_as_causal_with_a_warning(sensor, X):
    with pytest.warns(UserWarning, match="taken as causal"):
        model = sl.load(sensor, layers=["conv", "bn", "ReLU", "conv2", "Tanh", "gru", "fc"])
    assert np.abs(_stream(model, X) - _ref(sensor, X)).max() <= TOL


def test_state_dict_causal_conv_with_chain_spec(sensor, X, tmp_path):
    path = tmp_path / "sensor.pt"
    torch.save(sensor.state_dict(), path)
    chain = [("conv", "Conv1d", {"padding": "causal", "dilation": 2}), "bn", "ReLU",
             ("conv2", "Conv1d", {"padding": "causal", "groups": 2}), "Tanh", "gru", "fc"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # everything a state dict lacks is stated
        model = sl.load(str(path), layers=chain)
    assert np.abs(_stream(model, X) - _ref(sensor, X)).max() <= TOL
    with pytest.warns(UserWarning) as caught:
        net = import_torch(sensor.state_dict())  # inferred: causal, dilation 1 assumed, groups fitted
    text = " ".join(str(w.message) for w in caught)
    assert "no dilation" in text and "groups=2 inferred" in text and "chain inferred" in text
    assert net.layers[0].dilation == 1 and net.layers[1].groups == 2


class CentredConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 8, 5, padding=2)
        self.gru = nn.GRU(8, 6, batch_first=True)

    def forward(self, x):
        return self.gru(F.relu(self.conv(x.transpose(1, 2))).transpose(1, 2))[0]


def test_module_centred_conv_runs_whole_and_refuses_step():
    torch.manual_seed(7)
    m = CentredConv().eval()
    X = np.random.default_rng(8).standard_normal((120, 4)).astype(np.float32)
    model = sl.load(m, layers=["conv", "ReLU", "gru"])
    assert model.network.layers[0].padding == (2, 2)
    assert np.abs(model.run(X) - _ref(m, X)).max() <= TOL
    with pytest.raises(ValueError, match="future frames"):
        model.session().step(X[0])


class LinearBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc0 = nn.Linear(5, 10)
        self.bn = nn.BatchNorm1d(10)
        self.lstm = nn.LSTM(10, 8, batch_first=True)

    def forward(self, x):
        return self.lstm(F.relu(self.bn(self.fc0(x).transpose(1, 2))).transpose(1, 2))[0]


def test_linear_batchnorm_folds_into_the_linear():
    torch.manual_seed(9)
    m = LinearBN()
    _randomise_bn(m, 10)
    m.eval()
    X = np.random.default_rng(11).standard_normal((80, 5)).astype(np.float32)
    model = sl.load(m, layers=["fc0", "bn", "ReLU", "lstm"])
    assert isinstance(model.network.layers[0], Dense) and len(model.network.layers) == 2
    assert np.abs(_stream(model, X) - _ref(m, X)).max() <= TOL


def test_batchnorm_after_an_activation_folds_into_the_next_layer_or_scales_and_shifts():
    torch.manual_seed(12)
    m = LinearBN()
    _randomise_bn(m, 13)
    m.eval()
    X = np.random.default_rng(14).standard_normal((60, 5)).astype(np.float32)
    with torch.no_grad():
        z = m.bn(torch.relu(m.fc0(torch.from_numpy(X)[None])).transpose(1, 2)).transpose(1, 2)
        ref, ref_z = m.lstm(z)[0][0].numpy(), z[0].numpy()
    model = sl.load(m, layers=["fc0", "ReLU", "bn", "lstm"])
    assert [l.kind for l in model.network.layers] == ["Dense", "LSTM"]
    assert np.abs(_stream(model, X) - ref).max() <= TOL
    head = sl.load(m, layers=["fc0", "ReLU", "bn"])  # nothing after it to fold into
    assert [l.kind for l in head.network.layers] == ["Dense", "Elementwise", "Elementwise"]
    assert np.abs(_stream(head, X) - ref_z).max() <= TOL


@pytest.mark.parametrize("make, chain, match", [
    (lambda: nn.Conv1d(4, 4, 3, stride=2), ["c"], "stride=2"),
    (lambda: nn.Conv1d(4, 4, 5, padding=1), ["c"], "left \\+ right"),
    (lambda: nn.Conv1d(4, 4, 3, padding=1, padding_mode="reflect"), ["c"], "padding_mode"),
    (lambda: nn.BatchNorm1d(4, track_running_stats=False), ["c"], "running statistics"),
    (lambda: nn.LayerNorm((3, 4)), ["c"], "last axis"),
])
def test_unstreamable_front_ends_are_refused(make, chain, match):
    m = nn.Module()
    m.c = make()
    m.fc = nn.Linear(4, 2)
    with pytest.raises(ConversionError, match=match):
        import_torch(m, layers=chain + ["fc"])


# ---------------------------------------------------------------------------------- export
def test_to_torch_rebuilds_front_end_networks(sensor, X, langid):
    from streamlstm.converters.torch.export import to_torch

    net = import_torch(sensor, layers=CHAIN)
    tm = to_torch(net)
    with torch.no_grad():
        y1, st = tm(torch.from_numpy(X[:150])[:, None], tm.initial_state())
        y2, _ = tm(torch.from_numpy(X[150:])[:, None], st)  # the conv history carries over
    got = torch.cat([y1, y2])[:, 0].numpy()
    assert np.abs(got - _ref(sensor, X)).max() <= TOL
    ids = np.random.default_rng(15).integers(0, V, size=100)
    tl = to_torch(import_torch(langid, layers=["embedding", "lstm", "fc"]))
    with torch.no_grad():
        y, _ = tl(torch.from_numpy(ids.astype(np.float32))[:, None, None], tl.initial_state())
        ref = langid(torch.from_numpy(ids)[None])[0]
    assert torch.abs(y[:, 0] - ref).max().item() <= TOL
