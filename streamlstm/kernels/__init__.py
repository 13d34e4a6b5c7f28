"""Numba kernels: activations, the SIMD product, each kind's maths, the row interpreter, entry points.

Importing this package first installs the kernels' compile cache (``cache.py``): entries keyed
on the digest of all kernel sources wherever the cache lives, checked on load, and a fallback
location (or none) instead of a crash when the install is read-only. Under
``NUMBA_DISABLE_JIT=1`` the kernel modules are imported here with the JIT on, since they use
Numba intrinsics that cannot run as Python.
"""

import importlib
import pkgutil

from numba.core import config as _numba_config

from . import cache as _cache

_cache.install()

if _numba_config.DISABLE_JIT:
    import warnings

    warnings.warn("streamlstm: NUMBA_DISABLE_JIT=1 is ignored for streamlstm's own kernels, which use "
                  "Numba intrinsics and cannot run as Python; your code still runs as Python.",
                  _cache.CacheWarning, stacklevel=2)
    with _cache.jit_enabled():
        for _m in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{_m.name}")
