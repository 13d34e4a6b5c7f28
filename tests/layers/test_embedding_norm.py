"""Embedding (token ids in, checked) and LayerNorm alone, against the float64 reference."""

import numpy as np
import pytest

import streamlstm as sl
from streamlstm.errors import NetworkError
from support.reference import reference_run
from support.unit_checks import check_unit, uniform


def _tagger(rng, V=11, D=4, H=5):
    emb = sl.Embedding(rng.normal(size=(V, D)))
    gru = sl.GRU(uniform(rng, 1, 3 * H, D, fan=H), uniform(rng, 1, 3 * H, H, fan=H))
    return sl.Network([emb, gru, sl.Dense(uniform(rng, 3, H, fan=H), activation="Softmax")])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_embedding_in_every_schedule(dtype):
    rng = np.random.default_rng(0)
    net = _tagger(rng)
    ids = np.array([3, 0, 10, 7, 7, 1])
    want, _ = reference_run(net, ids[:, None])
    model = sl.Model(net, dtype)
    assert model.vocabulary == 11
    np.testing.assert_allclose(model.run(ids), want, atol=1e-5)
    s = model.session()
    steps = [s.step(int(ids[0])), s.step(np.int32(ids[1])), s.step(np.array([ids[2]])),
             *[s.step(np.array([float(i)], dtype=dtype)) for i in ids[3:]]]
    np.testing.assert_array_equal(np.array(steps), model.run(ids))
    pool = model.pool(4)
    a, b = pool.open(), pool.open()
    Y = np.stack([pool.step([a, b], np.array([i, ids[-1 - t]])) for t, i in enumerate(ids)], axis=1)
    np.testing.assert_array_equal(Y[0], model.run(ids))
    np.testing.assert_array_equal(Y[1], model.run(ids[::-1]))


def test_bad_token_ids_change_nothing():
    rng = np.random.default_rng(1)
    model = sl.Model(_tagger(rng), "float32")
    s = model.session()
    s.step(4)
    before = s.get_state()
    for bad, err in [(11, ValueError), (-1, ValueError), (2.5, TypeError), (True, TypeError),
                     (np.array([1, 2]), TypeError), ("3", TypeError)]:
        with pytest.raises(err, match="token id|x:"):
            s.step(bad)
    with pytest.raises(ValueError, match="not a token id"):
        s.step(np.array([2.5], dtype=np.float32))
    with pytest.raises(ValueError, match="frame 1 is not a token id"):
        s.run(np.array([1, 11]))
    np.testing.assert_array_equal(s.get_state(), before)
    pool = model.pool(2)
    i = pool.open()
    with pytest.raises(ValueError, match="not a token id"):
        pool.step([i], np.array([[12.0]]))


def test_embedding_must_read_the_input():
    rng = np.random.default_rng(2)
    with pytest.raises(NetworkError, match="network input"):
        sl.Model(sl.Network([sl.Activation("Relu"), sl.Embedding(rng.normal(size=(3, 2)))], input_size=1))


@pytest.mark.parametrize("group", [12, 4])
def test_layer_norm(group):
    rng = np.random.default_rng(group)
    check_unit(sl.LayerNorm(rng.normal(size=group), rng.normal(size=group), eps=1e-3), 12,
               formats=(("float64", "float"), ("float32", "float")))
