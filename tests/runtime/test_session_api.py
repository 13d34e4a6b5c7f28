"""Session/Model API contract: bad input leaves state untouched, no allocation, native format."""

import numpy as np
import pytest
from numba import njit
from numba.core.runtime import _nrt_python, rtsys

import streamlstm as sl
from streamlstm.kernels.engine import advance
from support.reference import reference_run

RNG = np.random.default_rng(7)


def _u(*shape, fan):
    return RNG.uniform(-1, 1, size=shape) / np.sqrt(fan)


def small_net(I=5, H=8, O=3) -> sl.Network:
    return sl.Network([
        sl.LSTM(_u(1, 4 * H, I, fan=I), _u(1, 4 * H, H, fan=H), Wb=_u(1, 4 * H, fan=H), Rb=_u(1, 4 * H, fan=H)),
        sl.GRU(_u(1, 3 * H, H, fan=H), _u(1, 3 * H, H, fan=H), Wb=_u(1, 3 * H, fan=H), Rb=_u(1, 3 * H, fan=H),
               linear_before_reset=True),
        sl.Dense(_u(O, H, fan=H), _u(O, fan=H)),
    ])


@pytest.fixture(scope="module", params=["float32", "float64"])
def model(request):
    return sl.Model(small_net(), dtype=request.param)


def warmed(model, steps=7):
    s = model.session()
    for x in RNG.normal(size=(steps, model.input_size)):
        s.step(x.astype(model.dtype))
    return s


BAD_FRAMES = [
    ("wrong length", lambda I, dt: np.zeros(I + 1, dt), ValueError, "x: expected 5 values"),
    ("too short", lambda I, dt: np.zeros(I - 1, dt), ValueError, "x: expected 5 values"),
    ("wrong rank", lambda I, dt: np.zeros((1, I), dt), ValueError, "1-D frame"),
    ("scalar", lambda I, dt: np.float32(1.0), ValueError, "1-D frame"),
    ("complex", lambda I, dt: np.zeros(I, np.complex64), TypeError, "cannot cast"),
    ("strings", lambda I, dt: np.array(["a"] * I), TypeError, "cannot cast"),
    ("object", lambda I, dt: object(), TypeError, "x"),
    ("nan", lambda I, dt: np.array([0, 1, np.nan, 0, 0], dt), ValueError, "NaN or Inf"),
    ("inf", lambda I, dt: np.array([0, 1, 0, -np.inf, 0], dt), ValueError, "NaN or Inf"),
]


@pytest.mark.parametrize("case", BAD_FRAMES, ids=[c[0] for c in BAD_FRAMES])
def test_bad_frame_is_refused_and_state_untouched(model, case):
    _, make, exc, message = case
    s = warmed(model)
    before = s.get_state()
    with pytest.raises(exc, match=message):
        s.step(make(model.input_size, model.dtype))
    np.testing.assert_array_equal(s.get_state(), before)
    # the stream continues exactly as a twin that never saw the bad frame
    twin = model.session()
    twin.set_state(before)
    x = RNG.normal(size=model.input_size).astype(model.dtype)
    np.testing.assert_array_equal(s.step(x), twin.step(x))


@pytest.mark.parametrize("bad", ["nan_middle", "wrong_width", "rank1", "rank3"])
def test_bad_chunk_is_refused_and_state_untouched(model, bad):
    s = warmed(model)
    before = s.get_state()
    X = RNG.normal(size=(20, model.input_size)).astype(model.dtype)
    if bad == "nan_middle":
        X[13, 2] = np.nan
        exc, msg = ValueError, "frame 13 contains NaN"
    elif bad == "wrong_width":
        X = X[:, :-1]
        exc, msg = ValueError, "5 values per frame"
    elif bad == "rank1":
        X = X[0]
        exc, msg = ValueError, "2-D sequence"
    else:
        X = X[None]
        exc, msg = ValueError, "2-D sequence"
    with pytest.raises(exc, match=msg):
        s.run(X)
    np.testing.assert_array_equal(s.get_state(), before)


