"""One Model shared by many threads: results equal a serial run, and the kernels release the GIL."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import streamlstm as sl
from support.pool_nets import frames, gru_rnn, lstm_stack
from streamlstm.kernels import engine, streams as pool_kernels

THREADS = 4
STEPS = 500


@pytest.fixture(scope="module", params=["lstm_stack", "gru_rnn"])
def model(request) -> sl.Model:
    return sl.Model({"lstm_stack": lstm_stack, "gru_rnn": gru_rnn}[request.param]())


def _run_concurrently(fns):
    barrier = threading.Barrier(len(fns))
    errors = []

    def wrap(fn):
        def go():
            try:
                barrier.wait()
                fn()
            except BaseException as e:  # surfaced in the main thread below
                errors.append(e)
        return go

    threads = [threading.Thread(target=wrap(fn)) for fn in fns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def test_threads_stepping_own_sessions_match_serial(model):
    rng = np.random.default_rng(0)
    inputs = [frames(rng, model, STEPS) for _ in range(THREADS)]
    serial = []
    for X in inputs:
        s = model.session()
        serial.append(np.stack([s.step(x) for x in X]))
    results = [None] * THREADS

    def worker(k):
        def go():
            s = model.session()  # the shared Model hands out sessions concurrently
            results[k] = np.stack([s.step(x) for x in inputs[k]])
        return go

    _run_concurrently([worker(k) for k in range(THREADS)])
    for k in range(THREADS):
        assert np.array_equal(results[k], serial[k])


def test_threads_stepping_own_pools_and_runs_match_serial(model):
    rng = np.random.default_rng(1)
    inputs = [frames(rng, model, 60 * 6).reshape(60, 6, -1) for _ in range(THREADS)]
    serial_pool, serial_run = [], []
    for X in inputs:
        p = model.pool(6)
        ids = [p.open() for _ in range(6)]
        serial_pool.append(np.stack([p.step(ids, x) for x in X]))
        serial_run.append(model.run(X[:, 0]))
    got_pool, got_run = [None] * THREADS, [None] * THREADS

    def worker(k):
        def go():
            p = model.pool(6)
            ids = [p.open() for _ in range(6)]
            got_pool[k] = np.stack([p.step(ids, x) for x in inputs[k]])
            got_run[k] = model.run(inputs[k][:, 0])
        return go

    _run_concurrently([worker(k) for k in range(THREADS)])
    for k in range(THREADS):
        assert np.array_equal(got_pool[k], serial_pool[k])
        assert np.array_equal(got_run[k], serial_run[k])


def test_threads_sharing_one_pool_match_serial():
    """A pool's methods lock: threads stepping disjoint streams of one pool stay exact."""
    model = sl.Model(lstm_stack())
    rng = np.random.default_rng(2)
    per = 5
    inputs = [frames(rng, model, 200 * per).reshape(200, per, -1) for _ in range(THREADS)]
    shared = model.pool(THREADS * per)
    groups = [[shared.open() for _ in range(per)] for _ in range(THREADS)]
    got = [None] * THREADS

    def worker(k):
        def go():
            got[k] = np.stack([shared.step(groups[k], x) for x in inputs[k]])
        return go

    _run_concurrently([worker(k) for k in range(THREADS)])
    for k in range(THREADS):
        p = model.pool(per)
        ids = [p.open() for _ in range(per)]
        assert np.array_equal(got[k], np.stack([p.step(ids, x) for x in inputs[k]]))


def test_kernels_are_compiled_nogil():
    for fn in (engine.advance, pool_kernels.pool_advance, pool_kernels.pool_compute, pool_kernels.pool_validate):
        assert fn.targetoptions.get("nogil") is True, fn


def test_native_calls_release_the_gil():
    """While one thread is inside a long native call, the main thread keeps running Python.

    Holding the GIL, the worker would stall the main loop for the whole call; released, the
    longest pause between two main-loop iterations stays far below the call's duration.
    """
    rng = np.random.default_rng(3)
    H = 512
    model = sl.Model(sl.Network([sl.LSTM(W=rng.normal(size=(1, 4 * H, 16)) * 0.1,
                                         R=rng.normal(size=(1, 4 * H, H)) * 0.02)]))
    X = rng.normal(size=(400, 16)).astype(np.float32)
    s = model.session()
    s.run(X[:2])  # compile outside the measured window
    go, done = threading.Event(), threading.Event()
    duration = []

    def long_call():
        go.wait()
        t0 = time.perf_counter()
        s.run(X)
        duration.append(time.perf_counter() - t0)
        done.set()

    t = threading.Thread(target=long_call)
    t.start()
    last = time.perf_counter()
    longest = 0.0
    go.set()  # the main loop is already running when the worker starts its call
    while not done.is_set():
        now = time.perf_counter()
        longest = max(longest, now - last)
        last = now
    t.join()
    assert duration[0] > 0.02, "the native call was too short to tell"
    assert longest < duration[0] / 2, (longest, duration[0])
