"""StreamCluster on a local Ray instance: outputs and states stay bit-identical to one
SessionPool through shard kills (ray.kill, a process that exits), resizes and stream churn."""

import os
import time

import numpy as np
import pytest
import ray

from streamlstm.cluster import ShardLostError, StreamCluster
from support.cluster_reference import Reference, assert_same_states, frames

STREAMS, STEPS = 256, 200


@pytest.fixture(scope="module")
def ray_instance(local_ray):
    return local_ray


def _exit_shard(actor) -> None:
    """Make the shard's own process exit abruptly (os._exit inside the actor)."""
    actor.__ray_call__.remote(lambda self: os._exit(1))


def _kill_and_wait(actor, deadline_s: float = 60.0) -> None:
    """ray.kill only sends the request: a call made at once may still reach the live actor.
    Return once the actor refuses calls."""
    ray.kill(actor)
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            ray.get(actor.__ray_call__.remote(lambda self: None), timeout=5)
        except ray.exceptions.RayActorError:
            return
        except ray.exceptions.GetTimeoutError:
            continue
        time.sleep(0.05)
    raise AssertionError(f"actor still answers {deadline_s} s after ray.kill")


def _run(cluster, ref, rng, steps, events=None, churn=False):
    """Step random subsets of the open streams; ``events[t](cluster, ref)`` runs before step t."""
    events = events or {}
    fresh = 0
    for t in range(steps):
        if t in events:
            events[t](cluster, ref)
        keys = list(ref.sids)
        if churn and t % 25 == 7:  # close two streams, open two, reset one, copy a state
            for k in keys[:2]:
                cluster.close(k)
                ref.close(k)
            for _ in range(2):
                k = f"new{fresh}"
                fresh += 1
                cluster.open(k)
                ref.open(k)
            keys = list(ref.sids)
            cluster.reset(keys[3])
            ref.reset(keys[3])
            st = ref.state(keys[5])
            cluster.set_state(keys[4], st)
            ref.pool.set_state(ref.sids[keys[4]], st)
        sub = [k for k in keys if rng.random() < 0.8]
        rng.shuffle(sub)
        X = frames(rng, len(sub), ref.model.input_size)
        Y = cluster.step(sub, X)
        assert np.array_equal(Y, ref.step(sub, X)), f"step {t}"


def _open_all(cluster, ref, n):
    keys = [f"s{i}" if i % 2 else i for i in range(n)]
    for k in keys:
        cluster.open(k)
        ref.open(k)
    return keys


def test_subset_steps_are_bit_identical_to_full_steps(kws_path):
    """The design rests on it: a row's output does not depend on the other rows or the capacity."""
    full, part = Reference(kws_path, 512), Reference(kws_path, 100)
    for k in range(300):
        full.open(k)
    for k in range(0, 300, 3):
        part.open(k)
    rng = np.random.default_rng(3)
    for _ in range(10):
        X = frames(rng, 300, full.model.input_size)
        Y = full.step(list(range(300)), X)
        order = rng.permutation(np.arange(0, 300, 3))
        assert np.array_equal(part.step(list(order), X[order]), Y[order])


def test_kill_shards_at_random_steps(ray_instance, kws_path):
    rng = np.random.default_rng(20)
    ref = Reference(kws_path)
    kill_at, exit_at = sorted(rng.choice(np.arange(10, STEPS - 10), 2, replace=False))
    with StreamCluster(str(kws_path), shards=3, capacity=256, snapshot_every=16) as c:
        _open_all(c, ref, STREAMS)
        victims = {}

        def kill(cl, _):
            victims["kill"] = cl.shards[0]
            ray.kill(cl.shards[0])

        def exit_(cl, _):
            victims["exit"] = cl.shards[1]
            _exit_shard(cl.shards[1])

        _run(c, ref, rng, STEPS, {int(kill_at): kill, int(exit_at): exit_}, churn=True)
        assert c.recoveries == 2
        assert c.shards[0] is not victims["kill"] and c.shards[1] is not victims["exit"]
        assert_same_states(c, ref)


