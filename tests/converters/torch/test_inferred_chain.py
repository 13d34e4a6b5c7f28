"""A layer chain inferred from a state dict is announced, because forward() activations are lost.

The model is GRU -> Linear -> torch.sigmoid in forward(): its state dict holds no trace of the
sigmoid. Importing the state dict alone must warn and name the chain it guessed; stating the
chain with ``layers=`` must not warn and must match torch's own output.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from streamlstm.converters.torch import import_torch
from support.reference import reference_run

torch = pytest.importorskip("torch")


class GruSigmoid(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = torch.nn.GRU(3, 5)
        self.fc = torch.nn.Linear(5, 2)

    def forward(self, x):
        y, _ = self.gru(x)
        return torch.sigmoid(self.fc(y))


@pytest.fixture
def model():
    torch.manual_seed(3)
    return GruSigmoid().eval()


def _torch_output(model, X: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(X)[:, None]).numpy()[:, 0]


def test_inferred_chain_warns_naming_it(model, tmp_path):
    sd = model.state_dict()
    torch.save(sd, tmp_path / "m.pt")
    for source in (sd, tmp_path / "m.pt"):
        with pytest.warns(UserWarning, match=r"inferred.*GRU 'gru' -> Dense 'fc'.*forward\(\)") as rec:
            net = import_torch(source)
        assert "not stored in a state dict" in str(rec[0].message)
        assert [l.kind for l in net.layers] == ["GRU", "Dense"]


def test_inferred_chain_misses_the_forward_activation(model):
    X = np.random.default_rng(0).normal(size=(6, 3))
    with pytest.warns(UserWarning):
        net = import_torch(model.state_dict())
    ours, _ = reference_run(net, X)
    assert np.max(np.abs(ours - _torch_output(model, X.astype(np.float32)))) > 0.05


def test_layers_given_do_not_warn_and_match_torch(model):
    X = np.random.default_rng(1).normal(size=(6, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net = import_torch(model.state_dict(), layers=["gru", "fc", "Sigmoid"])
    ours, _ = reference_run(net, X)
    np.testing.assert_allclose(ours, _torch_output(model, X.astype(np.float32)), atol=1e-5)


def test_modules_do_not_warn():
    torch.manual_seed(4)
    seq = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Sigmoid())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net = import_torch(seq)
    assert net.layers[-1].activation.name == "Sigmoid"
