"""Sessions with a helper thread (threads=2): bit-identical to one thread, safe to stop."""

import gc
import threading
import time

import numpy as np
import pytest

import streamlstm as sl
from streamlstm import helper
from streamlstm.kernels.split import MB_DONE, MB_PARKED, PARKS_IN_KERNEL
from support.pool_nets import wide_stack
from support.reference import reference_run

RNG = np.random.default_rng(5)
NET = wide_stack()  # every product is shared with the helper


def helper_threads() -> int:
    return sum(t.name == "streamlstm-helper" for t in threading.enumerate())


@pytest.mark.parametrize("dtype,weights", [("float32", "float"), ("float64", "float"),
                                           ("float32", "bf16"), ("float32", "int8"), ("float32", "int8dot")])
def test_two_threads_equal_one_thread_bit_for_bit(dtype, weights):
    model = sl.Model(NET, dtype, weights=weights)
    one, two = model.session(), model.session(threads=2)
    assert two.threads == 2
    X = RNG.standard_normal((60, model.input_size)).astype(dtype)
    a = np.array([one.step(x).copy() for x in X])
    step_into = two.stepper()
    b = np.array([two.step(x).copy() if t % 2 else step_into(x).copy() for t, x in enumerate(X)])
    assert np.array_equal(a, b)
    assert np.array_equal(one.get_state(), two.get_state())
    if weights == "float":
        expect, _ = reference_run(NET, X.astype(np.float64))
        assert np.abs(b - expect).max() < (2e-4 if dtype == "float32" else 1e-10)
    two.close()


@pytest.mark.parametrize("dtype,weights", [("float32", "float"), ("float64", "float"),
                                           ("float32", "bf16"), ("float32", "int8")])
def test_two_thread_chunks_equal_one_thread_and_steps_bit_for_bit(dtype, weights):
    """Session.run on threads=2 shares the chunk's input projections and recurrent products."""
    model = sl.Model(NET, dtype, weights=weights)
    one, two, stepped = model.session(), model.session(threads=2), model.session()
    X = RNG.standard_normal((37, model.input_size)).astype(dtype)
    a = np.concatenate([one.run(X[:20]), one.run(X[20:])])
    b = np.concatenate([two.run(X[:20]), two.run(X[20:])])
    c = np.array([stepped.step(x).copy() for x in X])
    assert np.array_equal(a, b) and np.array_equal(a, c)
    assert np.array_equal(one.get_state(), two.get_state())
    bad = X[:5].copy()
    bad[3, 0] = np.nan
    before = two.get_state()
    with pytest.raises(ValueError, match="frame 3"):
        two.run(bad)
    assert np.array_equal(two.get_state(), before)
    two.close()
    assert np.array_equal(two.run(X[:4]), one.run(X[:4]))  # a closed helper: one thread


def test_bad_frame_leaves_state_and_helper_intact():
    model = sl.Model(NET)
    two = model.session(threads=2)
    x = RNG.standard_normal(model.input_size).astype(np.float32)
    two.step(x)
    before = two.get_state()
    bad = x.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        two.step(bad)
    with pytest.raises(ValueError, match="x: expected 64 values"):
        two.step(x[:10])
    assert np.array_equal(two.get_state(), before)
    ref = model.session()
    ref.set_state(before)
    assert np.array_equal(two.step(x), ref.step(x))
    two.close()


def test_sleeping_helper_costs_nothing_but_speed(monkeypatch):
    """With a tiny idle timeout the helper sleeps between steps; the stepping thread then
    claims its jobs, and the next step wakes it. Results stay bit-identical."""
    monkeypatch.setattr(helper, "IDLE_CYCLES", 1000)
    model = sl.Model(NET)
    one, two = model.session(), model.session(threads=2)
    X = RNG.standard_normal((40, model.input_size)).astype(np.float32)
    for t, x in enumerate(X):
        assert np.array_equal(one.step(x), two.step(x))
        if t % 10 == 0:
            threading.Event().wait(0.01)  # let the helper go to sleep
    two.close()


