"""Compressed weights (bf16, int8 with one scale per input, bf16 pairs whose products round
their inputs to bf16, int8 quads whose products quantise their inputs to int8): the engine computes exactly with the quantised weights (checked against
the float64 reference run on weights quantised here, independently), and stays close to
float32."""

import numpy as np
import pytest

import streamlstm as sl
from support.reference import reference_run
from support.unit_checks import PRODUCT_INPUTS, QUANTISE


def network(rng, I=12, H=16, O=5):
    def u(*shape, fan):
        return rng.uniform(-1, 1, size=shape) / np.sqrt(fan)
    return sl.Network([
        sl.LSTM(u(1, 4 * H, I, fan=I), u(1, 4 * H, H, fan=H), Wb=u(1, 4 * H, fan=H), Rb=u(1, 4 * H, fan=H)),
        sl.GRU(u(1, 3 * H, H, fan=H), u(1, 3 * H, H, fan=H), Wb=u(1, 3 * H, fan=H), linear_before_reset=True),
        sl.RNN(u(1, H, H, fan=H), u(1, H, H, fan=H)),
        sl.Dense(u(O, H, fan=H), u(O, fan=H), activation="Tanh"),
    ])


def quantised_copy(net: sl.Network, q) -> sl.Network:
    layers = []
    for layer in net.layers:
        if isinstance(layer, sl.Dense):
            layers.append(sl.Dense(q(layer.W), layer.b, activation=layer.activation))
        elif isinstance(layer, sl.GRU):
            H = layer.hidden_size
            R = layer.R.copy()
            R[0, :2 * H] = q(R[0, :2 * H])  # the h-gate block stays float
            layers.append(sl.GRU(q(layer.W[0])[None], R, Wb=layer.Wb, Rb=layer.Rb,
                                 linear_before_reset=layer.linear_before_reset))
        else:
            cls = type(layer)
            layers.append(cls(q(layer.W[0])[None], q(layer.R[0])[None], Wb=layer.Wb, Rb=layer.Rb))
    return sl.Network(layers)


@pytest.mark.parametrize("fmt", ["bf16", "int8", "bf16dot", "int8dot"])
def test_compressed_engine_computes_with_the_quantised_weights(fmt):
    """Against the float64 reference on weights quantised here. Where products also round their
    inputs (bf16dot, int8dot), an input within float32 noise of a rounding boundary can round
    the other way in the reference, and the steps after it differ by up to the quantisation
    itself (seen: at most 16 of 500 steps): those formats must agree on 90% of the steps."""
    rng = np.random.default_rng(11)  # the test's own: its data do not depend on the tests before it
    net = network(rng)
    X = rng.normal(size=(500, net.input_size)).astype(np.float32).astype(np.float64)
    model = sl.Model(net, weights=fmt)
    s = model.session()
    Y = np.array([s.step(x.astype(np.float32)) for x in X])
    expected, _ = reference_run(quantised_copy(net, QUANTISE[fmt]), X, inputs=PRODUCT_INPUTS.get(fmt))
    step_err = np.abs(Y - expected).max(axis=1)
    if fmt in PRODUCT_INPUTS:
        assert np.mean(step_err <= 1e-5) >= 0.9 and np.median(step_err) <= 1e-6, np.sort(step_err)[-20:]
    else:
        assert step_err.max() <= 1e-5
    # the quantisation really changed the numbers: the unquantised reference is further away
    plain, _ = reference_run(net, X)
    assert np.abs(plain - expected).max() > 1e-4
    # chunks and pool streams take the same path
    s.reset()
    np.testing.assert_array_equal(s.run(X.astype(np.float32)), Y)
    pool = model.pool(5)
    ids = [pool.open() for _ in range(5)]
    scales = np.linspace(1.0, -0.5, 5).astype(np.float32)
    P = np.stack([pool.step(ids, np.stack([x.astype(np.float32) * a for a in scales])) for x in X[:50]], axis=1)
    np.testing.assert_array_equal(P[0], Y[:50])
    for k, a in enumerate(scales):
        np.testing.assert_array_equal(P[k], model.run(X[:50].astype(np.float32) * a))


def test_compressed_weights_are_smaller_and_close_to_float32():
    rng = np.random.default_rng(12)
    net = network(rng, I=64, H=128, O=8)
    X = rng.normal(size=(200, net.input_size)).astype(np.float32)
    base = sl.Model(net)
    Y = base.run(X)
    for fmt, ratio in (("bf16", 0.6), ("int8", 0.4), ("bf16dot", 0.6), ("int8dot", 0.4)):
        m = sl.Model(net, weights=fmt)
        assert m.plan.weight_bytes < ratio * base.plan.weight_bytes
        assert np.abs(m.run(X) - Y).max() < 5e-2
        assert f"weights={fmt}" in m.summary()


def test_compression_options_are_checked():
    net = network(np.random.default_rng(13))
    with pytest.raises(ValueError, match="weights"):
        sl.Model(net, weights="fp8")
    with pytest.raises(ValueError, match="float32"):
        sl.Model(net, dtype="float64", weights="bf16")
