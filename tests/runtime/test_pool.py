"""SessionPool: every pool stream behaves exactly like its own Session.

A hypothesis state machine opens, closes, resets, restores and steps random subsets of streams
(in random order) and checks each pool stream's outputs and state bit for bit against a shadow
Session fed the same frames. Also: every error leaves every state untouched, closed slots are
reused but closed ids never are, states move between Sessions and pool slots, threaded steps
equal single-threaded ones, non-streamable models are refused.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import streamlstm as sl
import streamlstm.pool as pool_module
from streamlstm.kernels import layout as L
from support.pool_nets import bidirectional, frames, lstm_extras, lstm_stack, models

MODELS = models()


@pytest.fixture(scope="module", params=sorted(MODELS))
def model(request) -> sl.Model:
    return MODELS[request.param]


def states(pool: sl.SessionPool) -> dict[int, np.ndarray]:
    return {i: pool.get_state(i) for i in pool.ids()}


def assert_same_states(before: dict, pool: sl.SessionPool):
    after = states(pool)
    assert before.keys() == after.keys()
    for i in before:
        assert np.array_equal(before[i], after[i]), f"stream {i} changed"


# ---------------------------------------------------------------- pool == sessions
class PoolVsSessions(RuleBasedStateMachine):
    @initialize(name=st.sampled_from(sorted(MODELS)), capacity=st.integers(1, 40), seed=st.integers(0, 2**16))
    def setup(self, name, capacity, seed):
        self.model = MODELS[name]
        self.pool = self.model.pool(capacity)
        self.shadow: dict[int, sl.Session] = {}
        self.rng = np.random.default_rng(seed)
        self.closed: list[int] = []

    @precondition(lambda self: len(self.shadow) < self.pool.capacity)
    @rule(k=st.integers(1, 12))
    def open(self, k):
        for _ in range(min(k, self.pool.capacity - len(self.shadow))):
            sid = self.pool.open()
            assert sid not in self.shadow and sid not in self.closed
            self.shadow[sid] = self.model.session()

    @precondition(lambda self: self.shadow)
    @rule(data=st.data())
    def close(self, data):
        sid = data.draw(st.sampled_from(sorted(self.shadow)))
        self.pool.close(sid)
        del self.shadow[sid]
        self.closed.append(sid)

    @precondition(lambda self: self.shadow)
    @rule(data=st.data())
    def step(self, data):
        ids = data.draw(st.lists(st.sampled_from(sorted(self.shadow)), min_size=1, unique=True))
        X = frames(self.rng, self.model, len(ids))
        Y = self.pool.step(np.array(ids), X)
        for k, sid in enumerate(ids):
            assert np.array_equal(Y[k], self.shadow[sid].step(X[k])), f"stream {sid} output differs"

    @precondition(lambda self: self.shadow)
    @rule(data=st.data(), steps=st.integers(1, 3))
    def step_all_in_list_order(self, data, steps):
        ids = data.draw(st.permutations(sorted(self.shadow)))
        for _ in range(steps):
            X = frames(self.rng, self.model, len(ids))
            Y = self.pool.step(list(ids), X)
            for k, sid in enumerate(ids):
                assert np.array_equal(Y[k], self.shadow[sid].step(X[k]))

    @precondition(lambda self: self.shadow)
    @rule(data=st.data())
    def reset(self, data):
        sid = data.draw(st.sampled_from(sorted(self.shadow)))
        self.pool.reset(sid)
        self.shadow[sid].reset()

    @precondition(lambda self: len(self.shadow) >= 2)
    @rule(data=st.data())
    def copy_state(self, data):
        a, b = data.draw(st.permutations(sorted(self.shadow)))[:2]
        self.pool.set_state(b, self.pool.get_state(a))
        self.shadow[b].set_state(self.shadow[a].get_state())

    @precondition(lambda self: self.closed)
    @rule(data=st.data())
    def closed_id_is_refused(self, data):
        sid = data.draw(st.sampled_from(self.closed))
        before = states(self.pool)
        with pytest.raises(ValueError, match="closed"):
            self.pool.step([sid], frames(self.rng, self.model, 1))
        assert_same_states(before, self.pool)

    @invariant()
    def same_states(self):
        if hasattr(self, "pool"):
            assert sorted(self.pool.ids()) == sorted(self.shadow)
            assert len(self.pool) == len(self.shadow)
            for sid, s in self.shadow.items():
                assert np.array_equal(self.pool.get_state(sid), s.get_state())


PoolVsSessions.TestCase.settings = settings(max_examples=40, stateful_step_count=20, deadline=None,
                                            derandomize=True, suppress_health_check=list(HealthCheck))
TestPoolVsSessions = PoolVsSessions.TestCase


def test_long_stream_matches_sessions(model):
    """600 frames on 37 streams in blocks of mixed size: outputs and states equal the sessions'."""
    rng = np.random.default_rng(7)
    pool = model.pool(40)
    ids = np.array([pool.open() for _ in range(37)])
    sessions = [model.session() for _ in ids]
    for t in range(600):
        X = frames(rng, model, len(ids))
        Y = pool.step(ids, X)
        if t % 50 == 0 or t == 599:
            ref = np.stack([s.step(x) for s, x in zip(sessions, X)])
            assert np.array_equal(Y, ref)
        else:
            for s, x in zip(sessions, X):
                s.step(x)
    for sid, s in zip(ids, sessions):
        assert np.array_equal(pool.get_state(sid), s.get_state())


