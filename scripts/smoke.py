"""Smoke test of an installed streamlstm, run from outside the source tree (CI's wheel job and
scripts/compat.sh): import, every shipped subpackage, a zoo model stepped and compared with
``Model.run``, and the ``streamlstm`` command (``info``, ``python -m streamlstm``).

    python scripts/smoke.py        # exit code 0 when everything works
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def main() -> int:
    import streamlstm as sl
    from streamlstm.tools.zoo import zoo_network

    here = Path(sl.__file__).resolve().parent
    source = Path(__file__).resolve().parents[1] / "streamlstm"
    if here == source:
        print(f"smoke: imported the source tree ({here}), not an installed package", file=sys.stderr)
        return 1
    names = [m.name for m in pkgutil.walk_packages(sl.__path__, "streamlstm.") if m.ispkg]
    for name in ("streamlstm.kernels", "streamlstm.tools", "streamlstm.converters"):
        if name not in names:
            print(f"smoke: {name} is missing from the installed package", file=sys.stderr)
            return 1
    for name in names:
        importlib.import_module(name)
    if not (here / "py.typed").is_file():
        print("smoke: py.typed is missing", file=sys.stderr)
        return 1
    model = sl.Model(zoo_network("tiny"))
    X = np.random.default_rng(0).standard_normal((20, model.input_size)).astype(np.float32)
    s = model.session()
    stepped = np.stack([s.step(x) for x in X])
    if not np.allclose(stepped, model.run(X), atol=1e-5):
        print("smoke: steps and Model.run disagree", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "tiny.npz")
        model.save(path)
        for cmd in (["streamlstm", "info", path], [sys.executable, "-m", "streamlstm", "info", "--json", path]):
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=d)
            if out.returncode != 0 or "16" not in out.stdout:
                print(f"smoke: {' '.join(cmd)} failed:\n{out.stdout}{out.stderr}", file=sys.stderr)
                return 1
    print(f"smoke: streamlstm {sl.__version__} from {here}: {len(names)} packages, step, run, info ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
