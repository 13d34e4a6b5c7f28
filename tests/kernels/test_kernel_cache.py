"""Numba's on-disk cache: dropped when any kernel source changes; the step entry point cached
without its bitcode."""

import subprocess
import sys
from pathlib import Path

import numpy as np
from llvmlite import binding as llvm, ir
from numba.core.caching import FunctionCache

import streamlstm as sl
from streamlstm.kernels import _drop_stale_cache
from streamlstm.kernels.engine import advance_at
from streamlstm.kernels.lean_cache import names_only
from streamlstm.tools.zoo import zoo_network


def test_cache_is_dropped_when_any_kernel_source_changes(tmp_path: Path):
    (tmp_path / "engine.py").write_text("x = 1\n")
    (tmp_path / "simd.py").write_text("y = 2\n")
    cache = tmp_path / "__pycache__"
    _drop_stale_cache(tmp_path)  # first import: records the digest
    compiled = [cache / "engine.advance-1.py311.nbi", cache / "engine.advance-1.py311.1.nbc"]
    for f in compiled:
        f.write_bytes(b"compiled")
    bytecode = cache / "engine.cpython-311.pyc"
    bytecode.write_bytes(b"python")
    _drop_stale_cache(tmp_path)  # unchanged sources: the cache stays
    assert all(f.exists() for f in compiled)
    (tmp_path / "simd.py").write_text("y = 3\n")  # a callee changes, engine.py does not
    _drop_stale_cache(tmp_path)
    assert not any(f.exists() for f in compiled)
    assert bytecode.exists()  # only Numba's files go
    for f in compiled:
        f.write_bytes(b"compiled again")
    _drop_stale_cache(tmp_path)
    assert all(f.exists() for f in compiled)


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
                             capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr
        assert np.array_equal(np.load(tmp_path / "Y.npy"), expect)