@pytest.fixture
def split_small_steps(monkeypatch):
    """Pools made from here on split any step of 64 streams or more, however small the model."""
    monkeypatch.setattr(pool_module, "_MIN_SPLIT_PRODUCTS", 0)


def test_threaded_pool_equals_single_threaded(split_small_steps):
    model = MODELS["lstm_stack"]
    rng = np.random.default_rng(3)
    p1, p3 = model.pool(200), sl.SessionPool(model, 200, threads=3)
    assert p3.threads == 3
    ids1 = np.array([p1.open() for _ in range(200)])
    ids3 = np.array([p3.open() for _ in range(200)])
    for n in (200, 64, 130, 5):
        for _ in range(4):
            X = frames(rng, model, n)
            assert np.array_equal(p1.step(ids1[:n], X), p3.step(ids3[:n], X))
    for a, b in zip(ids1, ids3):
        assert np.array_equal(p1.get_state(a), p3.get_state(b))


# ---------------------------------------------------------------- lifecycle
def test_slot_reuse_and_fresh_state():
    model = sl.Model(lstm_extras())  # learned initial states: a reused slot must not keep the old state
    pool = model.pool(3)
    ids = [pool.open() for _ in range(3)]
    assert len(pool) == 3 and len(set(ids)) == 3
    with pytest.raises(ValueError, match="full"):
        pool.open()
    pool.step(ids, np.ones((3, model.input_size), np.float32))
    pool.close(ids[1])
    assert len(pool) == 2
    new = pool.open()  # reuses the freed slot ...
    assert new not in ids  # ... under a new id
    assert np.array_equal(pool.get_state(new), model.session().get_state())
    assert not np.array_equal(pool.get_state(ids[0]), pool.get_state(new))
    with pytest.raises(ValueError, match="closed"):
        pool.get_state(ids[1])
    with pytest.raises(ValueError, match="full"):
        pool.open()
    for sid in (ids[0], ids[2], new):
        pool.close(sid)
    assert len(pool) == 0 and pool.ids() == []
    assert len({pool.open() for _ in range(3)}) == 3


def test_reset_returns_to_initial_state():
    model = sl.Model(lstm_extras())
    pool = model.pool(2)
    a, b = pool.open(), pool.open()
    pool.step([a, b], np.ones((2, model.input_size), np.float32))
    before_b = pool.get_state(b)
    pool.reset(a)
    assert np.array_equal(pool.get_state(a), model.session().get_state())
    assert np.array_equal(pool.get_state(b), before_b)


