"""Embedding: a session's step called from user @njit code equals Session.step exactly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numba import njit

import streamlstm as sl
from support.pool_nets import bidirectional, frames, models

MODELS = models()
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "audio_callback.py"


@njit(nogil=True)
def embedded_loop(step, weights, table, state, work, X, Y):
    """The user's own compiled loop: one step per frame; returns 0 or the first error code."""
    for t in range(X.shape[0]):
        rc = step(weights, table, state, work, X[t], Y[t])
        if rc != 0:
            return rc
    return 0


@pytest.mark.parametrize("name", sorted(MODELS))
def test_embedded_loop_equals_session_step(name):
    model = MODELS[name]
    X = frames(np.random.default_rng(0), model, 500)
    ref_session = model.session()
    ref = np.stack([ref_session.step(x) for x in X])

    k = model.kernel()
    s = model.session()
    state, work = s.buffers()
    assert work.size >= k.work_size(1)
    Y = np.empty((500, model.output_size), model.dtype)
    assert embedded_loop(k.step, k.weights, k.table, state, work, X, Y) == 0
    assert np.array_equal(Y, ref)
    assert np.array_equal(s.get_state(), ref_session.get_state())  # buffers() are the live state
    # the session continues from where the embedded loop left it
    x = X[0]
    assert np.array_equal(s.step(x), ref_session.step(x))


def test_embedded_bad_frame_leaves_state():
    model = MODELS["lstm_stack"]
    k = model.kernel()
    s = model.session()
    state, work = s.buffers()
    X = frames(np.random.default_rng(1), model, 4)
    Y = np.empty((4, model.output_size), model.dtype)
    embedded_loop(k.step, k.weights, k.table, state, work, X[:2], Y[:2])
    before = s.get_state()
    X[2, 1] = np.inf
    assert embedded_loop(k.step, k.weights, k.table, state, work, X[2:], Y[2:]) == -1
    assert np.array_equal(s.get_state(), before)


def test_kernel_refuses_non_streamable():
    with pytest.raises(ValueError, match="bidirectional"):
        sl.Model(bidirectional()).kernel()


def test_example_runs_as_script():
    out = subprocess.run([sys.executable, str(EXAMPLE), "--blocks", "200"], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert "max abs diff vs Session.step: 0.0" in out.stdout
    assert "state equal to Session's: True" in out.stdout
