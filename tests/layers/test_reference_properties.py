"""Self-checks of the float64 reference that no peer framework covers.

Streaming (T=1 repeatedly with the returned state) equals one run; Dense/Activation/Softmax follow
their formulas; bidirectional merges combine the forward and reverse single-direction layers.
"""

from __future__ import annotations

import numpy as np
import pytest

from support.reference import activation, reference_run
from streamlstm.network import GRU, LSTM, RNN, Activation, Dense, Network, act


def _rng_layer(kind, rng, I, H, direction="forward", merge="concat", Hr=None):
    D = 2 if direction == "bidirectional" else 1
    G = {"LSTM": 4, "GRU": 3, "RNN": 1}[kind] * H
    Hin = Hr or H
    kw = dict(W=rng.normal(size=(D, G, I)) / np.sqrt(I), R=rng.normal(size=(D, G, Hin)) / np.sqrt(Hin),
              Wb=rng.normal(size=(D, G)) * 0.3, Rb=rng.normal(size=(D, G)) * 0.3,
              initial_h=rng.normal(size=(D, Hin)) * 0.5, direction=direction, merge=merge)
    if kind == "LSTM":
        return LSTM(P=rng.normal(size=(D, 3 * H)) * 0.5, initial_c=rng.normal(size=(D, H)) * 0.5,
                    proj=None if Hr is None else rng.normal(size=(D, Hr, H)) / np.sqrt(H), **kw)
    if kind == "GRU":
        return GRU(linear_before_reset=True, **kw)
    return RNN(**kw)


def test_streaming_equals_one_run():
    rng = np.random.default_rng(0)
    net = Network([_rng_layer("LSTM", rng, 4, 6, Hr=3), _rng_layer("GRU", rng, 3, 5),
                   Dense(rng.normal(size=(4, 5)), rng.normal(size=4), act("Tanh")),
                   _rng_layer("RNN", rng, 4, 3), Activation("Softmax")])
    X = rng.normal(size=(40, 4))
    Y, final = reference_run(net, X)
    state, ys = None, []
    for x in X:
        y, state = reference_run(net, x[None], state)
        ys.append(y[0])
    np.testing.assert_array_equal(np.array(ys), Y)
    for a, b in zip(state, final):
        assert (a is None) == (b is None)
        if a is not None:
            for k in a:
                np.testing.assert_array_equal(a[k], b[k])
    assert np.allclose(Y.sum(axis=1), 1.0)


def test_input_state_is_not_modified():
    rng = np.random.default_rng(1)
    net = Network([_rng_layer("LSTM", rng, 3, 4)])
    _, st = reference_run(net, rng.normal(size=(5, 3)))
    copy = {k: v.copy() for k, v in st[0].items()}
    reference_run(net, rng.normal(size=(5, 3)), st)
    for k in copy:
        np.testing.assert_array_equal(copy[k], st[0][k])


def test_dense_and_activation_layers():
    rng = np.random.default_rng(2)
    W, b = rng.normal(size=(3, 4)), rng.normal(size=3)
    X = rng.normal(size=(6, 4))
    Y, st = reference_run(Network([Dense(W, b, act("LeakyRelu", 0.2)), Activation("Softmax")]), X)
    Z = X @ W.T + b
    Z = np.where(Z >= 0, Z, 0.2 * Z)
    E = np.exp(Z)
    np.testing.assert_allclose(Y, E / E.sum(axis=1, keepdims=True), rtol=1e-13)
    assert st == [None, None]
    x = np.linspace(-3, 3, 13)
    np.testing.assert_allclose(activation(act("HardSigmoid", 0.3, 0.4), x), np.clip(0.3 * x + 0.4, 0, 1))
    np.testing.assert_allclose(activation(act("ThresholdedRelu", 0.5), x), np.where(x > 0.5, x, 0))
    np.testing.assert_allclose(activation(act("Softplus"), x), np.log1p(np.exp(x)), rtol=1e-14)
    np.testing.assert_allclose(activation(act("Sigmoid"), x), 1 / (1 + np.exp(-x)), rtol=1e-14)
    np.testing.assert_array_equal(activation(act("Identity"), x), x)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("merge", ["concat", "sum", "mul", "ave"])
def test_bidirectional_is_forward_and_reverse(kind, merge):
    rng = np.random.default_rng(3)
    bi = _rng_layer(kind, rng, 3, 4, direction="bidirectional", merge=merge)
    X = rng.normal(size=(9, 3))
    Yb, stb = reference_run(Network([bi]), X)

    def half(d, direction):
        arrays = {k: v[d:d + 1] for k, v in bi.arrays().items()}
        extra = {"linear_before_reset": bi.linear_before_reset} if kind == "GRU" else {}
        n = len(bi.activations) // 2
        return type(bi)(**arrays, direction=direction, activations=bi.activations[n * d:n * (d + 1)], **extra)

    Yf, stf = reference_run(Network([half(0, "forward")]), X)
    Yr, str_ = reference_run(Network([half(1, "reverse")]), X)
    expect = {"concat": np.concatenate([Yf, Yr], axis=1), "sum": Yf + Yr, "mul": Yf * Yr,
              "ave": (Yf + Yr) / 2}[merge]
    np.testing.assert_allclose(Yb, expect, rtol=1e-14, atol=1e-15)
    np.testing.assert_array_equal(stb[0]["h"], np.concatenate([stf[0]["h"], str_[0]["h"]]))
    # the reverse direction's output at t=T-1 is its first step from the initial state
    first = reference_run(Network([half(1, "reverse")]), X[-1:])[0][0]
    np.testing.assert_allclose(Yr[-1], first, rtol=1e-14)


def test_activations_with_unused_parameters_compare_equal():
    from streamlstm.layers.base import act

    assert act("Tanh") == act("Tanh") and hash(act("Tanh")) == hash(act("Tanh"))
    assert act("LeakyRelu", 0.1) != act("LeakyRelu", 0.2)
