"""Subprocess scenarios for the kernel compile cache: fresh processes, shared warm caches, and
interpreters that import streamlstm from a copy of the package instead of this install."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import llvmlite
import numba
import numpy
import onnx

import streamlstm

PACKAGE = Path(streamlstm.__file__).resolve().parent
# The source tree the tests belong to (streamlstm/ and converters/ side by side), whether the
# package under test is an editable install of it or a wheel built from it.
REPO = Path(__file__).resolve().parents[2]
COMPILE_NOTICE = "streamlstm: compiling"

# Steps a model through every entry point and saves the outputs: argv = model.npz, X.npy, out.npz
USE_ALL = r"""
import sys, numpy as np, streamlstm as sl
m = sl.load(sys.argv[1]); X = np.load(sys.argv[2]).astype(m.dtype)
out = {"run": m.run(X)}
for threads in (1, 2):
    s = m.session(threads=threads)
    out[f"step{threads}"] = np.array([s.step(x) for x in X]); s.close()
import streamlstm.pool; streamlstm.pool._MIN_SPLIT_PRODUCTS = 0  # split 64 streams of any model
pool = m.pool(64, threads=2); ids = [pool.open() for _ in range(64)]
out["pool"] = np.array([pool.step(ids, np.repeat(x[None], 64, 0))[-1] for x in X])
small = m.pool(2); ids = [small.open(), small.open()]
out["pool1"] = np.array([small.step(ids, np.stack([x, x]))[0] for x in X])
np.savez(sys.argv[3], **out)
"""

# Runs the model over X with Model.run and saves the output: argv = model.npz, X.npy, out.npy
RUN = r"""
import sys, numpy as np, streamlstm as sl
m = sl.load(sys.argv[1]); np.save(sys.argv[3], m.run(np.load(sys.argv[2]).astype(m.dtype)))
"""


def env_with_cache(cache_dir: Path | None, **extra: str) -> dict:
    """This environment with ``NUMBA_CACHE_DIR`` set to ``cache_dir`` (or removed when None)."""
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "STREAMLSTM_QUIET")}
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = str(cache_dir)
    env.update(extra)
    return env


def python(code: str, *args, env: dict, cwd: Path | None = None, preexec_fn=None,
           package_parent: Path | None = None, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run ``code`` in a new interpreter, by default in the temp folder (``-c`` puts the working
    folder first on the path, and the source tree's own ``streamlstm`` must not shadow the
    install under test). With ``package_parent``, streamlstm is imported from that folder
    (``-S`` skips site-packages, so this install's editable hook is not loaded; the folders
    holding the core dependencies are put on the path instead)."""
    cmd = [*prefix, sys.executable]
    if package_parent is not None:
        deps = {str(Path(m.__file__).resolve().parent.parent) for m in (numba, numpy, llvmlite, onnx)}
        env = dict(env, PYTHONPATH=os.pathsep.join([str(package_parent), *sorted(deps)]))
        cmd.append("-S")
    out = subprocess.run([*cmd, "-c", code, *map(str, args)], env=env, cwd=cwd or tempfile.gettempdir(), capture_output=True,
                         text=True, timeout=1800, preexec_fn=preexec_fn)
    assert out.returncode == 0, f"exit {out.returncode}\nstdout:\n{out.stdout}\nstderr:\n{out.stderr}"
    return out


def copy_package(dest: Path) -> Path:
    """A copy of the streamlstm package (sources only, with ``converters/`` laid in as
    ``streamlstm/converters`` as the wheel ships it) under ``dest``; returns ``dest``."""
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "streamlstm", dest / "streamlstm", ignore=skip)
    shutil.copytree(REPO / "converters", dest / "streamlstm" / "converters", ignore=skip)
    return dest


_warm: dict[str, Path] = {}


def warm_cache(tmp_path_factory) -> Path:
    """A NUMBA_CACHE_DIR filled by ``sl.compile()`` (float32) in a subprocess, built once per test
    session. Copy it before changing it."""
    if "float32" not in _warm:
        d = tmp_path_factory.mktemp("warm-numba-cache")
        python("import streamlstm as sl; sl.compile()", env=env_with_cache(d))
        _warm["float32"] = d
    return _warm["float32"]
