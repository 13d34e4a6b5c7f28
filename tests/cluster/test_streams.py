"""StreamCluster's stream API on a local Ray instance: bad input stays local, idle reclaim,
the async form, bytes sources, and the snapshot format refusing states of other models."""

import asyncio
import logging
import sys
import time

import numpy as np
import pytest
import ray

import streamlstm as sl
from streamlstm.cluster import StreamCluster
from streamlstm.cluster_routing import owner
from streamlstm.cluster_shard import Shard, _restore, _snapshot
from support.cluster_reference import Reference, assert_same_states, frames


@pytest.fixture(scope="module")
def cluster(local_ray, kws_path):
    with StreamCluster(kws_path, shards=2, capacity=128, snapshot_every=8) as c:
        yield c


@pytest.fixture
def streams(cluster, kws_path):
    """40 open streams on the cluster and on the reference, closed again after the test."""
    ref = Reference(kws_path)
    for k in range(40):
        cluster.open(k)
        ref.open(k)
    yield ref
    for k in list(cluster.keys()):
        cluster.close(k)


def test_bad_frames_change_no_stream_on_any_shard(cluster, streams):
    ref, rng = streams, np.random.default_rng(1)
    keys = list(ref.sids)
    assert {cluster.shard_of(k) for k in keys} == {0, 1}
    good = frames(rng, len(keys), ref.model.input_size)
    cluster.step(keys, good), ref.step(keys, good)
    bad_inputs = [
        (np.where(np.arange(len(keys))[:, None] == 17, np.nan, good), ValueError, "NaN"),
        (np.where(np.arange(len(keys))[:, None] == 3, np.inf, good), ValueError, "NaN or Inf"),
        (good[:, :-1], ValueError, "values per frame"),
        (good[:-1], ValueError, "one frame per key"),
        (good.astype(complex), TypeError, "cannot cast"),
    ]
    for X, err, msg in bad_inputs:
        with pytest.raises(err, match=msg):
            cluster.step(keys, X)
    with pytest.raises(ValueError, match="twice"):
        cluster.step(keys[:3] + keys[:1], good[:4])
    with pytest.raises(KeyError, match="not open"):
        cluster.step(keys[:3] + ["nobody"], good[:4])
    with pytest.raises(KeyError):
        cluster.reset("nobody")
    with pytest.raises(TypeError):
        cluster.open(1.5)
    with pytest.raises(ValueError, match="already open"):
        cluster.open(keys[0])
    with pytest.raises(ValueError):
        cluster.set_state(keys[0], np.zeros(3, np.float32))
    with pytest.raises(ValueError):
        cluster.set_state(keys[0], np.full(ref.model.state_size, np.nan, np.float32))
    assert_same_states(cluster, ref)
    X = frames(rng, len(keys), ref.model.input_size)
    assert np.array_equal(cluster.step(keys, X), ref.step(keys, X))


def test_state_round_trip_and_reset(cluster, streams):
    ref, rng = streams, np.random.default_rng(2)
    keys = list(ref.sids)
    for _ in range(3):
        X = frames(rng, len(keys), ref.model.input_size)
        cluster.step(keys, X), ref.step(keys, X)
    st = cluster.get_state(keys[1])
    assert np.array_equal(st, ref.state(keys[1]))
    cluster.set_state(keys[2], st)
    ref.pool.set_state(ref.sids[keys[2]], st)
    cluster.reset(keys[3])
    ref.reset(keys[3])
    assert_same_states(cluster, ref)


def test_outputs_follow_the_order_of_keys(cluster, streams):
    ref, rng = streams, np.random.default_rng(3)
    keys = list(ref.sids)[::-1]
    X = frames(rng, len(keys), ref.model.input_size)
    assert np.array_equal(cluster.step(keys, X), ref.step(keys, X))
    assert cluster.step([], np.zeros((0, ref.model.input_size), np.float32)).shape == (0, ref.model.output_size)


def test_step_async_in_an_event_loop(cluster, streams):
    ref, rng = streams, np.random.default_rng(4)
    keys = list(ref.sids)

    async def pipeline():
        outs = []
        for _ in range(5):
            X = frames(rng, len(keys), ref.model.input_size)
            outs.append((await cluster.step_async(keys, X), ref.step(keys, X)))
        return outs

    for got, want in asyncio.run(pipeline()):
        assert np.array_equal(got, want)


def test_idle_streams_are_reclaimed_with_a_log_record(local_ray, tiny_path, caplog):
    ref = Reference(tiny_path)
    rng = np.random.default_rng(6)
    with StreamCluster(tiny_path, shards=2, capacity=16, idle_timeout=0.4) as c:
        for k in ("busy", "idle", 5):
            c.open(k)
            ref.open(k)
        with caplog.at_level(logging.INFO, logger="streamlstm.cluster"):
            deadline = time.monotonic() + 1.2
            while time.monotonic() < deadline:
                X = frames(rng, 1, ref.model.input_size)
                assert np.array_equal(c.step(["busy"], X), ref.step(["busy"], X))
                time.sleep(0.05)
        assert sorted(map(str, c.keys())) == ["busy"]
        assert any("idle" in r.getMessage() and "'idle'" in r.getMessage() for r in caplog.records)
        with pytest.raises(KeyError):
            c.step(["idle"], frames(rng, 1, ref.model.input_size))
        X = frames(rng, 1, ref.model.input_size)
        assert np.array_equal(c.step(["busy"], X), ref.step(["busy"], X))


def test_bytes_source(local_ray, tiny_path):
    ref = Reference(tiny_path)
    rng = np.random.default_rng(8)
    with StreamCluster(tiny_path.read_bytes(), shards=1, capacity=8) as c:
        assert (c.input_size, c.output_size, c.dtype) == (ref.model.input_size, ref.model.output_size,
                                                          ref.model.dtype)
        c.open("a"), ref.open("a")
        X = frames(rng, 1, ref.model.input_size)
        assert np.array_equal(c.step(["a"], X), ref.step(["a"], X))