def test_states_move_between_sessions_and_pool(model):
    rng = np.random.default_rng(5)
    s = model.session()
    for x in frames(rng, model, 20):
        s.step(x)
    pool = model.pool(4)
    sid = pool.open()
    pool.set_state(sid, s.get_state())
    X = frames(rng, model, 10)
    Yp = np.concatenate([pool.step([sid], x[None]) for x in X])
    Ys = np.stack([s.step(x) for x in X])
    assert np.array_equal(Yp, Ys)
    s2 = model.session()
    s2.set_state(pool.get_state(sid))
    assert np.array_equal(s2.step(X[0]), pool.step([sid], X[:1])[0])


def test_out_buffer_and_empty_step():
    model = MODELS["lstm_stack"]
    pool = model.pool(4)
    ids = np.array([pool.open(), pool.open()])
    out = np.full((2, model.output_size), np.nan, np.float32)
    X = np.ones((2, model.input_size), np.float32)
    assert pool.step(ids, X, out=out) is out and np.isfinite(out).all()
    assert pool.step([], np.zeros((0, model.input_size))).shape == (0, model.output_size)
    # a non-contiguous, int-typed, read-only frame block is converted, not rejected
    Xi = np.ones((2, 2 * model.input_size), np.int32)[:, ::2]
    Xi.flags.writeable = False
    p1, p2 = model.pool(2), model.pool(2)
    ids1 = np.array([p1.open(), p1.open()])
    ids2 = np.array([p2.open(), p2.open()])
    ids2_strided = np.array([ids2[0], -7, ids2[1]])[::2]
    assert np.array_equal(p1.step(ids1, X), p2.step(ids2_strided, Xi))


# ---------------------------------------------------------------- errors change nothing
@pytest.fixture()
def busy_pool():
    model = MODELS["lstm_stack"]
    pool = model.pool(5)
    ids = [pool.open() for _ in range(4)]
    pool.step(ids, frames(np.random.default_rng(0), model, 4))
    closed = ids.pop(2)
    pool.close(closed)
    return model, pool, ids, closed


def _bad_steps(model, ids, closed):
    I = model.input_size
    good = np.ones((len(ids), I), np.float32)
    nan = good.copy()
    nan[-1, -1] = np.nan
    inf = good.copy()
    inf[0, 0] = -np.inf
    return {
        "closed": ([ids[0], closed, ids[1]], np.ones((3, I)), "closed"),
        "unknown": ([ids[0], 10**9], np.ones((2, I)), "never opened"),
        "negative": ([-1], np.ones((1, I)), "never opened"),
        "duplicate": ([ids[0], ids[1], ids[0]], np.ones((3, I)), "twice"),
        "nan": (ids, nan, "NaN"),
        "inf": (ids, inf, "NaN or Inf"),
        "rows": (ids, np.ones((len(ids) + 1, I)), "one frame per id"),
        "cols": (ids, np.ones((len(ids), I + 1)), "values per frame"),
        "1-D X": (ids, np.ones(I), "2-D"),
        "float ids": ([0.0], np.ones((1, I)), "integer"),
        "2-D ids": ([ids], np.ones((len(ids), I)), "1-D"),
        "string X": (ids, np.array([["a"] * I] * len(ids)), "cast"),
    }


@pytest.mark.parametrize("case", list(_bad_steps(MODELS["lstm_stack"], [0, 1, 3], 2)))
def test_bad_step_changes_nothing(busy_pool, case):
    model, pool, ids, closed = busy_pool
    ids_arg, X, msg = _bad_steps(model, ids, closed)[case]
    before = states(pool)
    with pytest.raises((ValueError, TypeError), match=msg):
        pool.step(ids_arg, X)
    assert_same_states(before, pool)
    pool.step(ids, np.ones((len(ids), model.input_size), np.float32))  # still usable


