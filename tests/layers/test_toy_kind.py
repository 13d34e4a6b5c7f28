"""A layer kind added from outside the package, through the public extension points only.

``Scale`` (y = a * x + b per feature) is a frozen unit, registered in the kinds registry and
packed by its own ``pack``: it runs in every schedule, mixes with the built-in units, and
saves and loads as a native file, with no file of the package naming it. Its maths reuse an
existing row kind (a Dense row over diag(a)): a kernel of new maths must live in
``streamlstm/kernels/`` (see docs/ARCHITECTURE.md, "Adding a layer kind").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

import streamlstm as sl
from streamlstm.kernels.kinds.dense import K_DENSE
from streamlstm.kernels.layout import C_ACT_F, C_BIAS, C_PARAMS, C_WX
from streamlstm.layers.base import LAYER_KINDS, Layer, act, check_shape, gate_packed_t, gate_packed_vec, register
from support.reference import reference_run
from support.unit_checks import uniform


@dataclass(frozen=True, eq=False)
class Scale(Layer):
    a: np.ndarray
    b: np.ndarray
    name: str = ""

    kind = "Scale"
    array_fields = ("a", "b")

    def __post_init__(self):
        self._freeze_arrays()
        if self.a is None or self.a.ndim != 1 or self.a.size == 0:
            raise self._err("a", "expected a non-empty vector")
        check_shape(self, "a", self.a, self.a.shape)
        check_shape(self, "b", self.b, self.a.shape)

    @property
    def input_size(self) -> int:
        return int(self.a.size)

    def pack(self, builder) -> None:
        n = self.input_size
        G = builder.pad(n)
        dst = builder.next_sequence()
        r = builder.row(K_DENSE, dst, n, col=0, out=n)
        builder.set_matrix(r, C_WX, gate_packed_t(np.diag(self.a), 1, n, G))
        r[C_BIAS] = builder.add(gate_packed_vec(self.b, 1, n, G))
        identity = act("Identity")
        r[C_ACT_F] = builder.code(identity)
        r[C_PARAMS] = builder.params((identity,), None)
        builder.need(gates=G)
        builder.advance(dst, n)


@pytest.fixture
def scale_kind():
    register(Scale)
    yield Scale
    del LAYER_KINDS["Scale"]


def _network(rng):
    I, H = 3, 5
    lstm = sl.LSTM(uniform(rng, 1, 4 * H, I, fan=H), uniform(rng, 1, 4 * H, H, fan=H))
    scale = Scale(rng.uniform(0.5, 2.0, H), rng.normal(size=H), name="gain")
    return sl.Network([lstm, scale, sl.Dense(uniform(rng, 2, H, fan=H), activation="Tanh")]), lstm, scale


def _expected(net, lstm, scale, X):
    Y, _ = reference_run(sl.Network([lstm]), X)
    return reference_run(sl.Network([net.layers[2]]), Y * scale.a + scale.b)[0]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_toy_kind_runs_in_every_schedule(scale_kind, dtype):
    rng = np.random.default_rng(4)
    net, lstm, scale = _network(rng)
    X = rng.normal(size=(6, 3))
    model = sl.Model(net, dtype)
    got = model.run(X.astype(dtype))
    assert np.abs(got - _expected(net, lstm, scale, X)).max() <= (1e-12 if dtype == "float64" else 1e-4)
    s = model.session()
    np.testing.assert_array_equal(np.array([s.step(x) for x in X.astype(dtype)]), got)
    pool = model.pool(2)
    ids = [pool.open(), pool.open()]
    Y = np.stack([pool.step(ids, np.stack([x, x])) for x in X.astype(dtype)])
    np.testing.assert_array_equal(Y[:, 0], got)
    np.testing.assert_array_equal(Y[:, 1], got)


def test_toy_kind_saves_and_loads_through_the_registry(scale_kind, tmp_path):
    net, _, scale = _network(np.random.default_rng(5))
    net.save(tmp_path / "n.npz")
    back = sl.Network.load(tmp_path / "n.npz")
    assert isinstance(back.layers[1], Scale) and back.layers[1].name == "gain"
    np.testing.assert_array_equal(back.layers[1].a, scale.a)
    assert "Scale 'gain': 5 -> 5" in back.summary()


def test_toy_kind_is_validated_and_frozen(scale_kind):
    with pytest.raises(sl.NetworkError, match="Scale: b"):
        Scale(np.ones(3), np.ones(4))
    s = Scale(np.ones(3), np.zeros(3))
    with pytest.raises(AttributeError):
        s.a = np.zeros(3)


def test_an_unregistered_kind_cannot_be_loaded(tmp_path):
    register(Scale)
    net, _, _ = _network(np.random.default_rng(6))
    net.save(tmp_path / "n.npz")
    del LAYER_KINDS["Scale"]
    with pytest.raises(sl.NetworkError, match="unknown kind 'Scale'"):
        sl.Network.load(tmp_path / "n.npz")
