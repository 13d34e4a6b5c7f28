"""Portable stream state: versioned bytes that only the same model accepts, independent copies
(deepcopy, fork, pickle) of sessions and pools, and models that pickle after use."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import subprocess
import sys

import numpy as np
import pytest

import streamlstm as sl
from streamlstm import state as state_format
from support.pool_nets import gru_rnn, lstm_extras

RNG = np.random.default_rng(11)


@pytest.fixture(scope="module", params=["float32", "float64"])
def model(request):
    return sl.Model(lstm_extras(), dtype=request.param)


def frames(model, n=9, seed=0):
    return np.random.default_rng(seed).normal(size=(n, model.input_size)).astype(model.dtype)


def warmed(model, n=9):
    s = model.session()
    s.run(frames(model, n))
    return s


def test_saved_state_continues_bit_for_bit_in_a_new_session(model):
    a = warmed(model)
    blob = a.save_state()
    assert isinstance(blob, bytes)
    b = model.session()
    b.load_state(blob)
    X = frames(model, 20, seed=1)
    np.testing.assert_array_equal(a.run(X), b.run(X))


def test_state_crosses_a_native_file_round_trip_and_a_process(model, tmp_path):
    path = tmp_path / "m.npz"
    model.save(path)
    a = warmed(model)
    blob_path = tmp_path / "state.bin"
    blob_path.write_bytes(a.save_state())
    X = frames(model, 12, seed=2)
    np.save(tmp_path / "x.npy", X)
    script = (
        "import sys, numpy as np, streamlstm as sl\n"
        f"m = sl.load(sys.argv[1], dtype={model.dtype.name!r})\n"
        "s = m.session(); s.load_state(open(sys.argv[2], 'rb').read())\n"
        "np.save(sys.argv[4], s.run(np.load(sys.argv[3])))\n"
    )
    subprocess.run([sys.executable, "-c", script, str(path), str(blob_path), str(tmp_path / "x.npy"),
                    str(tmp_path / "y.npy")], check=True, timeout=600, cwd=tmp_path)
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), a.run(X))


def _other_weights(network) -> sl.Network:
    first = network.layers[0]
    W = first.W.copy()
    W[0, 0, 0] += 1e-3
    return sl.Network([dataclasses.replace(first, W=W), *network.layers[1:]])


def test_another_models_state_is_refused_and_nothing_changes(model):
    other = sl.Model(_other_weights(model.network), dtype=model.dtype.name)
    assert other.state_size == model.state_size  # same layout: only the fingerprint tells them apart
    s = warmed(model)
    before = s.get_state()
    with pytest.raises(ValueError, match="different model"):
        s.load_state(warmed(other).save_state())
    np.testing.assert_array_equal(s.get_state(), before)


def test_state_of_another_dtype_or_weight_format_is_refused(model):
    other_dtype = "float64" if model.dtype == np.float32 else "float32"
    s = model.session()
    with pytest.raises(ValueError, match="float"):
        s.load_state(sl.Model(model.network, dtype=other_dtype).session().save_state())
    if model.dtype == np.float32:
        with pytest.raises(ValueError, match="different model"):
            s.load_state(sl.Model(model.network, weights="bf16").session().save_state())


def _flip(blob: bytes, at: int) -> bytes:
    b = bytearray(blob)
    b[at] ^= 0x01
    return bytes(b)


@pytest.mark.parametrize("damage", ["truncated", "flipped_payload", "flipped_header", "garbage",
                                    "empty", "version", "not_bytes"])
def test_damaged_records_are_refused_and_nothing_changes(model, damage):
    s = warmed(model)
    blob = s.save_state()
    before = s.get_state()
    bad = {
        "truncated": lambda: blob[:-5],
        "flipped_payload": lambda: _flip(blob, len(blob) - 9),
        "flipped_header": lambda: _flip(blob, 20),
        "garbage": lambda: bytes(RNG.integers(0, 256, len(blob), dtype=np.uint8)),
        "empty": lambda: b"",
        "version": lambda: blob[:8] + (99).to_bytes(4, "little") + blob[12:],
        "not_bytes": lambda: 12345,
    }[damage]()
    with pytest.raises((ValueError, TypeError), match="state"):
        s.load_state(bad)
    np.testing.assert_array_equal(s.get_state(), before)


def test_non_finite_state_in_a_valid_record_is_refused(model):
    states = np.full((1, model.state_size), np.nan, model.dtype)
    blob = state_format.encode(model.fingerprint, states)
    s = warmed(model)
    before = s.get_state()
    with pytest.raises(ValueError, match="NaN"):
        s.load_state(blob)
    np.testing.assert_array_equal(s.get_state(), before)


def test_pool_states_by_id_and_in_bulk_interoperate_with_sessions(model):
    pool = model.pool(8)
    ids = [pool.open() for _ in range(5)]
    sessions = [model.session() for _ in ids]
    for k, (sid, s) in enumerate(zip(ids, sessions)):
        X = frames(model, 4 + k, seed=k)
        for x in X:
            pool.step([sid], x[None])
        s.run(X)
        assert pool.save_state(sid) == s.save_state()
    bulk = pool.save_states(ids)
    other = model.pool(8)
    new_ids = [other.open() for _ in ids]
    other.load_states(new_ids, bulk)
    X = frames(model, len(ids), seed=40)
    np.testing.assert_array_equal(other.step(new_ids, X), pool.step(ids, X))
    twin = model.session()
    twin.load_state(pool.save_state(ids[2]))
    sid = other.open()
    other.load_state(sid, sessions[0].save_state())
    x = frames(model, 1, seed=41)
    np.testing.assert_array_equal(other.step([sid], x)[0], sessions[0].step(x[0]))


def test_pool_bulk_load_is_all_or_nothing(model):
    pool = model.pool(4)
    ids = [pool.open() for _ in range(3)]
    pool.step(ids, frames(model, 3))
    before = [pool.get_state(i) for i in ids]
    blob = pool.save_states(ids[:2])
    with pytest.raises(ValueError, match="2 streams, expected 3"):
        pool.load_states(ids, blob)
    pool.close(ids[2])
    with pytest.raises(ValueError, match="closed"):
        pool.load_states([ids[0], ids[2]], blob)
    for sid, b in zip(ids[:2], before):
        np.testing.assert_array_equal(pool.get_state(sid), b)


def fork(s):
    return s.fork()


def test_deepcopy_and_fork_give_independent_streams(model):
    a = warmed(model)
    for make in (copy.deepcopy, fork):
        b = make(a)
        assert b.step is not a.step
        X = frames(model, 6, seed=3)
        before = a.get_state()
        yb = b.run(X)
        np.testing.assert_array_equal(a.get_state(), before)  # stepping the copy left a alone
        np.testing.assert_array_equal(a.run(X), yb)


def test_sessions_pools_and_used_models_pickle(model):
    s = warmed(model)
    m2 = pickle.loads(pickle.dumps(model))  # the model has compiled kernels attached by now
    assert m2.fingerprint == model.fingerprint
    s2 = pickle.loads(pickle.dumps(s))
    X = frames(model, 7, seed=4)
    np.testing.assert_array_equal(s2.run(X), s.run(X))
    pool = model.pool(3)
    sid = pool.open()
    pool.step([sid], X[:1])
    pool2 = pickle.loads(pickle.dumps(pool))
    assert pool2.ids() == pool.ids()
    np.testing.assert_array_equal(pool2.step([sid], X[1:2]), pool.step([sid], X[1:2]))


def test_fingerprint_tracks_every_setting():
    net = gru_rnn()
    base = sl.Model(net).fingerprint
    assert sl.Model(gru_rnn()).fingerprint == base
    assert sl.Model(net, dtype="float64").fingerprint != base
    assert sl.Model(net, fast_activations=False).fingerprint != base
    assert sl.Model(net, weights="int8").fingerprint != base
    g = net.layers[0]
    flipped = dataclasses.replace(g, linear_before_reset=not g.linear_before_reset)
    assert sl.Model(sl.Network([flipped, *net.layers[1:]])).fingerprint != base
