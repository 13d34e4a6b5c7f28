"""PyTorch modules -> streamlstm, checked against torch itself through the public API.

Every supported module and option is converted with ``sl.load(module)`` and compared with the
module's own output: unidirectional models are streamed frame by frame with ``Session.step``
for 500 frames, bidirectional ones go through ``Model.run``; max abs error <= 1e-5 (float32).
Also: the cells stepped in a torch loop, custom modules via ``layers=``, and the errors.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import streamlstm as sl
from streamlstm.converters.torch import import_torch

pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported")

TOL = 1e-5
STEPS = 500
I = 6


class Chain(nn.Module):
    """A custom module: a recurrent layer then optional heads, like most real models."""

    def __init__(self, rnn: nn.Module, *heads: nn.Module):
        super().__init__()
        self.rnn = rnn
        self.heads = nn.ModuleList(heads)

    def forward(self, x):
        y = self.rnn(x)
        y = y[0] if isinstance(y, tuple) else y
        for h in self.heads:
            y = h(y)
        return y


def _frames(seed: int, T: int = STEPS, n: int = I) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(T, n)).astype(np.float32)


def _torch_seq(m: nn.Module, X: np.ndarray, batch_first: bool) -> np.ndarray:
    """The module's output for one sequence X (T, I), batch of one."""
    m.eval()
    with torch.no_grad():
        x = torch.from_numpy(X)
        x = x[None] if batch_first else x[:, None]
        y = m(x)
        y = y[0] if isinstance(y, tuple) else y
        return (y[0] if batch_first else y[:, 0]).numpy()


def _stream(model: sl.Model, X: np.ndarray) -> np.ndarray:
    s = model.session()
    return np.stack([s.step(x) for x in X])


def _check(m: nn.Module, X: np.ndarray, batch_first: bool, **kw) -> sl.Model:
    expected = _torch_seq(m, X, batch_first)
    model = sl.load(m, **kw)
    got = model.run(X) if not model.network.streamable else _stream(model, X)
    assert got.shape == expected.shape
    err = np.abs(got - expected).max()
    assert err <= TOL, err
    return model


# ---------------------------------------------------------------- recurrent modules
LSTM_CASES = [  # (num_layers, bidirectional, proj_size, bias, batch_first)
    (1, False, 0, True, False),
    (2, False, 0, True, True),
    (1, False, 0, False, False),
    (2, False, 4, True, False),
    (1, True, 0, True, True),
    (2, True, 3, False, True),
    (3, True, 0, True, False),
]


@pytest.mark.parametrize("num_layers,bidirectional,proj_size,bias,batch_first", LSTM_CASES)
def test_lstm_options(num_layers, bidirectional, proj_size, bias, batch_first):
    torch.manual_seed(num_layers * 7 + bidirectional * 3 + proj_size + bias)
    m = nn.LSTM(I, 10, num_layers=num_layers, bidirectional=bidirectional, proj_size=proj_size,
                bias=bias, batch_first=batch_first, dropout=0.25 if num_layers > 1 else 0.0)
    T = 120 if bidirectional else STEPS
    model = _check(m, _frames(1, T), batch_first)
    assert len(model.network.layers) == num_layers
    assert all(l.kind == "LSTM" for l in model.network.layers)


def test_three_layer_bidirectional_lstm_with_head_in_model_run():
    torch.manual_seed(11)
    m = Chain(nn.LSTM(I, 12, num_layers=3, bidirectional=True, batch_first=True), nn.Linear(24, 5))
    X = _frames(2, STEPS)
    model = sl.load(m, layers=["rnn", "heads"])
    err = np.abs(model.run(X) - _torch_seq(m, X, batch_first=True)).max()
    assert err <= TOL, err
    assert [l.direction for l in model.network.layers[:3]] == ["bidirectional"] * 3


@pytest.mark.parametrize("num_layers,bidirectional,bias", [(1, False, True), (2, False, False),
                                                           (2, True, True)])
def test_gru(num_layers, bidirectional, bias):
    torch.manual_seed(21 + num_layers + bidirectional)
    m = nn.GRU(I, 9, num_layers=num_layers, bidirectional=bidirectional, bias=bias)
    model = _check(m, _frames(3, 150 if bidirectional else STEPS), batch_first=False)
    assert all(l.kind == "GRU" and l.linear_before_reset for l in model.network.layers)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_rnn(nonlinearity, bidirectional):
    torch.manual_seed(31 + bidirectional)
    m = nn.RNN(I, 8, num_layers=2, nonlinearity=nonlinearity, bidirectional=bidirectional)
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(0.6)  # keep the relu recurrence bounded over 500 steps
    _check(m, _frames(4, 150 if bidirectional else STEPS), batch_first=False)