def _parked(s) -> bool:
    """Whether the helper of session ``s`` went to sleep (in the kernel, or on its Event)."""
    return bool(s._helper.mailbox[MB_PARKED]) if PARKS_IN_KERNEL else s._helper.parked[0]


def _wait_until(predicate, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def test_parked_helper_wakes_on_the_next_step_and_serves_again():
    """After the idle timeout the helper parks; steps go on alone, the next one wakes it, and it
    computes shared halves again (DONE advances). Outputs stay bit-identical throughout."""
    model = sl.Model(NET)
    one, two = model.session(), model.session(threads=2)
    x = RNG.standard_normal(model.input_size).astype(np.float32)
    assert np.array_equal(one.step(x), two.step(x))
    assert _wait_until(lambda: _parked(two))
    mb = two._helper.mailbox
    done = int(mb[MB_DONE])
    X = RNG.standard_normal((200, model.input_size)).astype(np.float32)
    served = False
    for _ in range(50):
        for x in X:
            assert np.array_equal(one.step(x), two.step(x))
        if int(mb[MB_DONE]) > done:
            served = True
            break
    assert served and not _parked(two)
    two.close()


def test_close_stops_a_parked_helper():
    model = sl.Model(NET)
    base = helper_threads()
    s = model.session(threads=2)
    s.step(RNG.standard_normal(model.input_size).astype(np.float32))
    assert _wait_until(lambda: _parked(s))
    closer = threading.Thread(target=s.close, daemon=True)
    closer.start()
    closer.join(timeout=20)
    assert not closer.is_alive() and helper_threads() == base and s.threads == 1


def test_close_and_garbage_collection_stop_the_helper():
    model = sl.Model(NET)
    base = helper_threads()
    s = model.session(threads=2)
    assert helper_threads() == base + 1
    x = RNG.standard_normal(model.input_size).astype(np.float32)
    y = s.step(x).copy()
    s.close()
    assert helper_threads() == base and s.threads == 1
    s.close()  # idempotent
    s.reset()
    assert np.array_equal(s.step(x), y)  # steps go on, on one thread

    s2 = model.session(threads=2)
    assert helper_threads() == base + 1
    del s2
    gc.collect()
    assert helper_threads() == base


def test_step_function_outlives_its_session():
    model = sl.Model(NET)
    s = model.session(threads=2)
    step = s.step
    x = RNG.standard_normal(model.input_size).astype(np.float32)
    ref = model.session()
    del s
    gc.collect()
    for _ in range(3):
        assert np.array_equal(step(x), ref.step(x))


def test_threads_argument_is_checked():
    with pytest.raises(ValueError, match="threads: expected 1 or 2"):
        sl.Model(NET).session(threads=3)


def test_concurrent_two_thread_sessions_on_an_oversubscribed_machine():
    """Three 2-thread sessions stepped by three Python threads at once (6 busy threads on
    however many cores): every stream still matches its one-thread replay exactly."""
    model = sl.Model(NET)
    X = RNG.standard_normal((3, 25, model.input_size)).astype(np.float32)
    outs = [None] * 3
    sessions = [model.session(threads=2) for _ in range(3)]

    def run(i):
        f = sessions[i].stepper()
        outs[i] = np.array([f(x).copy() for x in X[i]])

    workers = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for i in range(3):
        ref = model.session()
        assert np.array_equal(outs[i], np.array([ref.step(x).copy() for x in X[i]]))
        sessions[i].close()


def test_one_session_stepped_by_two_threads_cannot_hang():
    """Misuse (a Session is one stream, not thread-safe): two threads stepping the same
    two-thread session race on its state, but the mailbox's owner flag keeps them from
    interleaving jobs, so both finish."""
    model = sl.Model(NET)
    s = model.session(threads=2)
    x = RNG.standard_normal(model.input_size).astype(np.float32)

    def hammer():
        for _ in range(200):
            s.step(x)

    workers = [threading.Thread(target=hammer, daemon=True) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    assert not any(w.is_alive() for w in workers)
    s.close()
