"""Tied weights: layers built from one array share it in the IR and one packed copy in the Plan,
and still compute what the float64 reference computes."""

import numpy as np

import streamlstm as sl
from support.reference import reference_run

H = 24


def tied_stack(n: int) -> sl.Network:
    rng = np.random.default_rng(5)
    W = rng.uniform(-1, 1, (1, 4 * H, H)) / np.sqrt(H)
    R = rng.uniform(-1, 1, (1, 4 * H, H)) / np.sqrt(H)
    W.flags.writeable = R.flags.writeable = False  # as an importer hands out a shared initializer
    return sl.Network([sl.LSTM(W, R) for _ in range(n)])


def test_tied_layers_share_one_array_and_one_packed_copy():
    one, four = tied_stack(1), tied_stack(4)
    assert all(layer.W is four.layers[0].W for layer in four.layers)
    m1, m4 = sl.Model(one), sl.Model(four)
    assert m4.plan.weight_bytes < 1.2 * m1.plan.weight_bytes


def test_tied_layers_match_the_reference():
    net = tied_stack(3)
    X = np.random.default_rng(6).normal(size=(17, H))
    want, _ = reference_run(net, X)
    np.testing.assert_allclose(sl.Model(net, dtype="float64").run(X), want, atol=1e-10)
    np.testing.assert_allclose(sl.Model(net).session().run(X.astype(np.float32)), want, atol=2e-5)