@pytest.mark.parametrize("bad", ["short", "long", "nan", "complex", "2d"])
def test_bad_state_is_refused_and_state_untouched(model, bad):
    s = warmed(model)
    before = s.get_state()
    st = before.copy()
    if bad == "short":
        st = st[:-1]
    elif bad == "long":
        st = np.concatenate([st, [0.0]])
    elif bad == "nan":
        st[3] = np.nan
    elif bad == "complex":
        st = st.astype(np.complex128)
    else:
        st = st[None]
    with pytest.raises((ValueError, TypeError), match="state"):
        s.set_state(st)
    np.testing.assert_array_equal(s.get_state(), before)


def test_bad_out_buffer_is_refused(model):
    s = warmed(model)
    before = s.get_state()
    x = np.zeros(model.input_size, model.dtype)
    other = np.float64 if model.dtype == np.float32 else np.float32
    for out in (np.empty(model.output_size + 1, model.dtype), np.empty(model.output_size, other),
                np.empty((1, model.output_size), model.dtype), np.empty((model.output_size, 2), model.dtype)):
        with pytest.raises(ValueError, match="out"):
            s.step(x, out=out)
    np.testing.assert_array_equal(s.get_state(), before)


def test_inputs_are_cast_and_copied_when_needed(model):
    """Ints, other float widths, lists, non-contiguous and read-only frames are accepted."""
    a, b = model.session(), model.session()
    base = RNG.integers(-3, 4, size=(6, 2 * model.input_size))
    for row in base:
        x = row[::2]  # non-contiguous int64
        ro = x.astype(model.dtype)
        ro.flags.writeable = False
        expect = a.step(ro)
        np.testing.assert_array_equal(b.step(list(x)), expect)


def test_step_writes_into_out_and_returns_it(model):
    s = model.session()
    out = np.full(model.output_size, 7.0, model.dtype)
    y = s.step(np.ones(model.input_size, model.dtype), out=out)
    assert y is out
    assert not np.any(out == 7.0)


def test_learned_initial_state_and_reset():
    H, I = 6, 4
    net = sl.Network([sl.LSTM(_u(1, 4 * H, I, fan=I), _u(1, 4 * H, H, fan=H),
                              initial_h=RNG.normal(size=(1, H)), initial_c=RNG.normal(size=(1, H)))])
    m = sl.Model(net, dtype="float64")
    s = m.session()
    X = RNG.normal(size=(30, I))
    Y1 = np.array([s.step(x) for x in X])
    s.reset()
    Y2 = s.run(X)
    np.testing.assert_array_equal(Y1, Y2)
    ref, _ = reference_run(net, X)
    assert np.abs(Y1 - ref).max() < 1e-12
    np.testing.assert_array_equal(m.run(X), Y1)


def test_bidirectional_step_says_why():
    H, I = 4, 3
    net = sl.Network([sl.LSTM(_u(2, 4 * H, I, fan=I), _u(2, 4 * H, H, fan=H), direction="bidirectional")])
    m = sl.Model(net)
    assert not m.streamable
    s = m.session()
    with pytest.raises(ValueError, match="needs the future"):
        s.step(np.zeros(I, np.float32))
    with pytest.raises(ValueError, match="Model.run"):
        s.run(np.zeros((5, I), np.float32))
    assert m.run(np.zeros((5, I), np.float32)).shape == (5, 2 * H)


def test_empty_sequence(model):
    assert model.run(np.zeros((0, model.input_size))).shape == (0, model.output_size)


def test_native_npz_round_trip(tmp_path, model):
    path = tmp_path / "m.npz"
    model.save(path)
    back = sl.load(path, dtype=model.dtype.name)
    X = RNG.normal(size=(40, model.input_size))
    np.testing.assert_array_equal(back.run(X), model.run(X))
    # the file holds no pickled objects
    with np.load(path, allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)


@pytest.mark.parametrize("content", [b"", b"not a zip", b"PK\x03\x04garbage"])
def test_malformed_npz_is_a_clear_error(tmp_path, content):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    with pytest.raises(sl.NetworkError, match="bad.npz"):
        sl.load(path)


