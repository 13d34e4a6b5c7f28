"""Frame fuzzing: whatever a caller passes to a session or a pool, it gets either the right answer
or a clear error, and no stream's state changes on an error.

Hypothesis draws frames of random shapes, dtypes (bool, ints, float16/32/64, complex, object,
str, bytes, datetime), layouts (strided, reversed, Fortran, read-only, byte-swapped, broadcast,
masked) and values (NaN, +-Inf, values that overflow the model's float type), plus lists,
scalars and junk objects; and for pools, id lists with closed, unknown, negative, huge and
duplicate ids in various containers. The oracle: a frame is valid when ``np.asarray`` of it is a
real-number array of the right shape whose same-kind cast to the model's dtype is finite. A valid
input must give exactly what a twin session (same state, clean contiguous frame) gives; an
invalid one must raise ValueError/TypeError whose message names the argument, with every state
bit-identical before and after.
"""

from __future__ import annotations

import json
import os
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import streamlstm as sl
from support.pool_nets import gru_rnn, lstm_extras, lstm_stack

# Casting 1e300 (float64) to float32 makes numpy warn before the session refuses the resulting Inf.
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")

# scripts/reliability.py raises the example count and collects how many inputs were tried
EXAMPLES = int(os.environ.get("STREAMLSTM_FRAME_EXAMPLES", "150"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))
TRIED: Counter = Counter()

MODELS = {
    "lstm_stack_f32": lambda: sl.Model(lstm_stack()),
    "lstm_stack_f64": lambda: sl.Model(lstm_stack(), dtype="float64"),
    "gru_rnn": lambda: sl.Model(gru_rnn()),
    "lstm_extras_int8": lambda: sl.Model(lstm_extras(), weights="int8"),
}

DTYPES = ["float32", "float64", "float16", "int8", "int32", "int64", "uint8", "uint64", "bool",
          "complex64", "complex128", "object", "U4", "S3", "datetime64[s]", "timedelta64[s]",
          ">f4", ">f8", "<i2"]
LAYOUTS = ["c", "c", "c", "strided", "reversed", "fortran", "readonly", "byteswapped", "broadcast", "masked"]
SPECIALS = [None, None, None, np.nan, np.inf, -np.inf, 1e300, -1e300, 1e39]
JUNK = [None, "frame", b"\x00" * 8, {"x": 1}, object(), 1.5, 3, [1.0, "a"], [[1.0]], ()]


@pytest.fixture(scope="module", params=list(MODELS))
def model(request) -> sl.Model:
    return MODELS[request.param]()


@pytest.fixture(scope="module", autouse=True)
def count_inputs():
    yield
    path = os.environ.get("STREAMLSTM_FRAME_COUNTS")
    if path:
        with open(path, "w") as fh:
            json.dump(dict(TRIED), fh)


# ---------------------------------------------------------------------------------- inputs
@st.composite
def arrays(draw, rows: int | None, width: int):
    """An array-like meant as one frame (rows=None) or a (rows, width) block, often subtly wrong."""
    right = (width,) if rows is None else (rows, width)
    shape = draw(st.one_of(st.just(right), st.just(right), st.just(right),
                           st.lists(st.integers(0, width + 2), min_size=0, max_size=3).map(tuple)))
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    layout = draw(st.sampled_from(LAYOUTS))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    special = draw(st.sampled_from(SPECIALS))
    rng = np.random.default_rng(seed)
    base = np.asarray(rng.normal(size=shape) * 2)
    if special is not None and base.size:
        base.reshape(-1)[rng.integers(base.size)] = special
    with np.errstate(all="ignore"):
        if dtype.kind in "OUS":
            a = base.astype(dtype) if dtype.kind != "O" else base.astype(object)
        elif dtype.kind in "Mm":
            a = np.zeros(shape, dtype)
        elif dtype.kind in "iub":
            a = np.nan_to_num(base, posinf=1e9, neginf=-1e9).astype(dtype)
        else:
            a = base.astype(dtype)
    a = np.asarray(a)  # nan_to_num turns 0-d arrays into scalars
    if layout == "strided" and a.ndim:
        big = np.zeros((a.shape[0] * 2,) + a.shape[1:], a.dtype)
        big[::2] = a
        a = big[::2]
    elif layout == "reversed" and a.ndim:
        a = a[::-1].copy()[::-1]
    elif layout == "fortran" and a.ndim == 2:
        a = np.asfortranarray(a)
    elif layout == "readonly":
        a = a.copy()
        a.flags.writeable = False
    elif layout == "byteswapped" and a.dtype.kind in "iuf" and a.dtype.itemsize > 1:
        a = a.astype(a.dtype.newbyteorder())
    elif layout == "broadcast" and a.ndim and a.size:
        a = np.broadcast_to(a.reshape(-1)[:1].reshape((1,) * a.ndim), a.shape)
    elif layout == "masked":
        a = np.ma.masked_array(a, mask=np.zeros(a.shape, bool))
    return a


