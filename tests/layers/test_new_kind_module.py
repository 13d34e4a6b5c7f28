"""A layer kind with new maths, added as two new files of a copy of the package and nothing else.

The walkthrough in docs/ARCHITECTURE.md ("Adding a layer kind"): ``kernels/kinds/shift.py``
declares a row kind and its Numba function, ``layers/shift.py`` the unit that packs it. No
other file of the copy is edited: the interpreter's dispatch and the registry of units find
the new modules. A fresh process on the copy runs the kind in a network, one step at a time
and as a chunk, against the float64 reference.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import streamlstm as sl
from support.compile_cache import copy_package
from support.reference import reference_run
from support.unit_checks import uniform

KERNEL = '''"""Shift rows: dst = a * src + b per column (a kind added by a test)."""

from numba import njit

from . import RowKind
from ..config import JIT
from ..layout import C_COL, C_OUT, FIRST_KIND_FIELD

K_SHIFT = 41
SHIFT_A = FIRST_KIND_FIELD      # W_: a (width)
SHIFT_B = FIRST_KIND_FIELD + 1  # W_: b (width)


@njit(**JIT)
def shift_rows(w, row, src, dst):
    n, col, a, b = row[C_OUT], row[C_COL], row[SHIFT_A], row[SHIFT_B]
    for t in range(src.shape[0]):
        x = src[t]
        o = dst[t, col:col + n]
        for j in range(n):
            o[j] = w[a + j] * x[j] + w[b + j]


ROW_KINDS = (RowKind(K_SHIFT, "Shift", shift_rows, args=("w", "row", "src", "dst")),)
'''

UNIT = '''"""The Shift unit: y = a * x + b per feature (a kind added by a test)."""

from dataclasses import dataclass

import numpy as np

from ..kernels.kinds.shift import K_SHIFT, SHIFT_A, SHIFT_B
from .base import Layer, check_shape, register


@register
@dataclass(frozen=True, eq=False)
class Shift(Layer):
    a: np.ndarray
    b: np.ndarray
    name: str = ""

    kind = "Shift"
    array_fields = ("a", "b")

    def __post_init__(self):
        self._freeze_arrays()
        check_shape(self, "b", self.b, self.a.shape)

    @property
    def input_size(self) -> int:
        return int(self.a.size)

    def pack(self, builder) -> None:
        n, dst = self.input_size, builder.next_sequence()
        r = builder.row(K_SHIFT, dst, n, col=0, out=n)
        r[SHIFT_A], r[SHIFT_B] = builder.add(self.a), builder.add(self.b)
        builder.advance(dst, n)
'''

PROBE = '''
import json, sys
import numpy as np
import streamlstm as sl
from streamlstm.layers.shift import Shift

spec = json.loads(sys.argv[1])
arr = lambda k: np.array(spec[k])
net = sl.Network([sl.LSTM(arr("W"), arr("R")), Shift(arr("a"), arr("b")), sl.Dense(arr("D"))])
model = sl.Model(net, "float64")
X = arr("X")
session = model.session()
print(json.dumps({"run": model.run(X).tolist(), "steps": [session.step(x).tolist() for x in X],
                  "summary": net.summary()}))
'''


def test_a_new_kind_is_two_new_files(tmp_path):
    package = copy_package(tmp_path / "copy") / "streamlstm"
    before = {p.relative_to(package): p.read_bytes() for p in package.rglob("*.py")}
    (package / "kernels" / "kinds" / "shift.py").write_text(KERNEL)
    (package / "layers" / "shift.py").write_text(UNIT)

    rng = np.random.default_rng(11)
    I, H, O = 3, 4, 2
    lstm_w, lstm_r = uniform(rng, 1, 4 * H, I, fan=H), uniform(rng, 1, 4 * H, H, fan=H)
    a, b, D = rng.uniform(0.5, 2.0, H), rng.normal(size=H), uniform(rng, O, H, fan=H)
    X = rng.normal(size=(5, I))
    spec = {"W": lstm_w, "R": lstm_r, "a": a, "b": b, "D": D, "X": X}
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "copy"), STREAMLSTM_QUIET="1",
               NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps({k: np.asarray(v).tolist() for k, v in spec.items()})],
                         env=env, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout)

    hidden, _ = reference_run(sl.Network([sl.LSTM(lstm_w, lstm_r)]), X)
    expected, _ = reference_run(sl.Network([sl.Dense(D)]), hidden * a + b)
    np.testing.assert_allclose(got["run"], expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(got["steps"], got["run"])
    assert "Shift" in got["summary"]
    after = {p.relative_to(package): p.read_bytes() for p in package.rglob("*.py")}
    assert set(after) - set(before) == {Path("kernels/kinds/shift.py"), Path("layers/shift.py")}
    assert all(after[p] == before[p] for p in before), "no file of the package was edited"