def test_network_validation_names_layer_and_field():
    with pytest.raises(sl.NetworkError, match=r"LSTM 'enc': R: shape"):
        sl.Network([sl.LSTM(np.zeros((1, 8, 3)), np.zeros((1, 8, 5)), name="enc")])
    with pytest.raises(sl.NetworkError, match=r"GRU: Wb: contains NaN"):
        sl.Network([sl.GRU(np.zeros((1, 6, 3)), np.zeros((1, 6, 2)), Wb=np.full((1, 6), np.nan))])
    with pytest.raises(sl.NetworkError, match=r"layer 1 \(Dense\): input size 3 does not match .* 2"):
        sl.Network([sl.RNN(np.zeros((1, 2, 3)), np.zeros((1, 2, 2))), sl.Dense(np.zeros((4, 3)))])
    with pytest.raises(sl.NetworkError, match="activations"):
        sl.Network([sl.RNN(np.zeros((1, 2, 3)), np.zeros((1, 2, 2)), activations=["Softmax"])])
    with pytest.raises(sl.NetworkError, match="direction"):
        sl.Network([sl.RNN(np.zeros((1, 2, 3)), np.zeros((1, 2, 2)), direction="sideways")])


@njit  # not cached: a cached caller of the kernels goes stale when they change (Numba tracks only its own file)
def _steps_in_native_loop(w, table, state, work, X, y):
    for t in range(X.shape[0]):
        advance(w, table, state, work, X[t], y)


def test_step_path_allocates_nothing(model):
    """The kernel allocates nothing; a Python call adds only Numba's per-argument adapters."""
    s = warmed(model)
    p = model.plan
    X = RNG.normal(size=(500, model.input_size)).astype(model.dtype)
    y = np.empty(model.output_size, model.dtype)
    state, work = s.get_state(), np.zeros(p.work_size(1), model.dtype)
    _steps_in_native_loop(p.weights, p.table, state, work, X[:2], y)  # compile before counting
    _nrt_python.memsys_enable_stats()
    try:
        before = rtsys.get_allocation_stats()
        _steps_in_native_loop(p.weights, p.table, state, work, X, y)
        after = rtsys.get_allocation_stats()
        # 6 argument adapters for the one call into the loop, nothing per step
        assert after.alloc - before.alloc == 6
        assert after.alloc - after.free == before.alloc - before.free

        out = np.empty(model.output_size, model.dtype)
        s.step(X[0], out=out)
        before = rtsys.get_allocation_stats()
        for x in X:
            s.step(x, out=out)
        after = rtsys.get_allocation_stats()
        # per call: exactly one adapter per array argument, x and out (the session's weights,
        # table, state and work reach the kernel by address)
        assert after.alloc - before.alloc == 2 * len(X)
        assert after.alloc - after.free == before.alloc - before.free
    finally:
        _nrt_python.memsys_disable_stats()


def test_stepper_writes_into_its_buffer_and_checks_frames(model):
    s, ref = model.session(), model.session()
    out = np.empty(model.output_size, model.dtype)
    f = s.stepper(out)
    X = RNG.normal(size=(5, model.input_size)).astype(model.dtype)
    for x in X:
        assert f(x) is out
        assert np.array_equal(out, ref.step(x))
    before = s.get_state()
    with pytest.raises(ValueError, match="x: expected"):
        f(X[0][:-1])
    bad = X[0].copy()
    bad[0] = np.inf
    with pytest.raises(ValueError, match="NaN or Inf"):
        f(bad)
    assert np.array_equal(s.get_state(), before)
    assert np.array_equal(f(X[0].astype(np.float16)), ref.step(X[0].astype(np.float16)))  # cast


def test_stepper_validates_out_once(model):
    s = model.session()
    with pytest.raises(ValueError, match="out: expected a writeable"):
        s.stepper(np.empty(model.output_size + 1, model.dtype))
    ro = np.empty(model.output_size, model.dtype)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        s.stepper(ro)
    assert s.stepper()(np.zeros(model.input_size, model.dtype)).shape == (model.output_size,)
