"""Numba kernels: activations, the SIMD product, cells and the fused network entry points.

Numba's on-disk cache checks only each function's own source file, but a cached entry point
contains the compiled code of everything it calls or inlines from the other kernel modules.
After any kernel file changes (a ``git pull`` in an editable install, a partial upgrade), the
cache could run stale code against a new weight layout. So on import, when the digest of
the kernel sources differs from the one recorded beside the cache, the cache is dropped.
"""

import hashlib
from pathlib import Path


def _drop_stale_cache(here: Path = Path(__file__).parent) -> None:
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(here.glob("*.py")))).hexdigest()
    cache = here / "__pycache__"
    stamp = cache / "streamlstm-kernels.sha256"
    try:
        if stamp.read_text() == digest:
            return
    except OSError:
        pass
    try:
        cache.mkdir(exist_ok=True)
        for f in list(cache.glob("*.nbi")) + list(cache.glob("*.nbc")):
            f.unlink(missing_ok=True)  # a process loading it meanwhile recompiles (Numba's rule)
        stamp.write_text(digest)
    except OSError:
        pass  # a read-only install: Numba keeps its cache elsewhere, keyed by the install


_drop_stale_cache()
