"""The cache is keyed on all kernel sources wherever it lives: with ``NUMBA_CACHE_DIR`` set,
editing a callee's file (as a ``git pull`` does) makes the next process compile and run the new
code, although the entry point's own file did not change (Numba alone would load the entry
point with the old code inlined). Going back to the old sources finds the old entries again."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

import streamlstm as sl
from streamlstm.tools.zoo import zoo_network
from support.compile_cache import COMPILE_NOTICE, RUN, copy_package, env_with_cache, python, warm_cache


def test_editing_a_callee_file_recompiles_the_entry_point(tmp_path_factory, tmp_path: Path):
    cache = tmp_path / "cache"
    shutil.copytree(warm_cache(tmp_path_factory), cache)
    root = copy_package(tmp_path / "src")
    net = zoo_network("kws")
    sl.Model(net).save(tmp_path / "m.npz")
    X = np.random.default_rng(8).standard_normal((25, net.input_size)).astype(np.float32) * 4
    np.save(tmp_path / "X.npy", X)
    env = env_with_cache(cache)

    def run(tag: str):
        out = python(RUN, tmp_path / "m.npz", tmp_path / "X.npy", tmp_path / f"{tag}.npy", env=env,
                     package_parent=root, cwd=tmp_path)
        return np.load(tmp_path / f"{tag}.npy"), COMPILE_NOTICE in out.stderr

    before, compiled = run("before")
    assert not compiled  # the copy has the same sources: the warm cache serves it
    assert np.array_equal(before, sl.Model(net).run(X))

    callee = root / "streamlstm" / "kernels" / "activations.py"
    original = callee.read_text()
    assert "\n_CLAMP = " in original and "def tanh_fast" in original, "the edit below needs tanh_fast's _CLAMP"
    callee.write_text(original + "\n_CLAMP = np.float32(0.5)  # tanh_fast saturates early: another result\n")
    after, compiled = run("after")
    assert compiled
    assert not np.allclose(after, before, atol=1e-3)  # the new code runs, inlined into the entry point
    again, compiled = run("again")
    assert not compiled and np.array_equal(again, after)

    callee.write_text(original)
    back, compiled = run("back")
    assert not compiled and np.array_equal(back, before)
