"""Damaged cache files are a cache miss: each way of damaging the entry point's index or data
file, and the next process recompiles it, gives the right result, and rewrites the entry so the
process after that loads it silently. (Unchecked, a garbled ``.nbc`` ran as machine code:
SIGILL; a truncated or empty one raised from ``session()`` in every later process.)"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import streamlstm as sl
from streamlstm.kernels.engine import advance
from streamlstm.kernels.kindset import entry_for
from streamlstm.tools.zoo import zoo_network
from support.compile_cache import COMPILE_NOTICE, RUN, env_with_cache, python, warm_cache


def _garble(p: Path) -> None:
    raw = bytearray(p.read_bytes())
    mid = len(raw) // 2
    raw[mid:mid + 64] = bytes(b ^ 0xFF for b in raw[mid:mid + 64])
    p.write_bytes(bytes(raw))


def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _empty(p: Path) -> None:
    p.write_bytes(b"")


def _garbage(p: Path) -> None:
    p.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())


DAMAGE = {
    "garbled nbc": ("nbc", _garble),
    "truncated nbc": ("nbc", _truncate),
    "empty nbc": ("nbc", _empty),
    "garbage nbc": ("nbc", _garbage),
    "truncated nbi": ("nbi", _truncate),
    "garbage nbi": ("nbi", _garbage),
    "empty nbi": ("nbi", _empty),
}


@pytest.mark.parametrize("how", list(DAMAGE))
def test_a_damaged_entry_is_recompiled_and_rewritten(how: str, tmp_path_factory, tmp_path: Path):
    cache = tmp_path / "cache"
    shutil.copytree(warm_cache(tmp_path_factory), cache)
    net = zoo_network("kws")
    entry = entry_for(advance, sl.Model(net).plan.kinds)  # Model.run's entry point for this model
    index_name = Path(entry._cache._cache_file._index_path).name
    kind, damage = DAMAGE[how]
    files = [p for p in cache.rglob("*." + kind)
             if p.name == index_name or (kind == "nbc" and p.name.startswith(index_name[:-len(".nbi")] + "."))]
    assert files, f"no {kind} file of {index_name} in the warm cache"
    for p in files:
        damage(p)
    sl.Model(net).save(tmp_path / "m.npz")
    X = np.random.default_rng(5).standard_normal((30, net.input_size)).astype(np.float32)
    np.save(tmp_path / "X.npy", X)
    expect = sl.Model(net).run(X)
    env = env_with_cache(cache)
    first = python(RUN, tmp_path / "m.npz", tmp_path / "X.npy", tmp_path / "Y1.npy", env=env)
    assert COMPILE_NOTICE in first.stderr, first.stderr  # the damaged entry was not used
    assert np.array_equal(np.load(tmp_path / "Y1.npy"), expect)
    second = python(RUN, tmp_path / "m.npz", tmp_path / "X.npy", tmp_path / "Y2.npy", env=env)
    assert COMPILE_NOTICE not in second.stderr and "damaged" not in second.stderr, second.stderr
    assert np.array_equal(np.load(tmp_path / "Y2.npy"), expect)
