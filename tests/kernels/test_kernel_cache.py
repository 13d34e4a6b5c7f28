"""Numba's on-disk cache: keyed on every kernel source, in the package, NUMBA_CACHE_DIR or a
fallback; the step entry point cached without its bitcode."""

import subprocess
import sys
from pathlib import Path

import numpy as np
from llvmlite import binding as llvm, ir
from numba.core.caching import FunctionCache

import streamlstm as sl
from streamlstm.kernels.cache import (KEY, LOCATION, KernelCacheLocator, Location, cache_key, choose_location,
                                     source_digest)
from streamlstm.kernels.engine import advance, advance_at
from streamlstm.kernels.lean_cache import names_only
from streamlstm.tools.zoo import zoo_network


def test_the_cache_key_covers_every_kernel_source(tmp_path: Path):
    (tmp_path / "engine.py").write_text("x = 1\n")
    (tmp_path / "simd.py").write_text("y = 2\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "engine.cpython-311.pyc").write_bytes(b"python")
    first = source_digest(tmp_path)
    assert source_digest(tmp_path) == first
    (tmp_path / "__pycache__" / "engine.cpython-311.pyc").write_bytes(b"other bytecode")
    assert source_digest(tmp_path) == first  # bytecode is not source
    (tmp_path / "simd.py").write_text("y = 3\n")  # a callee changes, engine.py does not
    assert source_digest(tmp_path) != first
    (tmp_path / "simd.py").write_text("y = 2\n")
    assert source_digest(tmp_path) == first
    (tmp_path / "new_kind.py").write_text("")  # a new kernel module
    assert source_digest(tmp_path) != first


def test_the_package_cache_keeps_only_the_current_sources_entries(tmp_path: Path):
    pycache = tmp_path / "__pycache__"
    old = pycache / ("streamlstm-" + "0" * 24 + "-" + "1" * 8)  # other sources
    other_python = pycache / ("streamlstm-" + "a" * 24 + "-" + "2" * 8)  # same sources, another toolchain
    for d in (old, other_python):
        d.mkdir(parents=True)
        (d / "engine.advance-1.py311.nbi").write_bytes(b"compiled")
    flat = [pycache / "engine.advance-1.py311.nbi", pycache / "engine.advance-1.py311.1.nbc"]
    for f in flat:
        f.write_bytes(b"compiled by an earlier layout")
    bytecode = pycache / "engine.cpython-311.pyc"
    bytecode.write_bytes(b"python")
    key = "a" * 24 + "-" + "3" * 8
    loc = choose_location(key, "", pycache=pycache)
    assert loc == Location(pycache / f"streamlstm-{key}", True, "package")
    assert not old.exists() and not any(f.exists() for f in flat)
    assert other_python.exists()  # a venv of another Python on the same checkout keeps its entries
    assert bytecode.exists()  # only Numba's files go


def test_numba_cache_dir_comes_first_and_is_keyed_by_the_sources(tmp_path: Path):
    loc = choose_location("c" * 24 + "-" + "d" * 8, str(tmp_path / "shared"), pycache=tmp_path / "pkg")
    assert loc == Location(tmp_path / "shared" / ("streamlstm-" + "c" * 24 + "-" + "d" * 8), True, "NUMBA_CACHE_DIR")
    assert loc.path.is_dir() and not (tmp_path / "pkg").exists()


def test_the_key_names_the_sources_and_the_toolchain():
    key = cache_key("f" * 64)
    sources, toolchain = key.split("-")
    assert sources == "f" * 24 and len(toolchain) == 8 and cache_key("e" * 64).split("-")[1] == toolchain


def test_kernels_use_the_source_keyed_checked_cache():
    cache = advance._cache
    assert isinstance(cache._impl.locator, KernelCacheLocator)
    assert Path(cache.cache_path) == LOCATION.path and LOCATION.path.name == f"streamlstm-{KEY}"
    assert KEY == cache_key(source_digest())
    assert type(cache._cache_file).__name__ == "_CheckedCacheFile"


def test_names_only_bitcode_defines_the_same_symbols():
    module = ir.Module(name="m")
    for name in ("entry", "helper.1"):
        fn = ir.Function(module, ir.FunctionType(ir.DoubleType(), [ir.DoubleType()]), name=name)
        b = ir.IRBuilder(fn.append_basic_block())
        b.ret(b.fmul(fn.args[0], fn.args[0]))
    ir.Function(module, ir.FunctionType(ir.VoidType(), []), name="external_only")  # a declaration
    g = ir.GlobalVariable(module, ir.IntType(64), name="env")
    g.initializer = ir.Constant(ir.IntType(64), 7)

    def defined(bitcode):
        m = llvm.parse_bitcode(bitcode)
        return ({f.name for f in m.functions if not f.is_declaration},
                {v.name for v in m.global_variables if not v.is_declaration})

    full = llvm.parse_assembly(str(module)).as_bitcode()
    stub = names_only(full)
    assert defined(stub) == defined(full) == ({"entry", "helper.1"}, {"env"})
    assert len(stub) < len(full)


def test_step_loaded_from_the_lean_cache_in_a_new_process_is_bit_identical(tmp_path: Path):
    """``advance_at`` is cached without its bitcode; a new process that loads it steps exactly
    as this one (which compiled or loaded it)."""
    model = sl.Model(zoo_network("kws"))
    path = tmp_path / "kws.npz"
    model.save(path)
    X = np.random.default_rng(3).standard_normal((20, model.input_size)).astype(np.float32)
    np.save(tmp_path / "X.npy", X)
    s = model.session()
    expect = np.array([s.step(x) for x in X])
    assert isinstance(advance_at._cache, FunctionCache) and advance_at._cache._impl_class.__name__ == "_NamesOnlyImpl"
    code = ("import sys, numpy as np, streamlstm as sl\n"
            "m = sl.load(sys.argv[1]); s = m.session(); X = np.load(sys.argv[2])\n"
            "np.save(sys.argv[3], np.array([s.step(x) for x in X]))\n")
    for _ in range(2):  # the first run may compile and save; the second loads
        out = subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "X.npy"), str(tmp_path / "Y.npy")],
                             capture_output=True, text=True, timeout=600, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert np.array_equal(np.load(tmp_path / "Y.npy"), expect)


def test_other_numba_code_keeps_numbas_own_cache(tmp_path: Path):
    """The locator and the checked files apply to streamlstm's kernels only: a user's
    ``@njit(cache=True)`` function imported after streamlstm is cached by Numba as usual."""
    (tmp_path / "user_mod.py").write_text("from numba import njit\n\n@njit(cache=True)\ndef twice(x):\n    return 2 * x\n")
    code = "import streamlstm, user_mod; assert user_mod.twice(21) == 42"
    env = {k: v for k, v in __import__("os").environ.items() if k != "NUMBA_CACHE_DIR"}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    index = list((tmp_path / "__pycache__").glob("user_mod.twice-*.nbi"))
    assert len(index) == 1 and not index[0].read_bytes().startswith(b"streamlstm-cache")
