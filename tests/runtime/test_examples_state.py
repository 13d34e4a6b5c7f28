"""The process examples run as shipped, and their outputs equal one uninterrupted stream."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

import streamlstm as sl
from support.pool_nets import gru_rnn

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run(*args: str) -> None:
    subprocess.run([sys.executable, *args], check=True, timeout=900, capture_output=True)


def test_worker_pool_matches_in_process_sessions(tmp_path):
    model_path = tmp_path / "m.npz"
    sl.Model(gru_rnn()).save(model_path)
    _run(str(EXAMPLES / "worker_pool.py"), str(model_path), "--streams", "5", "--frames", "23",
         "--workers", "2", "--out", str(tmp_path / "y.npz"))
    got = np.load(tmp_path / "y.npz")
    model = sl.load(model_path)
    for X, Y in zip(got["frames"], got["outputs"]):
        np.testing.assert_array_equal(Y, model.session().run(X))


def test_moved_stream_matches_an_uninterrupted_one(tmp_path):
    model_path = tmp_path / "m.npz"
    sl.Model(gru_rnn()).save(model_path)
    _run(str(EXAMPLES / "move_stream.py"), str(model_path), "--frames", "31", "--out", str(tmp_path / "y.npz"))
    got = np.load(tmp_path / "y.npz")
    np.testing.assert_array_equal(got["outputs"], sl.load(model_path).session().run(got["frames"]))
