"""``NUMBA_DISABLE_JIT=1`` (a user debugging their own code) keeps streamlstm working: its kernels
use Numba intrinsics and cannot run as Python, so they stay compiled, with one warning saying so,
while the user's own ``@njit`` functions run as Python. (It used to fail in ``session()`` with
``'function' object has no attribute 'compile'``.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import streamlstm as sl
from streamlstm.tools.zoo import zoo_network
from support.compile_cache import USE_ALL, env_with_cache, python, warm_cache

USER_CODE = "from numba import njit\n@njit\ndef mine(x):\n    return x\nassert not hasattr(mine, 'py_func')\n"


def test_every_entry_point_works_under_numba_disable_jit(tmp_path_factory, tmp_path: Path):
    net = zoo_network("kws")
    sl.Model(net).save(tmp_path / "m.npz")
    X = np.random.default_rng(9).standard_normal((8, net.input_size)).astype(np.float32)
    np.save(tmp_path / "X.npy", X)
    env = env_with_cache(warm_cache(tmp_path_factory), NUMBA_DISABLE_JIT="1")
    out = python(USER_CODE + USE_ALL, tmp_path / "m.npz", tmp_path / "X.npy", tmp_path / "Y.npz", env=env)
    assert out.stderr.count("CacheWarning") == 1 and "NUMBA_DISABLE_JIT=1" in out.stderr, out.stderr
    expect = sl.Model(net).run(X)
    got = np.load(tmp_path / "Y.npz")
    for name in ("run", "step1", "step2", "pool", "pool1"):
        np.testing.assert_allclose(got[name], expect, rtol=0, atol=1e-6, err_msg=name)
