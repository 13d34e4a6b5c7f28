"""Measurement probes for the bench scripts, so that ``bench/`` needs no runtime internals.

A probe reproduces one condition of a real step in isolation: a buffer allocated the way a
Plan's weights are (``weight_like_buffer``), and a compiled function called the way
``Session.step`` calls its kernel, without Numba's type dispatch (``direct_call``).
``shares_products`` tells the bench whether a two-thread session has work to share, and
``code_paths`` which host CPU features chose the kernels' code paths. This module
is the one place where the tools reach past the runtime's public API; if the runtime moves these
helpers, only the imports below change.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from numba import typeof

from .. import Model
from ..helper import worth_a_helper
from ..kernels.config import entry_point
from ..kernels.simd import code_paths
from ..plan import aligned_bytes


__all__ = ["code_paths", "direct_call", "shares_products", "weight_like_buffer"]


def weight_like_buffer(nbytes: int) -> np.ndarray:
    """A float32 buffer of about ``nbytes`` (at least 16 values), filled with ones, aligned and
    page-advised like a Plan's weights."""
    a = aligned_bytes(max(nbytes // 4, 16) * 4).view(np.float32)
    a[:] = 1.0
    return a


def direct_call(dispatcher, *example_args) -> Callable:
    """The compiled overload of the ``@njit`` function ``dispatcher`` for the types of
    ``example_args``, callable without type dispatch (callers must pass those types exactly)."""
    return entry_point(dispatcher, tuple(typeof(a) for a in example_args))


def shares_products(model: Model) -> bool:
    """True when a step of ``model`` has products large enough for ``session(threads=2)`` to split."""
    return worth_a_helper(model.plan)
