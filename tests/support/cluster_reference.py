"""The single-process peer of the StreamCluster tests: one SessionPool fed the same frames, by key."""

import numpy as np

import streamlstm as sl


class Reference:
    """The uninterrupted single-process peer: one SessionPool, streams by key."""

    def __init__(self, path, capacity: int = 1024):
        self.model = sl.load(path)
        self.pool = self.model.pool(capacity)
        self.sids = {}

    def open(self, key):
        self.sids[key] = self.pool.open()

    def close(self, key):
        self.pool.close(self.sids.pop(key))

    def reset(self, key):
        self.pool.reset(self.sids[key])

    def step(self, keys, X):
        return self.pool.step([self.sids[k] for k in keys], X)

    def state(self, key):
        return self.pool.get_state(self.sids[key])


def frames(rng, n: int, size: int) -> np.ndarray:
    return rng.standard_normal((n, size)).astype(np.float32)


def assert_same_states(cluster, ref: Reference) -> None:
    assert sorted(map(str, cluster.keys())) == sorted(map(str, ref.sids))
    for key in ref.sids:
        assert np.array_equal(cluster.get_state(key), ref.state(key)), key