def test_onnx_bytes_source(local_ray, tiny_path, tmp_path):
    onnx_path = tmp_path / "tiny.onnx"
    sl.load(tiny_path).to_onnx(onnx_path)
    ref = Reference(onnx_path)
    rng = np.random.default_rng(15)
    with StreamCluster(onnx_path.read_bytes(), shards=1, capacity=8) as c:
        c.open(0), ref.open(0)
        for _ in range(3):
            X = frames(rng, 1, ref.model.input_size)
            assert np.array_equal(c.step([0], X), ref.step([0], X))


def test_routing_moves_about_one_nth_on_resize():
    keys = [f"k{i}" for i in range(3000)] + list(range(3000))
    for n in (1, 2, 3, 5):
        before = [owner(k, n) for k in keys]
        after = [owner(k, n + 1) for k in keys]
        moved = [b != a for b, a in zip(before, after)]
        assert all(a == n for a, m in zip(after, moved) if m)  # only to the new shard
        assert abs(sum(moved) / len(keys) - 1 / (n + 1)) < 0.03


def test_snapshots_refuse_another_models_states(tiny_path, kws_path):
    shard = Shard(tiny_path, 4, {})
    sid = shard.open(1)[0]
    shard.step(np.array([sid]), np.ones((1, 16), np.float32))
    blob = _snapshot(shard._pool, [sid])[0]
    other = Shard(kws_path, 4, {})
    osid = other.open(1)[0]
    before = other.get_state(osid)
    with pytest.raises(ValueError, match="different model"):
        _restore(other._pool, [osid], [blob])
    assert np.array_equal(other.get_state(osid), before)
    with pytest.raises(ValueError, match="damaged|length"):
        _restore(shard._pool, [sid], [blob[:-4]])
    restored = shard.load([blob])[0]
    assert np.array_equal(shard.get_state(restored), shard.get_state(sid))


def _refuse_next_step(shard) -> None:
    """Runs inside a shard actor: its next pool step raises ValueError (after validation there)."""
    real = shard._pool.step

    def refuse(ids, X, out=None):
        shard._pool.step = real
        raise ValueError("refused by the shard")

    shard._pool.step = refuse


def test_a_shard_refusing_its_part_rolls_the_other_shards_back(cluster, streams):
    """If one shard raises ValueError after another advanced, the other is rebuilt in place from
    its snapshot and log: the step changes no stream anywhere."""
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ref, rng = streams, np.random.default_rng(12)
    keys = list(ref.sids)
    for _ in range(3):
        X = frames(rng, len(keys), ref.model.input_size)
        cluster.step(keys, X), ref.step(keys, X)
    ray.get(cluster.shards[1].__ray_call__.remote(_refuse_next_step))
    recoveries = cluster.recoveries
    with pytest.raises(ValueError, match="refused by the shard"):
        cluster.step(keys, frames(rng, len(keys), ref.model.input_size))
    assert cluster.recoveries == recoveries
    assert_same_states(cluster, ref)
    X = frames(rng, len(keys), ref.model.input_size)
    assert np.array_equal(cluster.step(keys, X), ref.step(keys, X))


def test_a_repeated_key_list_stays_exact_through_kills_and_churn(cluster, streams):
    """Steps over the same key list reuse their routing; a kill, an open or a close elsewhere
    must invalidate it, and a list that only compares equal (True for 1) is still refused."""
    ref, rng = streams, np.random.default_rng(14)
    keys = list(ref.sids)

    def steps(count):
        for _ in range(count):
            X = frames(rng, len(keys), ref.model.input_size)
            assert np.array_equal(cluster.step(keys, X), ref.step(keys, X))

    steps(3)
    ray.kill(cluster.shards[0])
    steps(3)
    cluster.open("extra"), ref.open("extra")
    steps(2)
    cluster.close("extra"), ref.close("extra")
    cluster.close(keys[-1]), ref.close(keys[-1])
    with pytest.raises(KeyError):
        cluster.step(keys, frames(rng, len(keys), ref.model.input_size))
    keys = keys[:-1]
    steps(2)
    lookalike = [True if k == 1 else k for k in keys]
    assert lookalike == keys
    with pytest.raises(TypeError):
        cluster.step(lookalike, frames(rng, len(keys), ref.model.input_size))
    steps(1)
    assert_same_states(cluster, ref)


def _advance_then_fail(shard) -> None:
    """Runs inside a shard actor: its next pool step advances its streams, then raises."""
    real = shard._pool.step

    def advance_and_raise(ids, X, out=None):
        shard._pool.step = real
        real(ids, X)
        raise RuntimeError("failed after advancing")

    shard._pool.step = advance_and_raise


def test_an_unexpected_shard_error_rolls_every_shard_back(cluster, streams):
    """A shard error other than refused input leaves that shard's state unknown: it is rebuilt
    too, so the call that raised changed no stream anywhere."""
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ref, rng = streams, np.random.default_rng(16)
    keys = list(ref.sids)
    X = frames(rng, len(keys), ref.model.input_size)
    cluster.step(keys, X), ref.step(keys, X)
    ray.get(cluster.shards[0].__ray_call__.remote(_advance_then_fail))
    with pytest.raises(RuntimeError, match="failed after advancing"):
        cluster.step(keys, frames(rng, len(keys), ref.model.input_size))
    assert_same_states(cluster, ref)
    X = frames(rng, len(keys), ref.model.input_size)
    assert np.array_equal(cluster.step(keys, X), ref.step(keys, X))
