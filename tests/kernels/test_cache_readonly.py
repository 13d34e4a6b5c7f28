"""A regular (non-editable) install in a read-only folder, run without privileges and without a
HOME: importing and stepping work, with exactly one warning saying where the cache went (a
private temp folder) or that there is none. (It used to crash at import: ``cannot cache
function 'tanh_fast': no locator available``.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import streamlstm as sl
from streamlstm.tools.zoo import zoo_network
from support.compile_cache import COMPILE_NOTICE, REPO, env_with_cache, python

STEP = r"""
import sys, numpy as np, streamlstm as sl
m = sl.load(sys.argv[1]); s = m.session()
np.save(sys.argv[3], np.array([s.step(x) for x in np.load(sys.argv[2])]))
"""


def _unprivileged() -> tuple[str, ...]:
    """A command prefix that runs without capabilities: as root, permission bits then bind us
    too (a read-only folder is read-only), as they bind an ordinary user."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to drop root's capabilities"
    return (setpriv, "--bounding-set=-all", "--inh-caps=-all", "--no-new-privs")


def _read_only(path: Path) -> None:
    for p in sorted(path.rglob("*"), reverse=True) + [path]:
        p.chmod(0o555 if p.is_dir() else 0o444)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """streamlstm installed (not editable) by pip into a folder then made read-only."""
    tmp = tmp_path_factory.mktemp("ro-install")
    src = tmp / "src"
    src.mkdir()
    repo = REPO
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (repo / name).exists():
            shutil.copy(repo / name, src / name)
    for name in ("streamlstm", "converters"):
        shutil.copytree(repo / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    site = tmp / "site"
    out = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
                          str(src)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert (site / "streamlstm" / "kernels" / "cache.py").is_file() and not any(site.rglob("*.nbi"))
    _read_only(site)
    return site


def _scenario(tmp_path: Path, installed: Path, *, temp_writable: bool):
    net = zoo_network("tiny")
    data = tmp_path / "data"
    data.mkdir()
    sl.Model(net).save(data / "m.npz")
    X = np.random.default_rng(4).standard_normal((10, net.input_size)).astype(np.float32)
    np.save(data / "X.npy", X)
    s = sl.Model(net).session()
    expect = np.array([s.step(x) for x in X])
    temp = tmp_path / "tmp"
    temp.mkdir()
    if not temp_writable:
        temp.chmod(0o555)
    env = env_with_cache(None, HOME=str(tmp_path / "no-such-home"), TMPDIR=str(temp))
    env.pop("XDG_CACHE_HOME", None)

    # tempfile falls back to /tmp when TMPDIR is read-only; fix its choice to see a read-only one
    code = f"import tempfile; tempfile.tempdir = {str(temp)!r}\n" + STEP

    def step(tag: str):
        out = python(code, data / "m.npz", data / "X.npy", data / f"{tag}.npy", env=env, cwd=data,
                     package_parent=installed, prefix=_unprivileged())
        assert np.array_equal(np.load(data / f"{tag}.npy"), expect)
        return out.stderr

    return step, temp


def test_a_read_only_install_without_home_caches_in_a_private_temp_folder(tmp_path: Path, installed: Path):
    step, temp = _scenario(tmp_path, installed, temp_writable=True)
    err = step("first")
    assert err.count("CacheWarning") == 1, err
    assert "not writable" in err and "HOME does not exist" in err and str(temp) in err
    private = temp / f"streamlstm-{os.getuid()}"
    assert private.stat().st_mode & 0o777 == 0o700 and any(private.rglob("*.nbi"))
    err = step("second")  # the next process finds what the first compiled
    assert err.count("CacheWarning") == 1 and COMPILE_NOTICE not in err, err


def test_with_nowhere_writable_it_runs_without_a_cache(tmp_path: Path, installed: Path):
    step, temp = _scenario(tmp_path, installed, temp_writable=False)
    err = step("first")
    assert err.count("CacheWarning") == 1, err
    assert "compiled kernels are not cached" in err and COMPILE_NOTICE in err


def test_a_planted_temp_folder_of_another_user_is_not_used(tmp_path: Path):
    """The temp fallback refuses a folder it did not make private (someone could plant entries)."""
    from streamlstm.kernels.cache import _private_dir

    planted = tmp_path / "streamlstm-x"
    planted.mkdir(mode=0o777)
    planted.chmod(0o777)
    assert not _private_dir(planted)
    planted.chmod(0o700)
    assert _private_dir(planted)
    (tmp_path / "link").symlink_to(planted)
    assert not _private_dir(tmp_path / "link")
