"""to_torch of the zoo's whole models: an Embedding tagger and a causal-conv CRNN, run in
PyTorch one frame per call with the state carried, equal streamlstm's Session.step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import streamlstm as sl
from streamlstm.converters.torch.export import to_torch
from streamlstm.errors import ConversionError
from streamlstm.tools.zoo import zoo_network


@pytest.mark.parametrize("name", ["crnn", "tagger"])
def test_whole_zoo_model_steps_like_streamlstm(name):
    net = zoo_network(name)
    model = sl.Model(net, "float32")
    module = to_torch(net)
    rng = np.random.default_rng(0)
    X = (rng.integers(0, 5000, size=(30, 1)) if name == "tagger" else rng.normal(size=(30, 40))).astype(np.float32)
    s, state, got, want = model.session(), module.initial_state(), [], []
    with torch.inference_mode():
        for x in X:
            y, state = module(torch.from_numpy(x).view(1, 1, -1), state)
            got.append(y.view(-1).numpy().copy())
            want.append(s.step(x))
        whole, _ = module(torch.from_numpy(X)[:, None, :], module.initial_state())
    np.testing.assert_allclose(np.array(got), np.array(want), atol=1e-5)
    np.testing.assert_allclose(whole[:, 0].numpy(), model.run(X if name != "tagger" else X[:, 0]), atol=1e-5)


def test_branching_network_is_refused():
    net = sl.Network([sl.Elementwise("abs"), sl.Binary("add")], input_size=3, sources=[[-1], [-1, 0]])
    with pytest.raises(ConversionError, match="branch"):
        to_torch(net)
