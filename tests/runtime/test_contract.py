"""Contract details of Session and SessionPool: buffers made read-only between steps, bools as
stream ids, ``run(X, out=)``, context managers and short reprs."""

from __future__ import annotations

import numpy as np
import pytest

import streamlstm as sl
from support.pool_nets import lstm_stack


@pytest.fixture(scope="module")
def model():
    return sl.Model(lstm_stack())


def _x(model, n=1, seed=0):
    return np.random.default_rng(seed).normal(size=(n, model.input_size)).astype(model.dtype)


def test_out_made_read_only_after_a_step_is_refused(model):
    s = model.session()
    out = np.empty(model.output_size, model.dtype)
    s.step(_x(model)[0], out=out)
    before_state, before_out = s.get_state(), out.copy()
    out.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        s.step(_x(model, seed=1)[0], out=out)
    np.testing.assert_array_equal(out, before_out)
    np.testing.assert_array_equal(s.get_state(), before_state)


@pytest.mark.parametrize("ids", [[0, True, 2], [False], np.array([True, False])])
def test_bools_are_not_stream_ids(model, ids):
    pool = model.pool(4)
    for _ in range(3):
        pool.open()
    before = [pool.get_state(i) for i in pool.ids()]
    with pytest.raises(ValueError, match="integer stream ids"):
        pool.step(ids, _x(model, len(ids)))
    for sid, b in zip(pool.ids(), before):
        np.testing.assert_array_equal(pool.get_state(sid), b)


def test_run_into_out(model):
    a, b = model.session(), model.session()
    X = _x(model, 6)
    out = np.empty((6, model.output_size), model.dtype)
    assert a.run(X, out=out) is out
    np.testing.assert_array_equal(out, b.run(X))
    for bad in (np.empty((5, model.output_size), model.dtype), np.empty((6, model.output_size)),
                np.empty((model.output_size, 6), model.dtype).T):
        before = a.get_state()
        with pytest.raises(ValueError, match="out"):
            a.run(X, out=bad)
        np.testing.assert_array_equal(a.get_state(), before)


def test_context_managers_and_reprs(model):
    with model.session(threads=2) as s:
        s.step(_x(model)[0])
        assert repr(s).startswith("<streamlstm.Session ") and len(repr(s)) < 80
    assert s.threads == 1
    with model.pool(8, threads=2) as pool:
        ids = [pool.open() for _ in range(3)]
        pool.step(ids, _x(model, 3))
    assert len(pool) == 0
    sid = pool.open()  # still usable after the block
    assert pool.step([sid], _x(model)).shape == (1, model.output_size)


def test_network_and_layer_reprs_are_bounded():
    rng = np.random.default_rng(0)
    H = 512
    layers = [sl.LSTM(rng.normal(size=(1, 4 * H, H)), rng.normal(size=(1, 4 * H, H)), name=f"l{i}")
              for i in range(12)]
    net = sl.Network(layers, name="deep")
    assert len(repr(net)) < 200 and "'deep'" in repr(net) and "..." in repr(net)
    assert len(repr(layers[0])) < 200 and "(1, 2048, 512)" in repr(layers[0])