def test_bad_out_and_state_change_nothing(busy_pool):
    model, pool, ids, closed = busy_pool
    before = states(pool)
    X = np.ones((len(ids), model.input_size), np.float32)
    with pytest.raises(ValueError, match="out"):
        pool.step(ids, X, out=np.empty((len(ids), model.output_size + 1), np.float32))
    with pytest.raises(ValueError, match="shape"):
        pool.set_state(ids[0], np.zeros(model.state_size + 1))
    bad = np.zeros(model.state_size)
    bad[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        pool.set_state(ids[0], bad)
    with pytest.raises(ValueError, match="closed"):
        pool.set_state(closed, np.zeros(model.state_size))
    for verb in ("reset", "close", "get_state"):
        with pytest.raises(ValueError, match="closed"):
            getattr(pool, verb)(closed)
        with pytest.raises(ValueError, match="never opened"):
            getattr(pool, verb)(12345)
    with pytest.raises(ValueError, match="int stream id"):
        pool.reset("0")
    assert_same_states(before, pool)


def test_bad_threaded_step_changes_nothing(split_small_steps):
    model = MODELS["lstm_stack"]
    pool = sl.SessionPool(model, 100, threads=2)
    ids = [pool.open() for _ in range(100)]
    pool.step(ids, frames(np.random.default_rng(1), model, 100))
    before = states(pool)
    X = np.ones((100, model.input_size), np.float32)
    X[99, 0] = np.nan
    with pytest.raises(ValueError, match="frame 99"):
        pool.step(ids, X)
    with pytest.raises(ValueError, match="twice"):
        pool.step(ids[:99] + [ids[0]], np.ones((100, model.input_size)))
    assert_same_states(before, pool)


def test_small_steps_stay_on_the_calling_thread(monkeypatch):
    """A step splits over threads only from threaded_rows streams: 64, or as many as it takes
    to reach 10M multiply-adds (waking a worker costs tens of microseconds), at most 4096."""
    rng = np.random.default_rng(0)
    H = 512
    small = MODELS["lstm_stack"]
    large = sl.Model(sl.Network([sl.LSTM(W=rng.uniform(-0.1, 0.1, (1, 4 * H, 64)),
                                         R=rng.uniform(-0.1, 0.1, (1, 4 * H, H)))]))
    per_frame = small.plan.products_per_frame
    K, G = small.plan.rows[0, [L.C_WX + L.M_ROWS, L.C_WX + L.M_COLS]]
    assert per_frame >= K * G > 0
    assert pool_module.threaded_rows(small.plan) == min(-(-10_000_000 // per_frame), 4096)
    assert pool_module.threaded_rows(large.plan) == 64
    split = []
    monkeypatch.setattr(sl.SessionPool, "_step_threaded", lambda self, *a: split.append(len(a[0])))
    for model in (small, large):
        pool = model.pool(64, threads=2)
        ids = [pool.open() for _ in range(64)]
        pool.step(ids, frames(np.random.default_rng(0), model, 64))
    assert split == [64]


def test_construction_errors():
    model = MODELS["lstm_stack"]
    for cap in (0, -3, 2.5, True, "4"):
        with pytest.raises(ValueError, match="capacity"):
            model.pool(cap)
    with pytest.raises(ValueError, match="threads"):
        sl.SessionPool(model, 4, threads=0)
    with pytest.raises(ValueError, match="bidirectional"):
        sl.Model(bidirectional()).pool(4)
    assert isinstance(sl.Model(lstm_stack()).pool(1), sl.SessionPool)
    assert model.pool(8, threads=2).threads == 2


@pytest.mark.parametrize("H, block", [(16, 64), (1024, 256)], ids=["small weights", "large weights"])
def test_blocks_of_either_size_give_each_stream_its_sessions_bits(H, block):
    """300 streams run in blocks of 64 (small weights) or 256 (weights over 8 MiB), with a
    partial last block; each stream equals its own Session bit for bit."""
    from streamlstm.kernels.streams import block_rows

    rng = np.random.default_rng(H)
    I, n = 8, 300
    lstm = sl.LSTM(rng.uniform(-.2, .2, (1, 4 * H, I)), rng.uniform(-.2, .2, (1, 4 * H, H)))
    model = sl.Model(sl.Network([lstm, sl.Dense(rng.uniform(-.2, .2, (3, H)))]))
    assert block_rows(n, model.plan.weight_bytes) == block
    pool = model.pool(n)
    ids = [pool.open() for _ in range(n)]
    X = rng.normal(size=(3, n, I)).astype(np.float32)
    got = np.stack([pool.step(ids, x) for x in X])
    for j in (0, block - 1, block, n - 1):
        s = model.session()
        np.testing.assert_array_equal(got[:, j], np.stack([s.step(x[j]) for x in X]))