def test_kill_right_after_every_kind_of_logged_operation(ray_instance, tiny_path):
    """The replay log holds open, close, reopen, reset, set_state and steps; a kill replays them all."""
    ref = Reference(tiny_path)
    rng = np.random.default_rng(5)
    with StreamCluster(tiny_path, shards=1, capacity=64, snapshot_every=1000) as c:
        _open_all(c, ref, 10)
        _run(c, ref, rng, 5)
        for op in ("close", "reopen", "reset", "set_state"):
            if op == "close":
                c.close(2), ref.close(2)
            elif op == "reopen":
                c.open(2), ref.open(2)
            elif op == "reset":
                c.reset("s1"), ref.reset("s1")
            else:
                st = ref.state("s5")
                c.set_state(4, st), ref.pool.set_state(ref.sids[4], st)
            ray.kill(c.shards[0])
            _run(c, ref, rng, 3)
            assert_same_states(c, ref)
        assert c.recoveries == 4


def test_resize_2_3_1_mid_run(ray_instance, kws_path):
    rng = np.random.default_rng(7)
    ref = Reference(kws_path)
    with StreamCluster(kws_path, shards=2, capacity=STREAMS, snapshot_every=16) as c:
        keys = _open_all(c, ref, STREAMS)
        placed = {}

        def grow(cl, _):
            placed.update({k: cl.shard_of(k) for k in keys})
            ray.kill(cl.shards[1])  # dead when resize snapshots it: rebuilt first
            time.sleep(0.5)
            cl.resize(3)
            assert len(cl.shards) == 3
            moved = sum(cl.shard_of(k) != placed[k] for k in keys)
            assert 0.15 * STREAMS < moved < 0.5 * STREAMS  # about 1/3 move, and only to shard 2
            assert all(cl.shard_of(k) == 2 for k in keys if cl.shard_of(k) != placed[k])

        def shrink(cl, _):
            cl.resize(1)
            assert len(cl.shards) == 1 and {cl.shard_of(k) for k in keys} == {0}

        _run(c, ref, rng, STEPS, {70: grow, 140: shrink})
        assert c.recoveries == 1
        assert_same_states(c, ref)


def test_resize_refuses_what_does_not_fit(ray_instance, tiny_path):
    with StreamCluster(tiny_path, shards=2, capacity=8) as c:
        for k in range(12):
            c.open(k)
        before = {k: c.shard_of(k) for k in range(12)}
        with pytest.raises(ValueError, match="capacity"):
            c.resize(1)
        assert len(c.shards) == 2 and {k: c.shard_of(k) for k in range(12)} == before


def test_unrecoverable_shard_raises_a_clear_error_and_returns_nothing(ray_instance, tiny_path, tmp_path):
    """If no replacement can load the model, the call raises ShardLostError and no other shard
    advances: after the file is back, every output is still the reference's."""
    path = tmp_path / "gone.npz"
    path.write_bytes(tiny_path.read_bytes())
    ref = Reference(tiny_path)
    rng = np.random.default_rng(9)
    with StreamCluster(str(path), shards=2, capacity=64, snapshot_every=4, max_recoveries=2) as c:
        _open_all(c, ref, 40)
        _run(c, ref, rng, 6)
        data = path.read_bytes()
        path.unlink()
        _kill_and_wait(c.shards[0])
        keys = list(ref.sids)
        with pytest.raises(ShardLostError, match="could not be rebuilt"):
            c.step(keys, frames(rng, len(keys), ref.model.input_size))
        path.write_bytes(data)
        _run(c, ref, rng, 6)
        assert_same_states(c, ref)


def test_a_hung_shard_is_replaced_after_step_timeout(ray_instance, tiny_path):
    ref = Reference(tiny_path)
    rng = np.random.default_rng(13)
    with StreamCluster(tiny_path, shards=2, capacity=32, snapshot_every=4, step_timeout=3.0) as c:
        _open_all(c, ref, 20)
        _run(c, ref, rng, 6)
        c.shards[0].__ray_call__.remote(lambda self: time.sleep(600))
        _run(c, ref, rng, 6)
        assert c.recoveries == 1
        assert_same_states(c, ref)
