"""One cache directory shared by processes that save different signatures of the same function
at once (pool workers, Ray shards on one node, two models of different weight formats): every
signature that loads gets its own code. Numba numbered a function's data files in order and
wrote the index before the data, so two processes could take the same number and the index
could then send one signature to the other's code; the kernels of two weight formats take the
same arguments, so that code ran and gave wrong numbers."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from streamlstm.kernels.cache import STAMP, _CheckedCacheFile

BASE = "kernel-1.py311"
SAVER = r"""
import sys, time
from streamlstm.kernels.cache import STAMP, _CheckedCacheFile
cache_dir, base, who, go = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
f = _CheckedCacheFile(cache_dir, base, STAMP)
while time.time() < go:
    pass
for i in range(150):
    f.save((who, i), f"code of {who} {i}")
"""


def test_an_index_entry_pointing_at_another_signatures_code_is_a_miss(tmp_path: Path):
    """What a lost race used to leave: the index sends signature a to b's data file. The data
    file holds its own key, so a is a miss (recompiled, then saved again), never b's code."""
    f = _CheckedCacheFile(str(tmp_path), BASE, STAMP)
    f.save(("a",), "code of a")
    f.save(("b",), "code of b")
    assert f.load(("a",)) == "code of a" and f.load(("b",)) == "code of b"
    index = f._load_index()
    index[("a",)] = index[("b",)]
    f._save_index(index)
    assert f.load(("a",)) is None and f.load(("b",)) == "code of b"
    f.save(("a",), "code of a")
    assert f.load(("a",)) == "code of a" and f.load(("b",)) == "code of b"


def test_processes_saving_different_signatures_at_once_keep_each_its_own_code(tmp_path: Path):
    go = time.time() + 2.0  # both start saving at the same moment, after their imports
    procs = [subprocess.Popen([sys.executable, "-c", SAVER, str(tmp_path), BASE, who, str(go)],
                              stderr=subprocess.PIPE, text=True) for who in ("p", "q")]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()
    f = _CheckedCacheFile(str(tmp_path), BASE, STAMP)
    for who in ("p", "q"):
        for i in range(150):
            assert f.load((who, i)) == f"code of {who} {i}", (who, i)