def frame_like(rows: int | None, width: int):
    """Arrays most of the time; otherwise lists of numbers, scalars and junk objects."""
    good = [0.5] * width if rows is None else [[0.5] * width] * rows
    return st.one_of(arrays(rows, width), arrays(rows, width), arrays(rows, width), arrays(rows, width),
                     st.just(good), st.sampled_from(JUNK))


def clean(x, shape: tuple, dtype: np.dtype) -> np.ndarray | None:
    """The contiguous frame(s) a valid ``x`` stands for, or None when ``x`` must be refused."""
    try:
        a = np.asarray(x)
    except Exception:
        return None
    if a.dtype.kind not in "biuf" or not np.can_cast(a.dtype, dtype, "same_kind") or a.shape != shape:
        return None
    with np.errstate(all="ignore"):
        c = np.ascontiguousarray(a.astype(dtype))
    return c if np.all(np.isfinite(c)) else None


def twin_of(model: sl.Model, state: np.ndarray) -> sl.Session:
    t = model.session()
    t.set_state(state)
    return t


def warmed(model: sl.Model, seed: int = 0) -> sl.Session:
    s = model.session()
    s.run(np.random.default_rng(seed).normal(size=(5, model.input_size)).astype(model.dtype))
    return s


def assert_clear(err: Exception, *names: str):
    msg = str(err)
    assert any(msg.startswith((f"{n}:", f"{n}[")) or "SessionPool." in msg for n in names), msg


def refused_or_as_twin(s: sl.Session, twin: sl.Session, verb: str, arg, want, name: str) -> None:
    """``s.<verb>(arg)`` raises an error naming ``name`` and leaves the state alone when ``want``
    is None, else returns what the twin returns for the clean ``want``; the states agree after."""
    label = "refused" if want is None else "accepted"
    event(label)
    TRIED[f"session.{verb} {label}"] += 1
    if want is None:
        before = s.get_state()
        with pytest.raises((ValueError, TypeError)) as e:
            getattr(s, verb)(arg)
        assert_clear(e.value, name)
        assert np.array_equal(s.get_state(), before)
    else:
        np.testing.assert_array_equal(getattr(s, verb)(arg), getattr(twin, verb)(want))
    np.testing.assert_array_equal(s.get_state(), twin.get_state())


# ---------------------------------------------------------------------------------- sessions
@SETTINGS
@given(data=st.data())
def test_session_step(model, data):
    I = model.input_size
    x = data.draw(frame_like(None, I))
    s = warmed(model)
    twin = twin_of(model, s.get_state())
    refused_or_as_twin(s, twin, "step", x, clean(x, (I,), model.dtype), "x")
    nxt = np.full(I, 0.25, model.dtype)
    np.testing.assert_array_equal(s.step(nxt), twin.step(nxt))  # the stream carries on as its twin


@SETTINGS
@given(data=st.data())
def test_session_run(model, data):
    I = model.input_size
    X = data.draw(frame_like(data.draw(st.integers(0, 6)), I))
    s = warmed(model)
    twin = twin_of(model, s.get_state())
    rows = np.shape(X)[0] if np.ndim(X) == 2 else -1  # any number of frames, including 0
    refused_or_as_twin(s, twin, "run", X, clean(X, (rows, I), model.dtype), "X")


@SETTINGS
@given(data=st.data())
def test_session_out_and_set_state(model, data):
    s = warmed(model)
    before = s.get_state()
    out = data.draw(frame_like(None, model.output_size))
    x = np.full(model.input_size, 0.1, model.dtype)
    ok_out = out is None or (isinstance(out, np.ndarray) and out.dtype == model.dtype
                             and out.shape == (model.output_size,) and out.flags.writeable)
    if ok_out:
        y = s.step(x, out=out)
        assert out is None or y is out
        np.testing.assert_array_equal(y, twin_of(model, before).step(x))
    else:
        with pytest.raises((ValueError, TypeError)) as e:
            s.step(x, out=out)
        assert_clear(e.value, "out")
        assert np.array_equal(s.get_state(), before)
    TRIED["session.step(out=) " + ("accepted" if ok_out else "refused")] += 1
    st_in = data.draw(frame_like(None, model.state_size))
    want = clean(st_in, (model.state_size,), model.dtype)
    current = s.get_state()
    TRIED["session.set_state " + ("refused" if want is None else "accepted")] += 1
    if want is None:
        with pytest.raises((ValueError, TypeError)) as e:
            s.set_state(st_in)
        assert_clear(e.value, "state")
        assert np.array_equal(s.get_state(), current)
    else:
        s.set_state(st_in)
        np.testing.assert_array_equal(s.get_state(), want)


