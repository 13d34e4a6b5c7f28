"""The kernel package drops Numba's on-disk cache when any kernel source changes."""

from pathlib import Path

from streamlstm.kernels import _drop_stale_cache


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