@pytest.mark.parametrize("cell", ["LSTMCell", "GRUCell", "RNNCell-tanh", "RNNCell-relu"])
def test_cells_stepped(cell):
    torch.manual_seed(41)
    kind, _, nonlin = cell.partition("-")
    kw = {"nonlinearity": nonlin} if nonlin else {}
    m = getattr(nn, kind)(I, 11, **kw).eval()
    if nonlin == "relu":
        with torch.no_grad():
            m.weight_hh.mul_(0.5)
    X = _frames(5)
    outs, state = [], None
    with torch.no_grad():
        for x in torch.from_numpy(X):
            state = m(x[None], state)
            outs.append((state[0] if kind == "LSTMCell" else state)[0].numpy())
    got = _stream(sl.load(m), X)
    err = np.abs(got - np.stack(outs)).max()
    assert err <= TOL, err


# ---------------------------------------------------------------- heads and activations
ACTIVATIONS = [nn.ReLU(), nn.Tanh(), nn.Sigmoid(), nn.Softmax(dim=-1), nn.LeakyReLU(0.2),
               nn.ELU(alpha=0.7), nn.Hardsigmoid(), nn.Softplus(), nn.Softsign(), nn.Identity(),
               nn.Dropout(0.5)]


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=lambda a: type(a).__name__)
def test_activation_modules(activation):
    torch.manual_seed(51)
    # Dense chain (fused into Dense) and the activation straight after an LSTM (its own layer).
    seq = nn.Sequential(nn.Linear(I, 8), activation, nn.Linear(8, 5), activation)
    _check(seq, _frames(6, 200) * 3, batch_first=True)
    m = Chain(nn.LSTM(I, 7), activation, nn.Linear(7, 4), activation)
    _check(m, _frames(7), batch_first=False, layers=["rnn", "heads"])


def test_nested_sequential_and_dotted_layer_names():
    torch.manual_seed(61)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Module()
            self.encoder.lstm = nn.LSTM(I, 10, batch_first=True)
            self.head = nn.Sequential(nn.Sequential(nn.Linear(10, 8), nn.ReLU()), nn.Dropout(0.1),
                                      nn.Linear(8, 3))

        def forward(self, x):
            return self.head(self.encoder.lstm(x)[0])

    m = Model()
    model = _check(m, _frames(8), batch_first=True, layers=["encoder.lstm", "head"])
    assert [l.kind for l in model.network.layers] == ["LSTM", "Dense", "Dense"]
    assert model.network.layers[1].activation.name == "Relu"
    by_suffix = import_torch(m, layers=["lstm", "head"])  # a unique path suffix names it too
    assert all(np.array_equal(a.W, b.W) for a, b in zip(by_suffix.layers, model.network.layers))


def test_functional_activation_named_by_type_in_layers():
    torch.manual_seed(62)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(I, 9)
            self.out = nn.Linear(9, 4)

        def forward(self, x):
            return torch.tanh(self.out(torch.relu(self.gru(x)[0])))

    _check(Model(), _frames(9), batch_first=False, layers=["gru", "ReLU", "out", ("Tanh",)])


def test_import_torch_returns_a_network_in_onnx_gate_order():
    torch.manual_seed(63)
    m = nn.LSTM(2, 3)
    net = import_torch(m)
    sd = {k: v.detach().numpy() for k, v in m.state_dict().items()}
    i, f, g, o = np.split(sd["weight_ih_l0"], 4)
    np.testing.assert_array_equal(net.layers[0].W[0], np.concatenate([i, o, f, g]))
    np.testing.assert_array_equal(net.layers[0].Rb[0], np.concatenate(
        [np.split(sd["bias_hh_l0"], 4)[k] for k in (0, 3, 1, 2)]))
    gru = import_torch(nn.GRU(2, 3)).layers[0]
    assert gru.linear_before_reset


# ---------------------------------------------------------------- errors
def test_custom_module_without_layers_says_to_pass_layers():
    m = Chain(nn.LSTM(I, 4), nn.Linear(4, 2))
    with pytest.raises(sl.ConversionError, match=r"layers=.*'rnn', 'heads'"):
        sl.load(m)


@pytest.mark.parametrize("bad,match", [
    (nn.Softplus(beta=2.0), "Softplus with beta=2.0"),
    (nn.Softmax(dim=0), "Softmax over dim=0"),
    (nn.GELU(), "unsupported module GELU"),
    (nn.GroupNorm(1, 4), "unsupported module GroupNorm"),
])
def test_unsupported_modules_are_named(bad, match):
    with pytest.raises(sl.ConversionError, match=match):
        sl.load(nn.Sequential(nn.Linear(I, 4), bad))


def test_layers_naming_a_missing_child_lists_the_children():
    m = Chain(nn.LSTM(I, 4), nn.Linear(4, 2))
    with pytest.raises(sl.ConversionError, match=r"'lstm'.*children: rnn \(LSTM\), heads"):
        sl.load(m, layers=["lstm", "heads"])


def test_layers_whose_sizes_do_not_chain():
    m = Chain(nn.LSTM(I, 4), nn.Linear(4, 2))
    with pytest.raises(sl.ConversionError, match="does not match the previous output size"):
        sl.load(m, layers=["heads", "rnn"])