# ---------------------------------------------------------------------------------- pools
class PoolFixture:
    """A pool with open, closed and never-used slots, and every open stream's state."""

    def __init__(self, model: sl.Model):
        self.model = model
        self.pool = model.pool(6)
        ids = [self.pool.open() for _ in range(5)]
        self.pool.step(ids, np.random.default_rng(1).normal(size=(5, model.input_size)).astype(model.dtype))
        self.closed = ids.pop(1)
        self.pool.close(self.closed)
        self.ids = ids

    def states(self) -> dict[int, np.ndarray]:
        return {i: self.pool.get_state(i) for i in self.pool.ids()}

    def assert_unchanged(self, before: dict):
        after = self.states()
        assert after.keys() == before.keys()
        for i in before:
            assert np.array_equal(after[i], before[i]), f"stream {i} changed"


def id_lists(fx: PoolFixture):
    bad = [fx.closed, 7, -1, -(1 << 63), (1 << 63) - 1, 10 ** 9]
    one = st.one_of(st.sampled_from(fx.ids), st.sampled_from(fx.ids), st.sampled_from(bad))
    distinct = st.permutations(fx.ids).flatmap(lambda p: st.integers(1, len(p)).map(lambda k: list(p[:k])))
    return st.tuples(st.one_of(st.lists(one, min_size=0, max_size=5), distinct),
                     st.sampled_from(["list", "int64", "int32", "uint64", "float", "bool", "tuple",
                                      "strided", "readonly", "2d", "str"]))


def as_container(ids: list, kind: str):
    if kind == "list":
        return ids
    if kind == "tuple":
        return tuple(ids)
    if kind == "int64":
        return np.array(ids, np.int64)
    if kind == "int32":
        return np.array(ids, np.int64).astype(np.int32)  # wraps huge ids: still some id
    if kind == "uint64":
        return np.array(ids, np.int64).astype(np.uint64)
    if kind == "float":
        return np.array(ids, np.float64)
    if kind == "bool":
        return [bool(i % 2) for i in ids]
    if kind == "strided":
        big = np.zeros(2 * len(ids), np.int64)
        big[::2] = ids
        return big[::2]
    if kind == "readonly":
        a = np.array(ids, np.int64)
        a.flags.writeable = False
        return a
    if kind == "2d":
        return np.array(ids, np.int64).reshape(1, -1)
    return [str(i) for i in ids]


def valid_ids(container, open_ids) -> list[int] | None:
    """The stream ids a valid container names, or None when the pool must refuse it."""
    try:
        a = np.asarray(container)
    except Exception:
        return None
    if a.ndim != 1:
        return None
    if a.size == 0:
        return []
    if a.dtype.kind not in "iu":
        return None
    ids = [int(i) for i in a]
    if len(set(ids)) != len(ids) or not all(i in open_ids for i in ids):
        return None
    return ids


@SETTINGS
@given(data=st.data())
def test_pool_step(model, data):
    fx = PoolFixture(model)
    ids_raw, kind = data.draw(id_lists(fx))
    container = as_container(ids_raw, kind)
    n_rows = data.draw(st.sampled_from([len(ids_raw), len(ids_raw), len(ids_raw) + 1, max(len(ids_raw) - 1, 0)]))
    X = data.draw(frame_like(n_rows, model.input_size))
    before = fx.states()
    ids = valid_ids(container, set(fx.ids))
    want = clean(X, (len(ids) if ids is not None else -1, model.input_size), model.dtype)
    event("refused" if ids is None or want is None else "accepted")
    TRIED["pool.step " + ("refused" if ids is None or want is None else "accepted")] += 1
    if ids is None or want is None:
        with pytest.raises((ValueError, TypeError)) as e:
            fx.pool.step(container, X)
        assert_clear(e.value, "ids", "X")
        fx.assert_unchanged(before)
        return
    Y = fx.pool.step(container, X)
    assert Y.shape == (len(ids), model.output_size)
    for k, sid in enumerate(ids):  # each stream advanced exactly as a lone session would
        twin = twin_of(model, before[sid])
        np.testing.assert_array_equal(Y[k], twin.step(want[k]))
        np.testing.assert_array_equal(fx.pool.get_state(sid), twin.get_state())
    for sid in set(before) - set(ids):
        np.testing.assert_array_equal(fx.pool.get_state(sid), before[sid])


BAD_IDS = [7, -1, 10 ** 9, 1 << 70, 1.0, "0", None, True, np.float64(0.0), [0]]


@SETTINGS
@given(data=st.data())
def test_pool_lifecycle_with_bad_ids(model, data):
    fx = PoolFixture(model)
    verb = data.draw(st.sampled_from(["reset", "close", "get_state", "set_state"]))
    sid = data.draw(st.sampled_from(BAD_IDS + [fx.closed]))
    before = fx.states()
    TRIED[f"pool.{verb} refused"] += 1
    args = (sid, np.zeros(model.state_size, model.dtype)) if verb == "set_state" else (sid,)
    with pytest.raises((ValueError, TypeError)) as e:
        getattr(fx.pool, verb)(*args)
    assert f"SessionPool.{verb}" in str(e.value)
    fx.assert_unchanged(before)
    assert sorted(fx.pool.ids()) == sorted(fx.ids)
