"""The per-frame plumbing units alone (Rearrange, Reduce, Elementwise, Binary, Concat) in every
schedule, against the float64 reference."""

import numpy as np
import pytest

import streamlstm as sl
from streamlstm.errors import NetworkError
from support.unit_checks import check_unit

FLOAT = (("float64", "float"), ("float32", "float"))
W = 12


def test_rearrange_slices_transposes_and_pads():
    rng = np.random.default_rng(0)
    index = np.concatenate([np.arange(W).reshape(3, 4).T.ravel(), [-1, -1], rng.integers(0, W, 5)])
    check_unit(sl.Rearrange(index), W, formats=FLOAT)


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_reduce_over_groups_with_missing_positions(mode):
    index = np.array([[0, 1, 2, 3], [4, 5, -1, -1], [11, -1, 6, 7], [8, 9, 10, 0]])
    check_unit(sl.Reduce(index, mode), W, formats=FLOAT)


@pytest.mark.parametrize("op", ["add", "mul", "sub_from", "div", "div_into", "pow", "max", "min"])
def test_elementwise_with_a_constant(op):
    rng = np.random.default_rng(1)
    c = rng.uniform(0.5, 2.0, W)
    # pow, div_into: positive inputs
    extra = (sl.Elementwise("abs"), sl.Elementwise("add", np.full(W, 0.25))) if op in ("pow", "div_into") else ()
    sources = None
    check_unit(sl.Elementwise(op, c), W, formats=FLOAT, extra=extra, sources=sources)


@pytest.mark.parametrize("op", ["sqrt", "abs", "neg", "exp", "log", "square", "reciprocal", "erf"])
def test_elementwise_unary(op):
    extra = (sl.Elementwise("abs"), sl.Elementwise("add", np.full(W, 0.25)))
    check_unit(sl.Elementwise(op), W, formats=FLOAT, extra=extra)


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "max", "min", "pow"])
def test_binary_between_two_branches(op):
    # branch a: |x| + 0.5 (positive, for pow/div); branch b: x reversed
    extra = (sl.Elementwise("abs"), sl.Elementwise("add", np.full(W, 0.5)), sl.Rearrange(np.arange(W)[::-1]))
    check_unit(sl.Binary(op), W, formats=FLOAT, extra=extra, sources=[[-1], [0], [-1], [1, 2]])


def test_concat_of_three_values():
    extra = (sl.Elementwise("square"), sl.Rearrange(np.arange(5)))
    check_unit(sl.Concat(), W, formats=FLOAT, extra=extra, sources=[[-1], [-1], [1, -1, 0]])


def test_bad_units_are_refused():
    with pytest.raises(NetworkError, match="index"):
        sl.Network([sl.Rearrange(np.array([0, 12]))], input_size=W)
    with pytest.raises(NetworkError, match="integers"):
        sl.Rearrange(np.array([0.5]))
    with pytest.raises(NetworkError, match="op"):
        sl.Elementwise("cube")
    with pytest.raises(NetworkError, match="constant"):
        sl.Elementwise("sqrt", np.ones(3))
    with pytest.raises(NetworkError, match="widths"):
        sl.Network([sl.Rearrange(np.arange(3)), sl.Binary("add")], input_size=W, sources=[[-1], [0, -1]])
    with pytest.raises(NetworkError, match="reads 1 values"):
        sl.Network([sl.Binary("add")], input_size=W)
    with pytest.raises(NetworkError, match="earlier layer"):
        sl.Network([sl.Elementwise("abs"), sl.Elementwise("neg")], input_size=W, sources=[[-1], [1]])


def test_a_graph_saves_loads_and_fingerprints_its_wiring(tmp_path):
    a = sl.Network([sl.Elementwise("square"), sl.Elementwise("neg"), sl.Binary("sub")], input_size=W,
                   sources=[[-1], [-1], [0, 1]])
    b = sl.Network(a.layers, input_size=W, sources=[[-1], [-1], [1, 0]])
    a.save(tmp_path / "a.npz")
    back = sl.Network.load(tmp_path / "a.npz")
    assert back.sources == a.sources and not back.is_chain
    X = np.random.default_rng(3).normal(size=(2, W))
    np.testing.assert_array_equal(sl.Model(back).run(X), sl.Model(a).run(X))
    assert sl.Model(a).fingerprint != sl.Model(b).fingerprint
    assert "reads [0], [1]" in a.summary()


def test_plan_of_a_long_graph_is_linear_and_uses_few_sequences():
    """Work sequences are handed out by liveness in one pass: a 20,000-unit chain plans quickly
    with two sequences, and a value read much later keeps its own."""
    from streamlstm.plan import build_plan
    from streamlstm.kernels import layout as L

    chain = sl.Network([sl.Elementwise("neg") for _ in range(20000)], input_size=4)
    assert build_plan(chain).table[0, L.HDR_NSEQ] == 2
    n = 50
    layers = [sl.Elementwise("square")] + [sl.Elementwise("neg") for _ in range(n)] + [sl.Binary("add")]
    net = sl.Network(layers, input_size=4, sources=[[-1]] + [[k] for k in range(n)] + [[0, n]])
    assert build_plan(net).table[0, L.HDR_NSEQ] == 3
    X = np.random.default_rng(0).normal(size=(3, 4))
    want = X * X + (X * X if n % 2 == 0 else -X * X)
    np.testing.assert_allclose(sl.Model(net, "float64").run(X), want, atol=1e-12)
